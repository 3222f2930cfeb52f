"""The boto3 adapter: S3 objects and SQS messages. No other module imports boto3.

Everything a source or a sidecar writer needs from S3 is a method of
:class:`Bucket`; from SQS, of :class:`Queue`. Every botocore failure is
translated here, at the boundary, into an
:class:`~docproc.errors.ObjectStoreError` whose ``code`` says what the caller
can do about it (see :data:`~docproc.errors.STORE_CODES`).

Credentials come from boto3's default chain (environment, shared config and
credentials files, ``profile``, container or instance role), never from
docproc's configuration. Retries: botocore's *standard* mode (exponential
backoff with jitter on throttling, 5xx and connection errors), three attempts;
docproc adds its own per-root backoff on top (:mod:`docproc.sources.s3`).

Importing this module costs about 0.3 s (boto3), so it is imported only when
an S3 watch is configured (:func:`docproc.compose.make_bucket`).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import botocore.config
import botocore.exceptions

from docproc.errors import ObjectStoreError

CHUNK = 1024 * 1024
_DENIED = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
    "InvalidToken", "AllAccessDisabled", "AccountProblem", "403",
}  # fmt: skip
_THROTTLED = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
    "TooManyRequests", "TooManyRequestsException", "503", "429", "ServiceUnavailable",
    "RequestThrottled",
}  # fmt: skip
_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "AWS.SimpleQueueService.NonExistentQueue"}
_NETWORK = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom to reach S3 or SQS. Credentials are boto3's business."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None


class Listed(NamedTuple):
    """One entry of a listing (or a HEAD): the object's hints, not its identity."""

    key: str
    etag: str
    size: int
    last_modified_ns: int


class Fetched(NamedTuple):
    """An object streamed to a local file: what the GET said, and the bytes' sha256."""

    etag: str
    size: int
    last_modified_ns: int
    sha256: str


class Session:
    """One boto3 session and its clients; counts the requests made, by operation.

    Raises:
        ObjectStoreError: ``config`` when the profile does not exist.
    """

    def __init__(self, endpoint: Endpoint, *, connect_timeout: float = 5.0,
                 read_timeout: float = 30.0, attempts: int = 3) -> None:  # fmt: skip
        self.endpoint = endpoint
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._clients: list[Any] = []
        with translated("open a session"):
            self._session = boto3.session.Session(profile_name=endpoint.profile)
        self._config = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=16,
            # MinIO, Ceph and moto need path-style addressing; AWS takes both.
            s3={"addressing_style": "path" if endpoint.endpoint_url else "auto"},
        )

    def client(self, service: str) -> Any:
        with translated(f"create an {service} client"):
            client = self._session.client(
                service, endpoint_url=self.endpoint.endpoint_url,
                region_name=self.endpoint.region, config=self._config,
            )  # fmt: skip
        client.meta.events.register(f"before-send.{service}", self._count)
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Close the clients' connection pools."""
        for client in self._clients:
            client.close()
        self._clients.clear()

    def _count(self, **kwargs: Any) -> None:
        name = str(kwargs.get("event_name", "")).rpartition(".")[2]
        with self._lock:
            self.requests[name] += 1


class Bucket:
    """The S3 calls docproc makes on one bucket; thread-safe (boto3 clients are)."""

    def __init__(self, name: str, session: Session) -> None:
        self.name = name
        self.session = session
        self._s3 = session.client("s3")

    def list_page(
        self, prefix: str, token: str | None, page_size: int = 1000
    ) -> tuple[list[Listed], str | None]:
        """One page of ListObjectsV2 under ``prefix``; the token of the next, if any."""
        args: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix, "MaxKeys": page_size}
        if token:
            args["ContinuationToken"] = token
        with translated(f"list s3://{self.name}/{prefix}"):
            page = self._s3.list_objects_v2(**args)
        listed = [
            Listed(o["Key"], o.get("ETag", ""), int(o.get("Size", 0)), _ns(o["LastModified"]))
            for o in page.get("Contents", ())
        ]
        return listed, page.get("NextContinuationToken") if page.get("IsTruncated") else None

    def head(self, key: str) -> Listed | None:
        """The object's hints, or ``None`` when there is no such key."""
        try:
            with translated(f"read s3://{self.name}/{key}"):
                head = self._s3.head_object(Bucket=self.name, Key=key)
        except ObjectStoreError as exc:
            if exc.code == "not_found":
                return None
            raise
        return Listed(key, head.get("ETag", ""), int(head["ContentLength"]),
                      _ns(head["LastModified"]))  # fmt: skip

    def download(self, key: str, dest: Path, *, max_bytes: int) -> Fetched:
        """Stream the object to ``dest`` (created, not replaced), hashing as it goes.

        The size is checked against ``max_bytes`` from the response's
        Content-Length before a byte is read, and again while streaming.

        Raises:
            ObjectStoreError: ``not_found``, ``too_large``, or any call failure;
                ``dest`` is removed then.
        """
        try:
            with translated(f"read s3://{self.name}/{key}"):
                response = self._s3.get_object(Bucket=self.name, Key=key)
                size, body = int(response["ContentLength"]), response["Body"]
                try:
                    _check_size(key, size, max_bytes)
                    digest = _stream(body, dest, key, max_bytes)
                finally:
                    body.close()
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        return Fetched(response.get("ETag", ""), size, _ns(response["LastModified"]), digest)

    def read(self, key: str, *, max_bytes: int) -> tuple[bytes, str] | None:
        """The whole (small) object and its ETag, or ``None`` when there is none."""
        try:
            with translated(f"read s3://{self.name}/{key}"):
                response = self._s3.get_object(Bucket=self.name, Key=key)
                body = response["Body"]
                try:
                    _check_size(key, int(response["ContentLength"]), max_bytes)
                    return body.read(), str(response.get("ETag", ""))
                finally:
                    body.close()
        except ObjectStoreError as exc:
            if exc.code == "not_found":
                return None
            raise

    def put(
        self, key: str, data: bytes, *, metadata: Mapping[str, str], content_type: str,
        if_none_match: bool = False, if_match: str | None = None,
    ) -> str:  # fmt: skip
        """PUT ``data`` at ``key``; conditional on absence or on an ETag. Returns the ETag.

        Raises:
            ObjectStoreError: ``precondition`` when the condition did not hold;
                ``not_implemented`` when the store does not support it.
        """
        args: dict[str, Any] = {
            "Bucket": self.name, "Key": key, "Body": data, "Metadata": dict(metadata),
            "ContentType": content_type,
        }  # fmt: skip
        if if_none_match:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = if_match
        with translated(f"write s3://{self.name}/{key}"):
            return str(self._s3.put_object(**args).get("ETag", ""))

    def delete(self, key: str) -> None:
        with translated(f"delete s3://{self.name}/{key}"):
            self._s3.delete_object(Bucket=self.name, Key=key)


class Queue:
    """The SQS calls docproc makes on one queue of S3 event notifications."""

    def __init__(self, url: str, session: Session) -> None:
        self.url = url
        self._sqs = session.client("sqs")

    def receive(self, wait_seconds: int) -> list[tuple[str, str]]:
        """Long-poll for up to 10 messages: (receipt handle, body) pairs."""
        with translated(f"receive from {self.url}"):
            response = self._sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
            )
        return [(m["ReceiptHandle"], m.get("Body", "")) for m in response.get("Messages", ())]

    def delete(self, receipts: list[str]) -> None:
        """Delete handled messages (at most 10 per call)."""
        for start in range(0, len(receipts), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": r}
                for i, r in enumerate(receipts[start : start + 10])
            ]
            with translated("delete messages from " + self.url):
                self._sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Turn botocore's exceptions into :class:`ObjectStoreError`, ``from`` the original."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        raise _client_error(doing, exc) from exc
    except _NETWORK as exc:
        raise ObjectStoreError("network", f"cannot {doing}: {exc}", retryable=True) from exc
    except botocore.exceptions.NoCredentialsError as exc:
        raise ObjectStoreError(
            "no_credentials", f"cannot {doing}: no AWS credentials found (environment,"
            " shared credentials file, profile or instance role)",
        ) from exc  # fmt: skip
    except botocore.exceptions.ProfileNotFound as exc:
        raise ObjectStoreError("config", f"cannot {doing}: {exc}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise ObjectStoreError("error", f"cannot {doing}: {exc}") from exc


def _client_error(doing: str, exc: botocore.exceptions.ClientError) -> ObjectStoreError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    detail = f"{code or status} ({status})" if code and status else (code or str(status))
    if code == "NoSuchBucket":
        return ObjectStoreError("no_bucket", f"cannot {doing}: the bucket does not exist")
    if code in _DENIED or status == 403:
        return ObjectStoreError("denied", f"cannot {doing}: access denied, {detail}")
    if code in _NOT_FOUND or status == 404:
        return ObjectStoreError("not_found", f"cannot {doing}: no such key, {detail}")
    if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
        return ObjectStoreError("precondition", f"cannot {doing}: condition failed, {detail}")
    if code == "NotImplemented" or status == 501:
        return ObjectStoreError("not_implemented", f"cannot {doing}: not supported, {detail}")
    if code in _THROTTLED or status in (429, 503):
        return ObjectStoreError("throttled", f"cannot {doing}: throttled, {detail}",
                                retryable=True)  # fmt: skip
    if status >= 500:
        return ObjectStoreError("unavailable", f"cannot {doing}: server error, {detail}",
                                retryable=True)  # fmt: skip
    return ObjectStoreError("error", f"cannot {doing}: {detail}")


def _check_size(key: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise ObjectStoreError("too_large", f"{key}: {size} bytes, over the limit of {max_bytes}")


def _stream(body: Any, dest: Path, key: str, max_bytes: int) -> str:
    digest, seen = hashlib.sha256(), 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    with os.fdopen(os.open(dest, flags, 0o600), "wb") as out:
        for chunk in body.iter_chunks(CHUNK):
            seen += len(chunk)
            _check_size(key, seen, max_bytes)  # the Content-Length may have lied
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
