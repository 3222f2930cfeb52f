"""S3 objects: what sources, sidecar writers and staged batches need of one bucket.

Every call goes through :func:`~docproc.aws.session.translated`, so failures
arrive as :class:`~docproc.errors.ObjectStoreError`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from docproc.aws.session import Session, translated
from docproc.errors import ObjectStoreError

CHUNK = 1024 * 1024
PART_SIZE = 8 * 1024 * 1024  # S3's multipart minimum is 5 MiB (the last part excepted)


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
        head = self._head(key)
        if head is None:
            return None
        return Listed(key, head.get("ETag", ""), int(head["ContentLength"]),
                      _ns(head["LastModified"]))  # fmt: skip

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            with translated(f"read s3://{self.name}/{key}"):
                return dict(self._s3.head_object(Bucket=self.name, Key=key))
        except ObjectStoreError as exc:
            if exc.code == "not_found":
                return None
            raise

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

    def metadata(self, key: str) -> dict[str, str] | None:
        """The object's user metadata (``x-amz-meta-*``), or None when there is no such key."""
        head = self._head(key)
        if head is None:
            return None
        return {str(k): str(v) for k, v in head.get("Metadata", {}).items()}

    def lines(self, key: str) -> Iterator[bytes]:
        """The object's lines, streamed in 1 MiB reads, without their ``\\n``."""
        with translated(f"read s3://{self.name}/{key}"):
            body = self._s3.get_object(Bucket=self.name, Key=key)["Body"]
            try:
                pending = b""
                for chunk in body.iter_chunks(CHUNK):
                    *complete, pending = (pending + chunk).split(b"\n")
                    yield from complete
                if pending:
                    yield pending
            finally:
                body.close()

    def upload_new(
        self, key: str, chunks: Iterable[bytes], *, metadata: Mapping[str, str],
        content_type: str, part_size: int = PART_SIZE,
    ) -> int:  # fmt: skip
        """Create ``key`` from a stream of bytes; its size. Never replaces an object.

        Up to ``part_size`` bytes are held at a time: a small object is one
        conditional PUT, a larger one a multipart upload completed with
        ``If-None-Match: *`` (aborted on any failure, so no parts are left billed).

        Raises:
            ObjectStoreError: ``precondition`` when an object is already there.
        """
        upload = _Multipart(self._s3, self.name, key, metadata, content_type)
        buffer, size = bytearray(), 0
        try:
            for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= part_size:
                    upload.part(bytes(buffer[:part_size]))
                    del buffer[:part_size]
            upload.finish(bytes(buffer))
        except BaseException:
            upload.abort()
            raise
        return size


class _Multipart:
    """One object being written: a multipart upload begun with its first full part,
    or a single conditional PUT if the bytes never fill one."""

    def __init__(
        self, s3: Any, bucket: str, key: str, metadata: Mapping[str, str], content_type: str
    ) -> None:
        self._s3, self.bucket, self.key = s3, bucket, key
        self.metadata, self.content_type = dict(metadata), content_type
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    @property
    def _where(self) -> str:
        return f"write s3://{self.bucket}/{self.key}"

    def part(self, data: bytes) -> None:
        with translated(self._where):
            if self.upload_id is None:
                self.upload_id = self._s3.create_multipart_upload(
                    Bucket=self.bucket, Key=self.key, Metadata=self.metadata,
                    ContentType=self.content_type,
                )["UploadId"]  # fmt: skip
            number = len(self.parts) + 1
            etag = self._s3.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number,
                Body=data,
            )["ETag"]  # fmt: skip
        self.parts.append({"ETag": etag, "PartNumber": number})

    def finish(self, rest: bytes) -> None:
        if self.upload_id is None:
            with translated(self._where):
                self._s3.put_object(
                    Bucket=self.bucket, Key=self.key, Body=rest, Metadata=self.metadata,
                    ContentType=self.content_type, IfNoneMatch="*",
                )  # fmt: skip
            return
        if rest:
            self.part(rest)
        with translated(self._where):
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts}, IfNoneMatch="*",
            )  # fmt: skip
        self.upload_id = None

    def abort(self) -> None:
        """Best effort: a failed upload's parts are removed (they are billed while kept)."""
        if self.upload_id is None:
            return
        try:
            self._s3.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )
        except Exception:  # noqa: BLE001 - the original failure is the one to report
            return
        finally:
            self.upload_id = None


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
