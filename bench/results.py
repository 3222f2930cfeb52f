"""Results benchmark: drop-to-sidecar latency and applying a large result set.

Usage::

    .venv/bin/python bench/results.py [--latency-files N] [--results N] [--out DIR] [--keep]

Everything drives the real daemon, ``python -m docproc run --config CFG``, as a
subprocess, with a configuration written to a temp directory (its state
directory inside it) watching one folder in ``events`` mode, with the offline
``local`` provider.

1. **Latency.** ``settle_seconds = 1``, ``max_wait = 0.2``, ``poll_interval =
   0.1``. Once the daemon logs ``daemon.ready``, N small distinct text files
   are dropped one at a time, about 0.5 s apart, each written under a hidden
   temp name and renamed into place (the rename is the drop instant). For each,
   the time from the rename until its ``.docproc.json`` sidecar exists and
   parses as JSON (polled every 20 ms). p50/p90/p99/max; the target is p50 <=
   settle_seconds + 1 s. The daemon is stopped with SIGTERM and must exit 0.
2. **Applying results.** N (``--results``) small distinct text files in nested
   folders (1,000 per folder) are extracted first with ``docproc scan --settle
   0`` (setup, timed but not the measured part). Then ``docproc run --once``
   on the same state directory with ``max_requests = 100000``, ``max_mb =
   256``, ``max_wait = 0``: the jobs go to the local provider in as few
   batches as the byte cap allows. Peak RSS (VmHWM) of the daemon and of its
   descendants is sampled from /proc every 100 ms. From the ledger afterwards
   (read-only): the first ``batch.ended`` event to the last
   ``sidecars.written`` event gives results applied per second (ledger
   updates plus sidecars), and every file must be in state ``written``. The
   same is run with N/10 files to show whether memory stays flat in N.
   Target: >= 2,000 results/s.

Figures are printed as plain text and written to ``<out>/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from procstats import ProcessSampler  # this folder is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
SAMPLE_SECONDS = 0.1
POLL_SECONDS = 0.02
DROP_GAP_SECONDS = 0.5
LATENCY_SETTLE = 1.0
SIDECAR_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0
ONCE_TIMEOUT_S = 3 * 3600.0
PER_FOLDER = 1000
TARGET_RATE = 2000.0

WORDS = (
    "archive",
    "audit",
    "budget",
    "contract",
    "customer",
    "delivery",
    "engineer",
    "estimate",
    "facility",
    "forecast",
    "harbour",
    "invoice",
    "journal",
    "ledger",
    "manager",
    "meeting",
    "network",
    "office",
    "payment",
    "permit",
    "pipeline",
    "policy",
    "project",
    "quarter",
    "record",
    "report",
    "review",
    "schedule",
    "shipment",
    "storage",
    "supplier",
    "survey",
    "system",
    "tender",
    "timber",
    "transport",
    "vendor",
    "warehouse",
    "weather",
    "window",
    "workshop",
)


# -- corpus -------------------------------------------------------------------


def sentence(rng: random.Random, tag: str) -> str:
    words = rng.sample(WORDS, rng.randint(6, 11))
    return f"The {tag} {' '.join(words)}."


def document(rng: random.Random, index: int, sentences: int) -> str:
    """A small text, distinct from every other by its index."""
    first = f"Document {index} concerns the {rng.choice(WORDS)} of site {index % 97}."
    rest = [sentence(rng, f"note {index}.{i}") for i in range(1, sentences)]
    return " ".join([first, *rest]) + "\n"


def make_tree(folder: Path, n: int, seed: int = 7) -> None:
    """``n`` distinct 1-3 sentence text files, ``PER_FOLDER`` per nested folder."""
    rng = random.Random(seed)
    for i in range(n):
        group = i // PER_FOLDER
        sub = folder / f"g{group // 10:03d}" / f"d{group:04d}"
        if i % PER_FOLDER == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"doc{i:06d}.txt").write_text(document(rng, i, rng.randint(1, 3)))


# -- processes ----------------------------------------------------------------


def docproc(*args: str) -> list[str]:
    return [sys.executable, "-m", "docproc", *args]


def write_config(base: Path, watch: Path, intake: str, batch: str) -> Path:
    config = base / "docproc.toml"
    config.write_text(
        f'state_dir = "{base / "state"}"\n\n[intake]\n{intake}\n[batch]\n{batch}\n'
        f'[[watch]]\npath = "{watch}"\nmode = "events"\n'
    )
    return config


def ledger_query(ledger: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A read-only query, as any auditor would run it."""
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def wait_ready(proc: subprocess.Popen[bytes], log: Path) -> float:
    """Seconds until the daemon logged ``daemon.ready``."""
    start = time.monotonic()
    while time.monotonic() - start < READY_TIMEOUT_S:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited {proc.returncode} at start-up:\n{tail(log)}")
        if "daemon.ready" in log.read_text(errors="replace"):
            return time.monotonic() - start
        time.sleep(0.05)
    raise RuntimeError(f"daemon not ready after {READY_TIMEOUT_S} s:\n{tail(log)}")


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """SIGTERM; the exit code and the seconds it took to exit."""
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
    return code, time.monotonic() - start


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * pct / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# -- 1. latency ---------------------------------------------------------------


@dataclass
class Latency:
    drops: int
    settle_seconds: float
    received: int = 0
    timed_out: int = 0
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    min: float = 0.0
    target_p50: float = 0.0
    met: bool = False
    ready_seconds: float = 0.0
    exit_code: int | None = None
    stop_seconds: float = 0.0
    samples: list[float] = field(default_factory=list)


def _sidecar_ok(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def bench_latency(base: Path, n: int) -> Latency:
    inbox = base / "inbox"
    inbox.mkdir(parents=True)
    config = write_config(
        base,
        inbox,
        intake=f"settle_seconds = {LATENCY_SETTLE}\n",
        batch="max_wait = 0.2\npoll_interval = 0.1\n",
    )
    log = base / "daemon.log"
    result = Latency(drops=n, settle_seconds=LATENCY_SETTLE, target_p50=LATENCY_SETTLE + 1.0)
    rng = random.Random(11)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            docproc("run", "--config", str(config)),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=base,
        )
    try:
        result.ready_seconds = wait_ready(proc, log)
        time.sleep(0.5)  # the start-up reconcile walk of the empty folder
        pending: dict[Path, float] = {}  # sidecar -> drop instant
        latencies: list[float] = []
        next_drop, dropped = time.monotonic(), 0
        while dropped < n or pending:
            now = time.monotonic()
            if dropped < n and now >= next_drop:
                name = f"drop{dropped:04d}.txt"
                temp = inbox / f".{name}.tmp"
                temp.write_text(document(rng, dropped, 4))
                os.rename(temp, inbox / name)
                pending[inbox / f"{name}.docproc.json"] = time.monotonic()
                dropped += 1
                next_drop += DROP_GAP_SECONDS
            for sidecar, at in list(pending.items()):
                seen = time.monotonic()
                if _sidecar_ok(sidecar):
                    latencies.append(seen - at)
                    del pending[sidecar]
                elif seen - at > SIDECAR_TIMEOUT_S:
                    result.timed_out += 1
                    del pending[sidecar]
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited {proc.returncode}:\n{tail(log)}")
            time.sleep(POLL_SECONDS)
    finally:
        if proc.poll() is None:
            result.exit_code, result.stop_seconds = stop(proc)
        else:
            result.exit_code = proc.returncode
    result.samples = [round(x, 4) for x in latencies]
    result.received = len(latencies)
    if latencies:
        result.p50, result.p90 = percentile(latencies, 50), percentile(latencies, 90)
        result.p99, result.max = percentile(latencies, 99), max(latencies)
        result.min = min(latencies)
        result.met = result.p50 <= result.target_p50 and result.timed_out == 0
    return result


# -- 2. applying results ------------------------------------------------------


@dataclass
class Apply:
    files: int
    make_seconds: float = 0.0
    scan_seconds: float = 0.0
    scan_exit: int | None = None
    once_seconds: float = 0.0
    once_exit: int | None = None
    once_done: bool = False  # the daemon logged daemon.once_done (not stopped by a signal)
    batches: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    first_batch_ended: str = ""
    first_job_done: str = ""
    last_job_done: str = ""
    first_sidecar: str = ""
    last_sidecar: str = ""
    sidecars_written_events: int = 0
    apply_seconds: float = 0.0  # first batch.ended -> last sidecars.written
    results_per_second: float = 0.0
    ledger_apply_seconds: float = 0.0  # first batch.ended -> last job.done
    states: dict[str, int] = field(default_factory=dict)
    all_written: bool = False
    peak_rss_mb: float = 0.0
    children_peak_rss_mb: float = 0.0
    largest_child_rss_mb: float = 0.0
    children_seen: int = 0
    met: bool = False


def _iso_seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def bench_apply(base: Path, n: int) -> Apply:
    tree = base / "tree"
    tree.mkdir(parents=True)
    result = Apply(files=n)
    config = write_config(
        base,
        tree,
        intake="settle_seconds = 1\nrescan_interval = 86400\n",
        batch="max_requests = 100000\nmax_mb = 256\nmax_wait = 0\npoll_interval = 0.1\n",
    )
    start = time.monotonic()
    make_tree(tree, n)
    result.make_seconds = time.monotonic() - start
    print(f"  [{n}] made {n} files in {result.make_seconds:.1f} s; scanning", flush=True)

    start = time.monotonic()
    with (base / "scan.log").open("wb") as out:
        scan = subprocess.run(
            docproc("scan", "--settle", "0", str(tree), "--config", str(config)),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=base,
            check=False,
        )
    result.scan_seconds, result.scan_exit = time.monotonic() - start, scan.returncode
    print(f"  [{n}] scan exit {scan.returncode} in {result.scan_seconds:.1f} s", flush=True)
    if scan.returncode != 0:
        raise RuntimeError(f"scan failed:\n{tail(base / 'scan.log')}")

    log = base / "once.log"
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            docproc("run", "--once", "--config", str(config)),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=base,
        )
    sampler = ProcessSampler(proc.pid, SAMPLE_SECONDS)
    sampler.start()
    try:
        result.once_exit = proc.wait(timeout=ONCE_TIMEOUT_S)
    finally:
        sampler.stop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    result.once_seconds = time.monotonic() - start
    result.peak_rss_mb = sampler.max_kb(0, 0) / 1024
    result.children_peak_rss_mb = sampler.children_sum_kb / 1024
    result.largest_child_rss_mb = sampler.max_kb(1) / 1024
    result.children_seen = len(sampler.pids(1))
    print(f"  [{n}] run --once exit {result.once_exit} in {result.once_seconds:.1f} s", flush=True)
    result.once_done = "daemon.once_done" in log.read_text(errors="replace")
    if result.once_exit != 0 or not result.once_done:
        print(f"  [{n}] run --once did not finish its work:\n{tail(log, 5)}", file=sys.stderr)
    _read_ledger(base / "state" / "ledger.db", result)
    return result


def _read_ledger(ledger: Path, result: Apply) -> None:
    def first_last(kind: str) -> tuple[str, str, int]:
        (row,) = ledger_query(
            ledger, "SELECT MIN(at), MAX(at), COUNT(*) FROM events WHERE kind = ?", (kind,)
        )
        return row[0] or "", row[1] or "", int(row[2])

    result.batch_sizes = [
        count for (count,) in ledger_query(ledger, "SELECT request_count FROM batches ORDER BY id")
    ]
    result.batches = len(result.batch_sizes)
    result.first_batch_ended, _, _ = first_last("batch.ended")
    result.first_job_done, result.last_job_done, _ = first_last("job.done")
    result.first_sidecar, result.last_sidecar, written = first_last("sidecars.written")
    result.sidecars_written_events = written
    result.states = dict(
        ledger_query(ledger, "SELECT state, count(*) FROM file_status GROUP BY state")
    )
    result.all_written = result.states == {"written": result.files}
    if result.first_batch_ended and result.last_sidecar:
        result.apply_seconds = _iso_seconds(result.first_batch_ended, result.last_sidecar)
        result.ledger_apply_seconds = _iso_seconds(result.first_batch_ended, result.last_job_done)
        result.results_per_second = written / max(result.apply_seconds, 1e-9)
    result.met = result.results_per_second >= TARGET_RATE and result.all_written


# -- report -------------------------------------------------------------------


def latency_line(lat: Latency) -> str:
    line = (
        f"latency ({lat.drops} drops, settle {lat.settle_seconds:g} s): p50 {lat.p50:.2f} s, "
        f"p90 {lat.p90:.2f} s, p99 {lat.p99:.2f} s, max {lat.max:.2f} s"
    )
    extra = f"; target p50 <= {lat.target_p50:g} s: {'met' if lat.met else 'NOT met'}"
    if lat.timed_out:
        extra += f"; {lat.timed_out} sidecar(s) never appeared"
    return line + extra + f"; SIGTERM exit {lat.exit_code} in {lat.stop_seconds:.2f} s"


def apply_line(big: Apply, small: Apply | None) -> str:
    line = (
        f"apply {big.files} results: {big.apply_seconds:.1f} s from batch end to last sidecar"
        f" = {big.results_per_second:.0f} results/s; run --once {big.once_seconds:.0f} s;"
        f" peak RSS daemon {big.peak_rss_mb:.0f} MB"
    )
    if small is not None:
        line += f" ({small.files} results: {small.peak_rss_mb:.0f} MB)"
    return line


def detail_lines(run: Apply) -> list[str]:
    states = ", ".join(f"{k} {v}" for k, v in sorted(run.states.items()))
    return [
        f"  [{run.files}] setup: files made {run.make_seconds:.1f} s, "
        f"docproc scan --settle 0 {run.scan_seconds:.1f} s (exit {run.scan_exit})",
        f"  [{run.files}] run --once: exit {run.once_exit}"
        f"{'' if run.once_done else ' WITHOUT daemon.once_done (stopped by a signal?)'},"
        f" {run.once_seconds:.1f} s wall; "
        f"{run.batches} batch(es) of {run.batch_sizes} requests",
        f"  [{run.files}] batch ended {run.first_batch_ended}; job.done {run.first_job_done} .. "
        f"{run.last_job_done} (ledger results applied {run.ledger_apply_seconds:.1f} s after"
        " batch end)",
        f"  [{run.files}] sidecars.written {run.first_sidecar} .. {run.last_sidecar}: "
        f"{run.sidecars_written_events} events, {run.results_per_second:.0f} results/s "
        f"(target >= {TARGET_RATE:.0f}: {'met' if run.met else 'NOT met'})",
        f"  [{run.files}] file_status: {states} -> all written: {run.all_written}",
        f"  [{run.files}] peak RSS (VmHWM): daemon {run.peak_rss_mb:.1f} MB; descendants "
        f"{run.children_peak_rss_mb:.1f} MB together (largest {run.largest_child_rss_mb:.1f} MB,"
        f" {run.children_seen} seen)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-files", type=int, default=60, help="files dropped (0: skip)")
    parser.add_argument("--results", type=int, default=100_000, help="result set size (0: skip)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--keep", action="store_true", help="keep the temp directories")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="docproc-bench-results-"))
    summary: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    lines: list[str] = []
    try:
        if args.latency_files > 0:
            print(f"latency: dropping {args.latency_files} files", flush=True)
            lat = bench_latency(work / "latency", args.latency_files)
            summary["latency"] = asdict(lat)
            lines.append(latency_line(lat))
        if args.results > 0:
            runs: list[Apply] = []
            for n in (args.results, args.results // 10):
                if n <= 0:
                    continue
                print(f"apply: {n} results", flush=True)
                runs.append(bench_apply(work / f"apply-{n}", n))
            summary["apply"] = [asdict(run) for run in runs]
            lines.append(apply_line(runs[0], runs[1] if len(runs) > 1 else None))
            for run in runs:
                lines += detail_lines(run)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print("\n".join(lines))
    print(f"\n(written to {args.out / 'results.json'})")
    ok = summary.get("latency", {}).get("exit_code", 0) == 0 and all(
        run.get("once_exit") == 0 and run.get("once_done") for run in summary.get("apply", [])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
