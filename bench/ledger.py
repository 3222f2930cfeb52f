"""Ledger benchmark: SQLite against PostgreSQL on the same machine (issue 13).

Usage::

    .venv/bin/python bench/ledger.py [--files N] [--results N] [--status-files N]
        [--engines sqlite,postgresql] [--profile] [--keep] [--out DIR]

PostgreSQL is a throwaway cluster (``tests/pgcluster.py``: ``initdb`` in a
temp directory, 127.0.0.1, ``fsync = off``) started for the run; every
measurement gets a fresh database, as SQLite gets a fresh file. For each engine:

1. **scan**: ``python -m docproc scan --settle 0 TREE --config CFG`` (the real
   CLI, a subprocess; for PostgreSQL the config sets ``[ledger] url``) over N
   (``--files``) small distinct text files, 1,000 per folder. Wall seconds
   give files/s; peak RSS of the scan process (not its workers). Afterwards
   the ledger must hold N files, each version ``extracted``.
2. **apply**: in a child process (its own peak RSS): N (``--results``)
   extracted versions are seeded through the intake part, their jobs queued
   and one batch planned and marked submitted through the dispatch part
   (setup, timed apart); then N succeeded results (a summary, two highlights,
   usage) are recorded with ``ResultLedger.apply_results`` in chunks of
   ``docproc.dispatch.CHUNK``, one transaction each, as the daemon's loop
   does, and ``batch_applied``. Measured: results/s over those calls. Every
   job must be ``done``. With ``--profile`` the child runs that part under
   cProfile and writes ``<out>/apply-<engine>.prof``.
3. **status**: ``python -m docproc status --config CFG`` (subprocess) on a
   ledger of ``--status-files`` files built as in 2 (the same ledger when the
   sizes match): median wall seconds of 3 runs.

A table prints each engine's figures and the ratio PostgreSQL/SQLite on
each line (slower = ratio of times), with the issue's target (within 2x) met
or not. Figures also go to ``<out>/ledger.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from procstats import ProcessSampler  # noqa: E402 (this folder is on sys.path as a script)
from results import make_tree, tail  # noqa: E402

from docproc.costs import PriceTable  # noqa: E402
from docproc.dispatch import CHUNK  # noqa: E402
from docproc.ledger.connection import Ledger, LedgerLocation, open_ledger  # noqa: E402
from docproc.ledger.dispatch import DispatchLedger  # noqa: E402
from docproc.ledger.intake import IntakeLedger, Seen  # noqa: E402
from docproc.models import Extraction, Highlight, ProviderResult, ResultKind, TaskSpec, Usage  # noqa: E402
from docproc.providers.base import make_custom_id  # noqa: E402
from tests.pgcluster import PgServer, running_cluster  # noqa: E402

ENGINES = ("sqlite", "postgresql")
TASK = TaskSpec(provider="anthropic", model="claude-sonnet-4-5", max_tokens=1024)
SEED_CHUNK = 5000
STATUS_RUNS = 3
SAMPLE_SECONDS = 0.05
TARGET_RATIO = 2.0
SCAN_TIMEOUT_S = 3600.0
APPLY_TIMEOUT_S = 3 * 3600.0
STATUS_TIMEOUT_S = 600.0
SUMMARY = "The document records a delivery of timber to the harbour warehouse in the third quarter."


@dataclass
class Figures:
    """One engine's measurements."""

    engine: str
    scan_files: int = 0
    scan_seconds: float = 0.0
    scan_files_per_s: float = 0.0
    scan_rss_mb: float = 0.0
    scan_rows_ok: bool = False
    apply: dict[str, Any] = field(default_factory=dict)
    status_seconds: list[float] = field(default_factory=list)
    status_median_s: float = 0.0
    status_rss_mb: float = 0.0


# -- where each engine's ledger is ------------------------------------------------


class Places:
    """Fresh ledgers for each measurement: a state directory, and a database for PostgreSQL."""

    def __init__(self, base: Path, cluster: PgServer | None) -> None:
        self.base, self.cluster = base, cluster

    def new(self, engine: str, name: str) -> tuple[Path, LedgerLocation]:
        """A config file (state directory beside it) and the ledger's location."""
        home = self.base / engine / name
        state = home / "state"
        state.mkdir(parents=True)
        text = f'state_dir = "{state}"\n'
        location: LedgerLocation = state / "ledger.db"
        if engine == "postgresql":
            assert self.cluster is not None
            location = self.cluster.url(self.cluster.new_database())
            text += f'\n[ledger]\nurl = "{location}"\n'
        config = home / "docproc.toml"
        config.write_text(text)
        return config, location


def docproc(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "docproc", *args, "--config", str(config)]


def sampled(command: list[str], log: Path, timeout: float) -> tuple[float, float]:
    """Run ``command`` to its end (it must exit 0): wall seconds, peak RSS MB of its process."""
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        sampler = ProcessSampler(proc.pid, SAMPLE_SECONDS)
        sampler.start()
        try:
            code = proc.wait(timeout=timeout)
        finally:
            sampler.stop()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        seconds = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{' '.join(command[2:4])} exited {code}:\n{tail(log)}")
    return seconds, sampler.max_kb(0, 0) / 1024


# -- 1. scan -------------------------------------------------------------------------


def bench_scan(places: Places, engine: str, tree: Path, n: int, figures: Figures) -> None:
    config, location = places.new(engine, "scan")
    command = docproc(config, "scan", "--settle", "0", str(tree))
    seconds, rss = sampled(command, config.parent / "scan.log", SCAN_TIMEOUT_S)
    with open_ledger(location, readonly=True) as ledger:
        (files,) = ledger.conn.execute("SELECT COUNT(*) FROM files").fetchone()
        (extracted,) = ledger.conn.execute(
            "SELECT COUNT(*) FROM versions WHERE state = 'extracted'"
        ).fetchone()
    figures.scan_files, figures.scan_seconds, figures.scan_rss_mb = n, seconds, rss
    figures.scan_files_per_s = n / seconds
    figures.scan_rows_ok = files == n and extracted == n
    print(f"  {engine} scan: {n:,} files in {seconds:.1f} s ({n / seconds:,.0f}/s);"
          f" ledger: {files:,} files, {extracted:,} extracted", flush=True)  # fmt: skip


# -- 2. apply (the child process) ------------------------------------------------------


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def seed(ledger: Ledger, n: int) -> int:
    """N extracted versions under one root (no text stored: nothing here reads it)."""
    intake = IntakeLedger.on(ledger)
    root = intake.files.ensure_root("file:///bench", kind="local", mode="poll")
    for start in range(0, n, SEED_CHUNK):
        seen, done = [], []
        for i in range(start, min(n, start + SEED_CHUNK)):
            sha = hashlib.sha256(f"file {i}".encode()).hexdigest()
            text_sha = hashlib.sha256(f"text {i}".encode()).hexdigest()
            seen.append(Seen(root, Path(f"/bench/d{i // 1000:03d}/doc{i:06d}.txt"), 900, 1, sha))
            done.append(Extraction(sha, "native:text", text_sha, 880, json_bytes=884))
        intake.files.record_versions(seen)
        intake.extractions.record_extractions(done)
    return root


def result_for(custom_id: str) -> ProviderResult:
    highlights = (Highlight("delivery of timber", "what arrived", 17, 35),
                  Highlight("third quarter", "when", 70, 83))  # fmt: skip
    usage = Usage(input_tokens=260, output_tokens=90)
    return ProviderResult(
        custom_id, ResultKind.SUCCEEDED, SUMMARY, highlights, usage, TASK.model, "end_turn"
    )


def build_and_apply(location: LedgerLocation, n: int, profile: Path | None) -> dict[str, Any]:
    """Seed, queue, plan and submit N jobs; then apply N results (the measured part)."""
    times: dict[str, Any] = {}
    ledger = open_ledger(location, actor="bench")
    start = time.perf_counter()
    root = seed(ledger, n)
    times["seed_s"] = time.perf_counter() - start
    work = DispatchLedger.on(ledger, prices=PriceTable())
    start = time.perf_counter()
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [root])
    times["queue_s"] = time.perf_counter() - start
    start = time.perf_counter()
    items = work.jobs.batch_items([job.job_id for job in work.jobs.ready_jobs(task)])
    pairs = [(item, make_custom_id(item.job_id, item.attempt, ledger.identity())) for item in items]
    batch_id = work.batches.create_batch("anthropic", pairs, 1000 * len(pairs), model=TASK.model)
    assert batch_id is not None
    work.batches.batch_submitted(batch_id, f"msgbatch_bench{batch_id}")
    results = [(result_for(cid), 0) for _, cid in work.batches.batch_requests(batch_id)]
    work.results.batch_ended(batch_id, "ended")
    times["plan_s"] = time.perf_counter() - start
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    for chunk in chunks(results, CHUNK):
        work.results.apply_results(chunk, max_attempts=3)
    work.results.batch_applied(batch_id)
    if profiler:
        profiler.disable()
        profiler.dump_stats(str(profile))
    times["apply_s"] = time.perf_counter() - start
    (done,) = ledger.conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'done'").fetchone()
    ledger.close()
    times |= {"results": len(results), "jobs_done": int(done)}
    times["results_per_s"] = len(results) / times["apply_s"]
    times["peak_rss_mb"] = _own_peak_rss_mb()
    return times


def _own_peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def apply_in_child(
    location: LedgerLocation, n: int, log: Path, profile: Path | None
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--apply-only", str(location), str(n)]
    if profile:
        command += ["--profile-to", str(profile)]
    with log.open("wb") as err:
        done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
                              timeout=APPLY_TIMEOUT_S, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the apply child exited {done.returncode}:\n{tail(log)}")
    figures: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return figures


def bench_apply(
    places: Places, engine: str, n: int, profile: Path | None, figures: Figures
) -> tuple[Path, LedgerLocation]:
    config, location = places.new(engine, "apply")
    figures.apply = apply_in_child(location, n, config.parent / "apply.log", profile)
    a = figures.apply
    print(f"  {engine} apply: {a['results']:,} results in {a['apply_s']:.1f} s"
          f" ({a['results_per_s']:,.0f}/s; {a['jobs_done']:,} jobs done); setup: seed"
          f" {a['seed_s']:.1f} s, queue {a['queue_s']:.1f} s, plan {a['plan_s']:.1f} s",
          flush=True)  # fmt: skip
    return config, location


# -- 3. status -------------------------------------------------------------------------


def bench_status(config: Path, engine: str, figures: Figures) -> None:
    for run in range(STATUS_RUNS):
        log = config.parent / f"status{run}.log"
        seconds, rss = sampled(docproc(config, "status"), log, STATUS_TIMEOUT_S)
        figures.status_seconds.append(seconds)
        figures.status_rss_mb = max(figures.status_rss_mb, rss)
    figures.status_median_s = statistics.median(figures.status_seconds)
    runs = ", ".join(f"{s:.2f}" for s in figures.status_seconds)
    print(f"  {engine} status: median {figures.status_median_s:.2f} s ({runs})", flush=True)


# -- the run ---------------------------------------------------------------------------


def run_engine(places: Places, engine: str, tree: Path, args: argparse.Namespace) -> Figures:
    figures = Figures(engine)
    bench_scan(places, engine, tree, args.files, figures)
    profile = args.out / f"apply-{engine}.prof" if args.profile else None
    config, _ = bench_apply(places, engine, args.results, profile, figures)
    if args.status_files != args.results:
        config, _ = places.new(engine, "status")
        location = _location_of(config)
        print(f"  {engine}: building a {args.status_files:,}-file ledger for status", flush=True)
        apply_in_child(location, args.status_files, config.parent / "build.log", None)
    bench_status(config, engine, figures)
    return figures


def _location_of(config: Path) -> LedgerLocation:
    text = config.read_text()
    if "url = " in text:
        return text.split('url = "', 1)[1].split('"', 1)[0]
    return config.parent / "state" / "ledger.db"


def report(results: dict[str, Figures]) -> list[str]:
    lines = [f"{'':<22}" + "".join(f"{name:>14}" for name in results)]
    rows = (
        ("scan files/s", "scan_files_per_s", True),
        ("apply results/s", "results_per_s", True),
        ("status s (median)", "status_median_s", False),
    )
    for label, key, higher_is_better in rows:
        values = {name: _value(f, key) for name, f in results.items()}
        line = f"{label:<22}" + "".join(f"{v:>14,.2f}" for v in values.values())
        if len(values) == 2 and all(values.values()):
            lite, pg = values["sqlite"], values["postgresql"]
            ratio = lite / pg if higher_is_better else pg / lite  # how many times slower PG is
            met = "met" if ratio <= TARGET_RATIO else "NOT met"
            line += f"   PG/SQLite {ratio:.2f}x slower (target <= {TARGET_RATIO:g}x: {met})"
        lines.append(line)
    rss = "".join(
        f"{_rss(f.scan_rss_mb, f.apply.get('peak_rss_mb', 0), f.status_rss_mb):>14}"
        for f in results.values()
    )
    lines.append(f"{'peak RSS MB scan/apply/status':<22}{rss}")
    return lines


def _rss(*mb: float) -> str:
    return "/".join(f"{x:.0f}" for x in mb)


def _value(figures: Figures, key: str) -> float:
    if key in figures.apply:
        return float(figures.apply[key])
    return float(getattr(figures, key))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--status-files", type=int, default=100_000)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--profile", action="store_true", help="cProfile the apply part")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (trees, logs)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--apply-only", nargs=2, metavar=("LOCATION", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.apply_only:
        where, n = args.apply_only
        location: LedgerLocation = where if "://" in where else Path(where)
        print(json.dumps(build_and_apply(location, int(n), args.profile_to)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    engines = [e for e in args.engines.split(",") if e]
    base = Path(tempfile.mkdtemp(prefix="docproc-bench-ledger-", dir=args.out))
    print(f"load average before: {os.getloadavg()}", flush=True)
    tree = base / "tree"
    make_tree(tree, args.files)
    results: dict[str, Figures] = {}
    try:
        with running_cluster() if "postgresql" in engines else nullcontext() as cluster:
            places = Places(base, cluster)
            for engine in engines:
                results[engine] = run_engine(places, engine, tree, args)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    load = os.getloadavg()
    lines = report(results)
    print(f"\nload average after: {load}")
    print("\n".join(lines))
    out = {"load_after": load, "engines": {k: asdict(v) for k, v in results.items()},
           "table": lines}  # fmt: skip
    (args.out / "ledger.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
