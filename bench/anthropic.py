"""Anthropic benchmark: build and submit one 100,000-request batch (~250 MB), apply its results.

Usage::

    .venv/bin/python bench/anthropic.py [--requests N] [--target-mb MB] [--out DIR]

1. **Setup** (not measured): a child process seeds a real ledger with N
   extracted documents of equal size, chosen so the create body comes to
   about ``--target-mb`` (default 250 MB, under the 256 MB cap), their text
   in the real text store.
2. The Message Batches test server (``tests/batchserver/``) starts as
   a separate process on 127.0.0.1, so its memory is not counted.
3. **Submit**: in this process, the real :class:`~docproc.dispatch.Dispatcher`
   with the real :class:`~docproc.providers.anthropic.AnthropicProvider` over
   httpx plans the jobs (``max_requests = 100000``, ``max_mb = 256``,
   ``max_wait = 0``), records the batch, builds every request from the stored
   text, stages the body and sends it. Measured: seconds from the first tick
   to the provider's id recorded; peak RSS (VmHWM) of this process.
   Targets: <= 60 s and < 600 MB.
4. **Apply**: the batch ends at the server; the dispatcher streams the JSONL
   results, locates every highlight in its document, and records each result
   and its cost in the ledger. Measured: from the ``batch.ended`` event to the
   ``batch.applied`` event, results per second. Target: >= 2,000/s. (Writing
   sidecars for them is the publisher's work, measured by ``bench/results.py``.)

Figures are printed and written to ``<out>/anthropic.json``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docproc.costs import PriceTable  # noqa: E402 (after the path set-up)
from docproc.dispatch import Dispatcher  # noqa: E402
from docproc.ledger.connection import Ledger, open_ledger  # noqa: E402
from docproc.ledger.dispatch import DispatchLedger  # noqa: E402
from docproc.ledger.intake import IntakeLedger, Seen  # noqa: E402
from docproc.ledger.queries import Queries  # noqa: E402
from docproc.models import BatchLimits, Extraction, JobRequest, TaskSpec  # noqa: E402
from docproc.providers.anthropic import AnthropicProvider  # noqa: E402
from docproc.providers.base import request_size  # noqa: E402
from docproc.textstore import TextStore  # noqa: E402

KEY = "sk-bench-not-a-secret"
TASK = TaskSpec(provider="anthropic", model="claude-sonnet-4-5", max_tokens=1024)
CHUNK = 5000
TIMEOUT_S = 1800.0
SENTENCE = "The {w} of unit {i} was reviewed on day {d} and filed with the others. "
WORDS = ("ledger", "invoice", "contract", "report", "memo", "audit", "budget", "archive")


def text_for(i: int, chars: int) -> str:
    out, k = [], 0
    while sum(map(len, out)) < chars:
        out.append(SENTENCE.format(w=WORDS[(i + k) % len(WORDS)], i=i, d=k % 28))
        k += 1
    return "".join(out)[:chars].rstrip() + "."


def request_overhead(tmp: Path) -> int:
    provider = AnthropicProvider("k", base_url="http://127.0.0.1:9", spool_dir=tmp / "probe")
    try:
        empty = provider.build_request(JobRequest("j100000-a1", 0, "", "doc99999.txt"), TASK)
        return request_size(empty)
    finally:
        provider.close()


def seed(state: Path, count: int, chars: int) -> None:
    """The child process: N extracted versions under one root, text in the store."""
    ledger = open_ledger(state / "ledger.db")
    store = TextStore(state / "text")
    intake = IntakeLedger.on(ledger)
    root = intake.files.ensure_root("file:///bench", kind="local", mode="poll")
    for start in range(0, count, CHUNK):
        seen, done = [], []
        for i in range(start, min(count, start + CHUNK)):
            text = text_for(i, chars)
            data = text.encode()
            text_sha = hashlib.sha256(data).hexdigest()
            target = store.path_for(text_sha)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(gzip.compress(data, compresslevel=1, mtime=0))  # setup: no fsync
            sha = hashlib.sha256(b"file" + data).hexdigest()
            seen.append(Seen(root, Path(f"/bench/d{i // 1000}/doc{i}.txt"), len(data), 1, sha))
            json_bytes = len(json.dumps(text, ensure_ascii=False).encode()) - 2
            done.append(Extraction(sha, "native:text", text_sha, len(text), json_bytes=json_bytes))
        intake.files.record_versions(seen)
        intake.extractions.record_extractions(done)
    ledger.close()


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_server(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "tests.batchserver", "--port", "0",
               "--end-after", "2", "--seed", "1", "--api-key", KEY]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("wb"))
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("URL "):
        proc.kill()
        raise SystemExit(f"the test server did not start: {line!r}; see {log}")
    return proc, line.split(" ", 1)[1]


def event_time(ledger: Ledger, kind: str) -> float:
    row = ledger.conn.execute("SELECT at FROM events WHERE kind = ? ORDER BY id LIMIT 1", (kind,))
    return datetime.fromisoformat(row.fetchone()[0]).timestamp()


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="docproc-bench-anthropic-", dir=args.out))
    state = tmp / "state"
    state.mkdir()
    overhead = request_overhead(tmp)
    chars = max(100, int(args.target_mb * 1e6 / args.requests) - overhead - 2)
    print(f"setup: {args.requests:,} documents of {chars} characters ({overhead} bytes of"
          " request around each)...", flush=True)  # fmt: skip
    started = time.monotonic()
    subprocess.run([sys.executable, __file__, "--seed-only", str(state), str(args.requests),
                    str(chars)], check=True)  # fmt: skip
    print(f"setup took {time.monotonic() - started:.1f} s", flush=True)
    server, url = start_server(tmp / "server.log")
    try:
        return measure(state, url, args.requests)
    finally:
        server.terminate()
        server.wait(timeout=30)


def measure(state: Path, url: str, count: int) -> dict[str, Any]:
    ledger = open_ledger(state / "ledger.db", actor="bench")
    work = DispatchLedger.on(ledger, prices=PriceTable())
    provider = AnthropicProvider(KEY, base_url=url, spool_dir=state / "provider", timeout=600)
    limits = BatchLimits(max_requests=100_000, max_bytes=256_000_000, max_wait=0.0)
    dispatcher = Dispatcher(work, provider, TextStore(state / "text"), task=TASK, limits=limits,
                            poll_interval=0.5, max_attempts=3)  # fmt: skip
    rss_before = peak_rss_mb()
    submitted, submit_rss = drive(dispatcher, work)
    dispatcher.close()
    provider.close()
    batches = Queries(ledger).batches()
    done = ledger.conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'done'").fetchone()[0]
    ended, applied = event_time(ledger, "batch.ended"), event_time(ledger, "batch.applied")
    body = sum(b["request_bytes"] for b in batches)
    ledger.close()
    return {
        "requests": count,
        "batches": len(batches),
        "body_mb": round(body / 1e6, 1),
        "submit_seconds": round(submitted or -1, 1),
        "peak_rss_mb_before_submit": round(rss_before, 1),
        "peak_rss_mb_after_submit": round(submit_rss, 1),
        "peak_rss_mb_end": round(peak_rss_mb(), 1),
        "apply_seconds": round(applied - ended, 1),
        "apply_results_per_s": round(done / max(applied - ended, 1e-9)),
        "jobs_done": done,
    }


def drive(dispatcher: Dispatcher, work: DispatchLedger) -> tuple[float | None, float]:
    """Queue the jobs and tick until every batch is applied: (seconds until every batch
    was submitted, peak RSS MB then)."""
    started = time.monotonic()
    dispatcher.queue_jobs([1])
    submitted, submit_rss = None, 0.0
    while time.monotonic() < started + TIMEOUT_S:
        dispatcher.tick(time.monotonic(), flush_all=True)
        rows = work.batches.open_batches()
        if submitted is None and rows and all(r["state"] != "planned" for r in rows):
            submitted, submit_rss = time.monotonic() - started, peak_rss_mb()
            print(f"submitted after {submitted:.1f} s; waiting for the results...", flush=True)
        if not rows and dispatcher.in_flight == 0 and submitted is not None:
            break
        time.sleep(min(0.05, dispatcher.idle_for(time.monotonic())))
    return submitted, submit_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--target-mb", type=float, default=250.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument(
        "--seed-only", nargs=3, metavar=("STATE", "N", "CHARS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.seed_only:
        state, n, chars = args.seed_only
        seed(Path(state), int(n), int(chars))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    figures = run(args)
    for key, value in figures.items():
        print(f"{key:>28}: {value}")
    print(f"targets: submit <= 60 s ({figures['submit_seconds']} s), peak RSS < 600 MB"
          f" ({figures['peak_rss_mb_end']} MB), apply >= 2,000/s"
          f" ({figures['apply_results_per_s']}/s)")  # fmt: skip
    (args.out / "anthropic.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
