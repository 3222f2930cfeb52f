"""A Cloud Storage prefix as the object store of staged batches (the ``ObjectStore`` seam
of :mod:`docproc.providers.staging`), over the JSON API (reference/BATCH_APIS.md §5).

* Uploads are multipart (the object's metadata and its bytes in one call) with
  ``ifGenerationMatch=0``: the object is created only if none exists, so an
  upload after a crash never replaces anything (412 is ``precondition``). The
  bytes are first spooled to a temporary file under ``spool_dir``, so the
  upload has a Content-Length and memory stays flat for files of any size.
* Downloads (``alt=media``) are streamed line by line; listings follow
  ``nextPageToken``.
* Reads, listings and deletes are tried up to three times on throttling, 5xx
  and the network (each is idempotent); an upload is tried once (the staged
  provider starts the staging again, removing what this token left).

Errors are :class:`~docproc.errors.ObjectStoreError` with the codes of
:data:`docproc.errors.STORE_CODES`.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from docproc.errors import ObjectStoreError
from docproc.gcp.http import GoogleHttp, Reply, Unreached, error_of, retry_after

JSONL = "application/jsonl"
LIST_PAGE = 1000
LIST_MAX_PAGES = 10_000
TRIES = 3
BACKOFF_S = 0.5
CHUNK = 1 << 20


class GcsStaging:
    """Objects under ``gs://<bucket>/<prefix>``; ``prefix`` is "" or ends in "/".

    Args:
        http: the client (authenticated, or anonymous for an emulator).
        endpoint: the JSON API's root, ``https://storage.googleapis.com``.
        spool_dir: where an upload is spooled before it is sent.
    """

    def __init__(
        self, http: GoogleHttp, endpoint: str, bucket: str, prefix: str, *, spool_dir: Path
    ) -> None:
        self.http, self.bucket, self.prefix = http, bucket, prefix
        self.endpoint = endpoint.rstrip("/")
        self.spool_dir = spool_dir
        self._objects = f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}/o"
        self._upload = f"{self.endpoint}/upload/storage/v1/b/{quote(bucket, safe='')}/o"

    def __repr__(self) -> str:
        return f"GcsStaging({self.uri('')!r}, endpoint={self.endpoint!r})"

    # -- the ObjectStore seam ----------------------------------------------------

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket}/{self.prefix}{key}"

    def key(self, uri: str) -> str:
        root = self.uri("")
        if not uri.startswith(root):
            raise ObjectStoreError("error", f"{uri} is not under the staging prefix {root}")
        return uri.removeprefix(root)

    def keys(self, prefix: str) -> Iterator[str]:
        params = {"prefix": self.prefix + prefix, "maxResults": str(LIST_PAGE),
                  "fields": "items(name),nextPageToken"}  # fmt: skip
        for _ in range(LIST_MAX_PAGES):
            page = self._json(self._retried("GET", self._objects, f"list {prefix}", params=params))
            for item in page.get("items") or ():
                name = item.get("name") if isinstance(item, Mapping) else None
                if isinstance(name, str) and name.startswith(self.prefix):
                    yield name.removeprefix(self.prefix)
            token = page.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = str(token)

    def write_new(self, key: str, chunks: Iterable[bytes], *, metadata: Mapping[str, str]) -> int:
        name = self.prefix + key
        resource = {"name": name, "contentType": JSONL, "metadata": dict(metadata)}
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            spool = tempfile.TemporaryFile(dir=self.spool_dir, prefix="upload-")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ObjectStoreError("error", f"cannot spool an upload in {self.spool_dir}: {exc}",
                                   retryable=True) from exc  # fmt: skip
        with spool:
            try:
                size = _spool(spool, chunks)
            except OSError as exc:  # the state directory is full: try again later
                raise ObjectStoreError("error", f"cannot spool {self.uri(key)}: {exc}",
                                       retryable=True) from exc  # fmt: skip
            body = _Multipart(resource, spool, size)
            params = {"uploadType": "multipart", "ifGenerationMatch": "0", "name": name}
            try:
                reply = self.http.call("POST", self._upload, params=params, content=body.stream,
                                       headers=body.headers)  # fmt: skip
            except Unreached as exc:
                raise ObjectStoreError("network", f"upload {self.uri(key)}: {exc}",
                                       retryable=True) from exc  # fmt: skip
        if reply.status != 200:
            raise _error(reply, f"upload {self.uri(key)}")
        return size

    def metadata(self, key: str) -> dict[str, str] | None:
        reply = self._retried("GET", self._object(key), f"look at {self.uri(key)}",
                              params={"fields": "name,metadata"}, missing_ok=True)  # fmt: skip
        if reply.status == 404:
            return None
        found = self._json(reply).get("metadata")
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, Mapping) else {}

    def lines(self, key: str) -> Iterator[bytes]:
        doing = f"read {self.uri(key)}"

        def failed(reply: Reply) -> None:
            raise _error(reply, doing)

        try:
            yield from self.http.lines(self._object(key), params={"alt": "media"}, failed=failed)
        except Unreached as exc:
            raise ObjectStoreError("network", f"{doing}: {exc}", retryable=True) from exc

    def read(self, key: str, *, max_bytes: int) -> bytes | None:
        doing = f"read {self.uri(key)}"
        reply = self._retried("GET", self._object(key), doing, params={"alt": "media"},
                              missing_ok=True)  # fmt: skip
        if reply.status == 404:
            return None
        if len(reply.body) > max_bytes:
            raise ObjectStoreError("too_large", f"{doing}: over {max_bytes} bytes")
        return reply.body

    def delete(self, key: str) -> None:
        self._retried("DELETE", self._object(key), f"delete {self.uri(key)}", missing_ok=True)

    # -- calls ---------------------------------------------------------------------

    def _object(self, key: str) -> str:
        return f"{self._objects}/{quote(self.prefix + key, safe='')}"

    def _retried(
        self, method: str, url: str, doing: str, *, params: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> Reply:  # fmt: skip
        """An idempotent call, tried again on throttling, 5xx and the network.

        A 404 of the object (not of the bucket) is returned when ``missing_ok``.
        """
        for attempt in range(1, TRIES + 1):
            try:
                reply = self.http.call(method, url, params=params)
            except Unreached as exc:
                error = ObjectStoreError("network", f"{doing}: {exc}", retryable=True)
                wait = BACKOFF_S * 2 ** (attempt - 1)
            else:
                if reply.status < 300 or (reply.status == 404 and missing_ok and
                                          not _no_bucket(reply)):  # fmt: skip
                    return reply
                error = _error(reply, doing)
                wait = retry_after(reply) or BACKOFF_S * 2 ** (attempt - 1)
            if not error.retryable or attempt == TRIES or wait > 10:
                raise error
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _json(reply: Reply) -> dict[str, Any]:
        data = reply.json()
        if not isinstance(data, dict):
            raise ObjectStoreError("error", f"HTTP {reply.status}: the answer is not a JSON object")
        return data


class _Multipart:
    """A ``multipart/related`` upload body: the object's resource, then its bytes."""

    def __init__(self, resource: Mapping[str, Any], spool: IO[bytes], size: int) -> None:
        boundary = f"docproc{secrets.token_hex(16)}"
        self._head = (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps(resource)}\r\n--{boundary}\r\nContent-Type: {JSONL}\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._spool, self._size = spool, size
        length = len(self._head) + size + len(self._tail)
        self.headers = {
            "content-type": f"multipart/related; boundary={boundary}",
            "content-length": str(length),
        }

    def stream(self) -> Iterator[bytes]:
        yield self._head
        self._spool.seek(0)
        while chunk := self._spool.read(CHUNK):
            yield chunk
        yield self._tail


def _spool(spool: IO[bytes], chunks: Iterable[bytes]) -> int:
    size = 0
    for chunk in chunks:
        spool.write(chunk)
        size += len(chunk)
    spool.flush()
    return size


def _no_bucket(reply: Reply) -> bool:
    """A 404 of the bucket ("The specified bucket does not exist."), not of an object
    ("No such object: <bucket>/<name>", whose bucket's name may well hold "bucket")."""
    message = error_of(reply)[1].lower()
    return reply.status == 404 and "bucket" in message and "no such object" not in message


def _error(reply: Reply, doing: str) -> ObjectStoreError:
    """A Cloud Storage error answer as an ObjectStoreError."""
    status, message = error_of(reply)
    text = f"{doing}: HTTP {reply.status} {status}: {message}".replace("  ", " ")
    code = reply.status
    if code in (401, 403):
        return ObjectStoreError("denied", text)
    if code == 404:
        return ObjectStoreError("no_bucket" if _no_bucket(reply) else "not_found", text)
    if code in (409, 412):
        return ObjectStoreError("precondition", text)
    if code == 429:
        return ObjectStoreError("throttled", text, retryable=True)
    if code >= 500 or code == 408:
        return ObjectStoreError("unavailable", text, retryable=True)
    if code == 400 and "bucket" in message.lower():
        return ObjectStoreError("config", text)
    return ObjectStoreError("error", text)
