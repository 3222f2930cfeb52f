"""A Vertex AI batch prediction server for tests: the REST protocol over HTTP on loopback.

``FakeVertex`` answers the batchPredictionJobs routes (create, get, list with
label filters, cancel) and an OAuth2 token endpoint, checks bearer tokens,
validates requests as Vertex would (model path, input and output configs,
label rules), and runs jobs for real against the Cloud Storage test server's
store (:mod:`tests.gcsserver`): it reads the input JSONL objects and writes
shuffled output where Vertex would. Jobs move through the states with time;
faults (429 RESOURCE_EXHAUSTED, 500, 503, 401, 403, dropped connections, a
create committed behind a lost answer, per-line errors, lines without a
response, missing lines, partially succeeded, failed and expired jobs) are
injected on request; the quota of concurrent jobs (4) is enforced.
``billed`` counts answers per custom_id, so a test sees a request paid twice;
a custom_id found in two jobs not yet ended is a recorded violation.

Run standalone with its own GCS server (the benchmark does):
``python -m tests.vertexserver``.
"""

from tests.vertexserver.jobs import JobFaults
from tests.vertexserver.server import LOCATION, PROJECT, FakeVertex, Tokens

__all__ = ["LOCATION", "PROJECT", "FakeVertex", "JobFaults", "Tokens"]
