"""A Bedrock batch inference server for tests: the real protocol over HTTP on loopback.

``FakeBedrock`` runs a threaded HTTP server on 127.0.0.1 that answers the
four model-invocation-job routes of the Bedrock control plane and the
InvokeModel and Converse routes of bedrock-runtime (reference/BATCH_APIS.md
§4), validates requests against botocore's service model, and runs jobs for
real against moto's S3 server: it reads the input JSONL objects and writes
shuffled output objects and a manifest where Bedrock would. Jobs move through
every status with time; faults (throttling, quota, 500, denied, dropped
connections, a create committed behind a lost answer, record errors, answers
without JSON, PartiallyCompleted, Failed, Expired, Stopped) are injected on
request. ``billed`` counts the answers produced per record id, so a test can
see a record paid twice; a record found in two jobs not yet ended is a
recorded violation.

Point boto3 at it with ``AWS_ENDPOINT_URL_BEDROCK`` and
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (and moto with ``AWS_ENDPOINT_URL_S3``).
Run standalone (the benchmark does): ``python -m tests.bedrockserver --s3 URL``.
"""

from tests.bedrockserver.faults import Faults
from tests.bedrockserver.jobs import Limits
from tests.bedrockserver.model import invented_quote
from tests.bedrockserver.server import FakeBedrock

__all__ = ["FakeBedrock", "Faults", "Limits", "invented_quote"]
