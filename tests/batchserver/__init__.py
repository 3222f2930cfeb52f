"""A Message Batches server for tests: the Anthropic protocol over real HTTP on loopback.

``FakeBatches`` runs a threaded HTTP server on 127.0.0.1 that answers the six
batch endpoints the way the real API does (``reference/BATCH_APIS.md`` §1),
checks everything a client sends, and records each protocol violation in
``violations`` while answering with the real error status. Faults (429, 529,
500, 503, dropped connections, a batch created behind a lost response, a cut
results stream, transient 404s after create) are injected on request.

Sizes follow the real service (100,000 requests, 256 MB bodies), so the create
body is parsed as a stream, request by request, and only a small digest of each
request is kept; results lines are generated lazily while they are streamed.

The simulated model answers the docproc summarisation tool: a ``summary`` of
the document's first two sentences and ``highlights`` quoting sentences
verbatim, plus one invented quote for the client to drop. What each request
ends as is decided by an ``outcome`` function (see :func:`outcome_mix`).

Run standalone (the benchmark does)::

    python -m tests.batchserver --port 0 --end-after 1 --seed 1

prints ``URL http://127.0.0.1:PORT`` on its first stdout line and serves until
SIGTERM or SIGINT.
"""

from tests.batchserver.faults import Faults
from tests.batchserver.outcomes import Outcome, OutcomeFn, outcome_mix
from tests.batchserver.results import invented_quote
from tests.batchserver.server import FakeBatches
from tests.batchserver.store import BatchRecord

__all__ = [
    "BatchRecord",
    "FakeBatches",
    "Faults",
    "Outcome",
    "OutcomeFn",
    "invented_quote",
    "outcome_mix",
]
