"""Vertex AI benchmark: stage one 50,000-request batch prediction job in GCS, apply its output.

Usage::

    .venv/bin/python bench/vertex.py [--records N] [--chars C] [--structured tool|json] [--out DIR]

1. **Setup** (not measured): a child process seeds a real ledger with N
   extracted documents of C characters each (default 50,000 of 3,000), their
   text in the real text store (``bench/anthropic.py``'s seeding).
2. The Cloud Storage and Vertex AI test servers (``tests/gcsserver/``,
   ``tests/vertexserver/``) start in one separate process on 127.0.0.1, so
   their memory is not counted.
3. **Build and upload**: in this process, the real
   :class:`~docproc.dispatch.Dispatcher` with the real ``vertex`` provider
   (built by ``compose.make_vertex``, a token file for credentials) plans the
   documents into one job (``max_requests = 50000``), records the batch and its
   label, builds every request from the stored text, spools the JSONL and
   uploads it (multipart, ``ifGenerationMatch=0``), then creates the job.
   Measured: seconds from the first tick to the job's name recorded; peak RSS
   (VmHWM) of this process. Targets: <= 60 s and < 400 MB.
4. **Apply**: the test server runs the job (reads the input from GCS, writes
   shuffled output files); the dispatcher streams every ``*.jsonl`` of the
   output directory line by line, reads each answer (the forced tool's input,
   or the JSON in the text), locates every highlight in its document and
   records each result and its cost. Measured: from the ``batch.ended`` event
   to the ``batch.applied`` event, results per second. Target: >= 2,000/s.

Figures are printed and written to ``<out>/vertex.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bedrock import measure, seeded_state  # noqa: E402 (after the path set-up)
from docproc.compose import make_vertex  # noqa: E402
from docproc.config import Settings  # noqa: E402
from docproc.config.vertex import VertexSettings  # noqa: E402
from docproc.models import TaskSpec  # noqa: E402

MODEL = "claude-sonnet-4-5@20250929"
BUCKET = "docproc-bench"
TOKEN = "bench-token"  # noqa: S105 - the test server's, not a credential


def start_servers(log: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    command = [sys.executable, "-m", "tests.vertexserver", "--bucket", BUCKET,
               "--token", TOKEN, "--phase-seconds", "0.5"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("wb"))
    assert proc.stdout is not None
    lines = [proc.stdout.readline().decode().strip() for _ in range(2)]
    if not (lines[0].startswith("GCS ") and lines[1].startswith("URL ")):
        proc.kill()
        raise SystemExit(f"the test servers did not start: {lines!r}; see {log}")
    return proc, lines[0].split(" ", 1)[1], lines[1].split(" ", 1)[1]


def run(args: argparse.Namespace) -> dict[str, Any]:
    state = seeded_state(args, "vertex")
    servers, gcs_url, vertex_url = start_servers(state.parent / "servers.log")
    try:
        token = state.parent / "token"
        token.write_text(TOKEN)
        vertex = VertexSettings(
            project="docproc-test", location="us-east5", staging=f"gs://{BUCKET}/docproc/",
            api_endpoint=vertex_url, storage_endpoint=gcs_url, access_token_file=token,
            structured=args.structured,
        )  # fmt: skip
        task = TaskSpec(provider="vertex", model=MODEL, max_tokens=1024)
        provider = make_vertex(Settings(state_dir=state, watches=(), task=task, vertex=vertex))
        return {"structured": args.structured, **measure(state, args.records, task, provider)}
    finally:
        servers.terminate()
        servers.wait(timeout=60)
        print((state.parent / "servers.log").read_text().strip()[-600:], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--chars", type=int, default=3_000)
    parser.add_argument("--structured", choices=("tool", "json"), default="tool")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    figures = run(args)
    print(json.dumps(figures, indent=2))
    (args.out / "vertex.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
