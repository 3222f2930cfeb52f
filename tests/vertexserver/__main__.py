"""Run the Vertex AI and Cloud Storage test servers standalone, in one process (the benchmark)::

    python -m tests.vertexserver --bucket docproc-bench --token test-token

prints ``GCS http://127.0.0.1:PORT`` then ``URL http://127.0.0.1:PORT`` and serves
until SIGTERM or SIGINT; a summary of what it saw goes to stderr on exit.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from tests.gcsserver import FakeGcs
from tests.vertexserver.server import FakeVertex, Tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.vertexserver")
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--phase-seconds", type=float, default=0.5)
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    token = f"Bearer {args.token}"
    with FakeGcs(auth=lambda header: header == token) as gcs:
        for bucket in args.bucket:
            gcs.store.bucket(bucket)
        tokens = Tokens(accept=(args.token,))
        with FakeVertex(gcs.store, tokens=tokens, phase_seconds=args.phase_seconds,
                        seed=args.seed) as fake:  # fmt: skip
            print(f"GCS {gcs.url}", flush=True)
            print(f"URL {fake.url}", flush=True)
            while not stopping.wait(0.2):
                pass
            summary = {
                "jobs": {job.name: job.state for job in fake.jobs.values()},
                "requests_billed": sum(fake.billed.values()),
                "requests_billed_twice": sum(1 for n in fake.billed.values() if n > 1),
                "violations": fake.violations[:5],
                "errors": len(fake.errors) + len(gcs.state.errors),
            }
    print(json.dumps(summary), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
