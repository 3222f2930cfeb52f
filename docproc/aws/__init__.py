"""The boto3 adapter: no other package imports boto3 or botocore.

* :mod:`.session`: one boto3 session and its clients; the translation of
  S3 and SQS errors into :class:`~docproc.errors.ObjectStoreError`;
* :mod:`.s3`: one bucket's objects (listing, streamed reads and writes,
  conditional writes, multipart uploads);
* :mod:`.sqs`: one queue of S3 event notifications;
* :mod:`.bedrock`: Amazon Bedrock's batch inference jobs and live invocations.

Importing this package costs about 0.3 s (boto3), so it is imported only when
an S3 watch or the ``bedrock`` provider is configured (:mod:`docproc.compose`).
"""

from docproc.aws.s3 import Bucket, Fetched, Listed
from docproc.aws.session import Endpoint, Session, translated
from docproc.aws.sqs import Queue

__all__ = ["Bucket", "Endpoint", "Fetched", "Listed", "Queue", "Session", "translated"]
