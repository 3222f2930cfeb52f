"""The engines bench/intake.py compares, each run on a list of files with 2 processes.

* docproc: ``python -m docproc scan --settle 0`` as a subprocess with a fresh
  state directory; its texts are read back from the ledger and text store.
* kreuzberg: bench-only, in its own virtual environment (``bench/.kreuzberg-venv``,
  gitignored; made on first use with ``pip install kreuzberg==KREUZBERG``),
  through bench/kreuzberg_run.py: a fork pool of 2, cache off.
* unstructured: ``partition(strategy="fast")`` in a fork pool of 2, with
  docproc's offline neutralisation (the docproc venv has it).

Each run's wall time covers the engine's start (interpreter, imports, pool),
and a :class:`ProcessSampler` samples peak RSS and CPU of the process tree.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procstats import ProcessSampler

ROOT = Path(__file__).resolve().parents[1]
KREUZBERG = "4.10.4"
KREUZBERG_VENV = ROOT / "bench" / ".kreuzberg-venv"
PROCESSES = 2
SAMPLE_SECONDS = 0.05


@dataclass
class EngineRun:
    """One engine over one list of files."""

    name: str
    seconds: float
    texts: dict[Path, str] = field(default_factory=dict)
    errors: dict[Path, str] = field(default_factory=dict)
    main_rss_mb: float = 0.0
    workers_rss_mb: float = 0.0
    cpu_s: float = 0.0
    returncode: int = 0
    output: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def sampled(
    command: list[str], env: dict[str, str], log: Path
) -> tuple[float, int, ProcessSampler]:
    """Run ``command``, sampling its process tree; returns wall seconds, exit code, sampler."""
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        sampler = ProcessSampler(proc.pid, SAMPLE_SECONDS)
        sampler.start()
        returncode = proc.wait()
        seconds = time.perf_counter() - start
        sampler.stop()
    return seconds, returncode, sampler


# -- docproc -------------------------------------------------------------------------------


def docproc(target: Path, state: Path, log: Path, files: Iterable[Path]) -> EngineRun:
    """``docproc scan --settle 0 target``; texts and failures read back from the ledger."""
    env = {**os.environ, "DOCPROC_STATE_DIR": str(state)}
    command = [sys.executable, "-m", "docproc", "scan", "--settle", "0", str(target)]
    seconds, returncode, sampler = sampled(command, env, log)
    run = EngineRun("docproc", seconds, returncode=returncode)
    # A scan forks its extraction workers: children of the scan (the daemon's
    # come from a forkserver, grandchildren; the max over both covers either).
    run.main_rss_mb = sampler.max_kb(0, 0) / 1024
    run.workers_rss_mb = sampler.max_kb(1) / 1024
    run.cpu_s = sampler.cpu_sum(0)
    run.output = log.read_text(errors="replace")[-2000:]
    rows = ledger_rows(state)
    run.extra = {"extractors": {}, "ocr_pages": 0, "workers_started": len(sampler.pids(1))}
    from docproc.ledger.uris import file_uri
    from docproc.textstore import TextStore

    store = TextStore(state / "text")
    for path in files:
        row = rows.get(file_uri(path))
        if row is None:
            run.errors[path] = "not in the ledger"
        elif row["state"] != "extracted" or row["text_sha256"] is None:
            run.errors[path] = f"{row['state']}: {row['error']}"
        else:
            run.texts[path] = store.get(row["text_sha256"])
            run.extra["ocr_pages"] += row["ocr_pages"] or 0
        if row is not None and row["extractor"]:
            counts = run.extra["extractors"]
            counts[row["extractor"]] = counts.get(row["extractor"], 0) + 1
    return run


def ledger_rows(state: Path) -> dict[str, dict[str, Any]]:
    """Every file the ledger knows, by URI, read through a read-only connection."""
    uri = f"file:{state / 'ledger.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT s.uri, s.state, s.extractor, s.error, v.text_sha256, v.ocr_pages"
            " FROM file_status s LEFT JOIN versions v ON v.sha256 = s.sha256"
        ).fetchall()
    return {row["uri"]: dict(row) for row in rows}


# -- kreuzberg -----------------------------------------------------------------------------


def kreuzberg_python() -> tuple[Path | None, str]:
    """The kreuzberg venv's interpreter (made on first use), or None and why not."""
    python = KREUZBERG_VENV / "bin" / "python"
    if python.exists():
        return python, ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(KREUZBERG_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"kreuzberg=={KREUZBERG}"],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return None, f"kreuzberg {KREUZBERG} could not be installed: {detail.strip()[-300:]}"
    return python, ""


def kreuzberg(files: list[Path], work: Path, label: str) -> EngineRun | str:
    """kreuzberg over ``files``; a sentence instead when it cannot run here."""
    python, why = kreuzberg_python()
    if python is None:
        return why
    listing, out = work / f"kreuzberg-{label}.list", work / f"kreuzberg-{label}.json"
    listing.write_text("".join(f"{p}\n" for p in files))
    command = [str(python), str(ROOT / "bench" / "kreuzberg_run.py"), str(listing), str(out)]
    command.append(str(PROCESSES))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    seconds, returncode, sampler = sampled(command, env, work / f"kreuzberg-{label}.log")
    run = EngineRun("kreuzberg", seconds, returncode=returncode)
    run.main_rss_mb = sampler.max_kb(0, 0) / 1024
    run.workers_rss_mb = sampler.max_kb(1) / 1024
    run.cpu_s = sampler.cpu_sum(0)
    if returncode != 0 or not out.exists():
        return (
            f"kreuzberg exited {returncode}: {(work / f'kreuzberg-{label}.log').read_text()[-500:]}"
        )
    for name, (text, error) in json.loads(out.read_text()).items():
        if text and text.strip():
            run.texts[Path(name)] = text
        else:
            run.errors[Path(name)] = error or "no text"
    return run


# -- unstructured ----------------------------------------------------------------------------


def _pool_init() -> None:
    """Worker start: docproc's offline neutralisation, then unstructured's import."""
    from docproc.extract import partition

    partition.load_partition()


def _partition_one(path: Path) -> tuple[Path, str | None, str | None]:
    from unstructured.partition.auto import partition

    try:
        elements = partition(filename=str(path), strategy="fast", process_attachments=False)
    except Exception as exc:  # noqa: BLE001 - a failure of the library is a figure here
        return path, None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return path, "\n\n".join(t for e in elements if (t := str(e).strip())), None


def unstructured(files: list[Path]) -> EngineRun:
    """``partition(strategy="fast")`` over ``files`` in a fork pool of 2 (same venv)."""
    ctx = multiprocessing.get_context("fork")
    start = time.perf_counter()
    run = EngineRun("unstructured", 0.0)
    sampler = ProcessSampler(os.getpid(), SAMPLE_SECONDS)
    sampler.start()
    with ctx.Pool(PROCESSES, initializer=_pool_init) as pool:
        for path, text, error in pool.imap_unordered(_partition_one, files, chunksize=4):
            if error is None and text:
                run.texts[path] = text
            else:
                run.errors[path] = error or "no text"
        run.seconds = time.perf_counter() - start
        sampler.sample()
    sampler.stop()
    run.workers_rss_mb = sampler.max_kb(1) / 1024
    return run
