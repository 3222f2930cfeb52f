"""An S3 prefix as the object store of staged batches (the ``ObjectStore`` seam of
:mod:`docproc.providers.staging`): keys relative to the prefix, writes that never
replace, streamed reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from docproc.aws.s3 import Bucket
from docproc.errors import ObjectStoreError

JSONL = "application/jsonl"


class S3Staging:
    """Objects under ``s3://<bucket>/<prefix>``; ``prefix`` is "" or ends in "/"."""

    def __init__(self, bucket: Bucket, prefix: str) -> None:
        self.bucket, self.prefix = bucket, prefix

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket.name}/{self.prefix}{key}"

    def key(self, uri: str) -> str:
        root = self.uri("")
        if not uri.startswith(root):
            raise ObjectStoreError("error", f"{uri} is not under the staging prefix {root}")
        return uri.removeprefix(root)

    def keys(self, prefix: str) -> Iterator[str]:
        token: str | None = None
        while True:
            page, token = self.bucket.list_page(self.prefix + prefix, token)
            yield from (listed.key.removeprefix(self.prefix) for listed in page)
            if token is None:
                return

    def write_new(self, key: str, chunks: Iterable[bytes], *, metadata: Mapping[str, str]) -> int:
        return self.bucket.upload_new(
            self.prefix + key, chunks, metadata=metadata, content_type=JSONL
        )

    def metadata(self, key: str) -> dict[str, str] | None:
        return self.bucket.metadata(self.prefix + key)

    def lines(self, key: str) -> Iterator[bytes]:
        return self.bucket.lines(self.prefix + key)

    def read(self, key: str, *, max_bytes: int) -> bytes | None:
        found = self.bucket.read(self.prefix + key, max_bytes=max_bytes)
        return None if found is None else found[0]

    def delete(self, key: str) -> None:
        self.bucket.delete(self.prefix + key)
