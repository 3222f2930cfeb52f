"""Bedrock benchmark: stage one 50,000-record batch inference job in S3, apply its output.

Usage::

    .venv/bin/python bench/bedrock.py [--records N] [--chars C] [--out DIR]

1. **Setup** (not measured): a child process seeds a real ledger with N
   extracted documents of C characters each (default 50,000 of 3,000), their
   text in the real text store (``bench/anthropic.py``'s seeding).
2. moto's S3 server and the Bedrock test server (``tests/bedrockserver/``)
   start as separate processes on 127.0.0.1, so their memory is not counted.
3. **Build and upload**: in this process, the real
   :class:`~docproc.dispatch.Dispatcher` with the real ``bedrock`` provider
   (built by ``compose.make_bedrock``, boto3 pointed at the servers by
   ``AWS_ENDPOINT_URL_*``) plans the jobs into one job (``max_requests =
   50000``), records the batch and its token, builds every record from the
   stored text and streams the JSONL to S3 in a multipart upload, then creates
   the job. Measured: seconds from the first tick to the job's ARN recorded;
   peak RSS (VmHWM) of this process. Targets: <= 60 s and < 400 MB.
4. **Apply**: the test server runs the job (reads the input from S3, writes
   shuffled output and a manifest); the dispatcher streams the output line by
   line, parses each JSON answer, locates every highlight in its document and
   records each result and its cost. Measured: from the ``batch.ended`` event
   to the ``batch.applied`` event, results per second. Target: >= 2,000/s.

Figures are printed and written to ``<out>/bedrock.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.anthropic import drive, event_time, peak_rss_mb  # noqa: E402 (after the path set-up)
from docproc.compose import make_bedrock  # noqa: E402
from docproc.config import Settings  # noqa: E402
from docproc.config.bedrock import BedrockSettings  # noqa: E402
from docproc.costs import PriceTable  # noqa: E402
from docproc.dispatch import Dispatcher  # noqa: E402
from docproc.ledger.connection import open_ledger  # noqa: E402
from docproc.ledger.dispatch import DispatchLedger  # noqa: E402
from docproc.ledger.queries import Queries  # noqa: E402
from docproc.models import BatchLimits, TaskSpec  # noqa: E402
from docproc.providers.base import Provider  # noqa: E402
from docproc.textstore import TextStore  # noqa: E402

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
TASK = TaskSpec(provider="bedrock", model=MODEL, max_tokens=1024)
BUCKET = "docproc-bench"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true",
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    moto = ROOT / ".venv" / "bin" / "moto_server"
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
        else:
            return proc, url
    proc.kill()
    raise SystemExit(f"moto's server did not start; see {log}")


def start_bedrock(s3_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "tests.bedrockserver", "--s3", s3_url,
               "--phase-seconds", "0.5"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("wb"))
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("URL "):
        proc.kill()
        raise SystemExit(f"the Bedrock test server did not start: {line!r}; see {log}")
    return proc, line.split(" ", 1)[1]


def seeded_state(args: argparse.Namespace, name: str) -> Path:
    """A state directory under ``args.out`` whose ledger holds ``args.records`` extracted
    documents of ``args.chars`` characters (seeded in a child process, not measured)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"docproc-bench-{name}-", dir=args.out))
    state = tmp / "state"
    state.mkdir()
    print(f"setup: {args.records:,} documents of {args.chars} characters...", flush=True)
    started = time.monotonic()
    subprocess.run([sys.executable, str(ROOT / "bench" / "anthropic.py"), "--seed-only",
                    str(state), str(args.records), str(args.chars)], check=True)  # fmt: skip
    print(f"setup took {time.monotonic() - started:.1f} s", flush=True)
    return state


def run(args: argparse.Namespace) -> dict[str, Any]:
    state = seeded_state(args, "bedrock")
    tmp = state.parent
    os.environ.update(AWS)
    moto, s3_url = start_moto(tmp / "moto.log")
    servers = [moto]
    try:
        bedrock, url = start_bedrock(s3_url, tmp / "bedrock.log")
        servers.append(bedrock)
        os.environ.update({"AWS_ENDPOINT_URL_S3": s3_url, "AWS_ENDPOINT_URL_BEDROCK": url,
                           "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": url})  # fmt: skip
        import boto3  # the benchmark's own arrangement, not docproc's

        boto3.client("s3", endpoint_url=s3_url).create_bucket(Bucket=BUCKET)
        bedrock = BedrockSettings(
            region="us-east-1",
            staging=f"s3://{BUCKET}/docproc/",
            role_arn="arn:aws:iam::123456789012:role/docproc-bench",
        )
        settings = Settings(state_dir=state, watches=(), task=TASK, bedrock=bedrock)
        return measure(state, args.records, TASK, make_bedrock(settings))
    finally:
        for proc in reversed(servers):
            proc.terminate()
            proc.wait(timeout=60)


def measure(state: Path, count: int, task: TaskSpec, provider: Provider) -> dict[str, Any]:
    """Plan, build, upload and apply every document of ``state`` as one job of ``provider``
    through the real dispatcher; the figures."""
    ledger = open_ledger(state / "ledger.db", actor="bench")
    work = DispatchLedger.on(ledger, prices=PriceTable())
    limits = BatchLimits(max_requests=50_000, max_bytes=256_000_000, max_wait=0.0)
    dispatcher = Dispatcher(work, provider, TextStore(state / "text"), task=task, limits=limits,
                            poll_interval=0.5, max_attempts=3)  # fmt: skip
    rss_before = peak_rss_mb()
    submitted, submit_rss = drive(dispatcher, work)
    dispatcher.close()
    batches = Queries(ledger).batches()
    done = ledger.conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'done'").fetchone()[0]
    ended, applied = event_time(ledger, "batch.ended"), event_time(ledger, "batch.applied")
    ledger.close()
    return {
        "records": count,
        "jobs": len(batches),
        "input_mb": round(sum(b["request_bytes"] for b in batches) / 1e6, 1),
        "build_and_upload_seconds": round(submitted or -1, 1),
        "peak_rss_mb_before": round(rss_before, 1),
        "peak_rss_mb_after_upload": round(submit_rss, 1),
        "peak_rss_mb_end": round(peak_rss_mb(), 1),
        "apply_seconds": round(applied - ended, 1),
        "apply_results_per_s": round(done / max(applied - ended, 1e-9)),
        "jobs_done": done,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--chars", type=int, default=3_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    figures = run(args)
    print(json.dumps(figures, indent=2))
    (args.out / "bedrock.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
