"""Run the Bedrock test server standalone (the benchmark does)::

    python -m tests.bedrockserver --s3 http://127.0.0.1:PORT --port 0 --min-records 100

prints ``URL http://127.0.0.1:PORT`` on its first stdout line and serves until
SIGTERM or SIGINT; a summary of what it saw goes to stderr on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from tests.bedrockserver.jobs import Limits
from tests.bedrockserver.server import FakeBedrock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bedrockserver")
    parser.add_argument("--s3", required=True, help="moto's server URL")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--phase-seconds", type=float, default=0.5)
    parser.add_argument("--min-records", type=int, default=100)
    args = parser.parse_args(argv)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server = FakeBedrock(args.s3, limits=Limits(min_records=args.min_records),
                         phase_seconds=args.phase_seconds, seed=args.seed)  # fmt: skip
    with server:
        print(f"URL {server.url}", flush=True)
        while not stopping.wait(0.2):
            pass
    summary = {
        "jobs": {job.arn: job.status for job in server.jobs.values()},
        "records_billed": sum(server.billed.values()),
        "records_billed_twice": sum(1 for n in server.billed.values() if n > 1),
        "violations": server.violations[:5],
        "errors": len(server.errors),
    }
    print(json.dumps(summary), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
