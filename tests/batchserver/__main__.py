"""Run the Message Batches test server standalone (the benchmark does)::

    python -m tests.batchserver --port 0 --end-after 1 --seed 1

prints ``URL http://127.0.0.1:PORT`` on its first stdout line and serves until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from tests.batchserver.faults import Faults
from tests.batchserver.outcomes import outcome_mix
from tests.batchserver.server import FakeBatches


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.batchserver", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--end-after", type=float, default=1.0, help="seconds; negative: never")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--api-key", default="sk-test-123")
    parser.add_argument("--relative-results-url", action="store_true")
    parser.add_argument("--errored", type=float, default=0.0, help="share of errored requests")
    parser.add_argument("--expired", type=float, default=0.0, help="share of expired requests")
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of calls given a random fault"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; the first stdout line is ``URL <base url>``."""
    args = _parse_args(argv)
    mixed = args.errored > 0 or args.expired > 0
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server = FakeBatches(
        api_key=args.api_key,
        end_after=args.end_after if args.end_after >= 0 else None,
        outcome=outcome_mix(args.errored, args.expired, seed=args.seed) if mixed else None,
        faults=Faults(rate=args.fault_rate),
        seed=args.seed,
        absolute_results_url=not args.relative_results_url,
    )
    with server:
        print(f"URL {server.url}", flush=True)
        while not stopping.wait(0.2):
            pass
    print(json.dumps(_summary(server)), file=sys.stderr, flush=True)
    return 0


def _summary(server: FakeBatches) -> dict[str, Any]:
    """What the standalone server saw, printed on exit."""
    records = list(server.store.batches.values())
    return {
        "batches": len(records),
        "requests": sum(len(record.custom_ids) for record in records),
        "calls": len(server.calls),
        "violations": len(server.violations),
        "first_violations": server.violations[:5],
        "faults_injected": dict(server.faults_injected),
        "errors": len(server.errors),
    }


if __name__ == "__main__":
    sys.exit(main())
