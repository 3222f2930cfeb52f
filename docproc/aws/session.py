"""The boto3 session docproc shares between its AWS clients, and the translation of errors.

Credentials come from boto3's default chain (environment, shared config and
credentials files, ``profile``, container or instance role), never from
docproc's configuration. Retries: botocore's *standard* mode (exponential
backoff with jitter on throttling, 5xx and connection errors), three retries
by default (``attempts``: botocore's ``max_attempts``, retries after the first);
docproc adds its own backoff on top.

Every botocore failure of an S3 or SQS call is translated at the boundary,
by :func:`translated`, into an :class:`~docproc.errors.ObjectStoreError` whose
``code`` says what the caller can do about it (see
:data:`~docproc.errors.STORE_CODES`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from docproc.errors import ObjectStoreError

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
