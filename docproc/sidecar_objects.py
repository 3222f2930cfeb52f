"""Sidecars as S3 objects: next to the source key, or under an output prefix.

The S3 counterpart of the writing half of :mod:`docproc.sidecars` (rendering
is shared). For a source key ``docs/x.pdf`` docproc writes
``docs/x.pdf.summary.md`` and ``docs/x.pdf.docproc.json`` in the same bucket,
or, with ``output_prefix = "s3://out/sum/"`` and the watched prefix
``docs/``, ``sum/x.pdf.summary.md`` and ``sum/x.pdf.docproc.json`` in bucket
``out``. Each carries metadata linking it to its source:
``docproc-sha256`` (of the sidecar itself), ``docproc-source-sha256`` and
``docproc-source-etag``.

Planning (:meth:`ObjectSidecars.plan`) keeps every key inside its base
prefix by construction (a string prefix, never a path join) and refuses what
it cannot write safely: a key over S3's 1,024-byte limit, or one with ``.``
or ``..`` segments (S3 keeps them literally, but some S3-compatible servers
and proxies normalise them, which could put the object elsewhere).

Writing never replaces an object docproc did not write:

* no object recorded for the key: ``PUT`` with ``If-None-Match: *``; a 412
  means something appeared: if it holds exactly these bytes the write is
  done (a retry after a crash), otherwise it is a conflict;
* an object recorded: it is read and hashed; the same bytes: done; bytes
  docproc wrote (their sha256 is in the ledger, or their own digest shows
  an unchanged sidecar of docproc's): ``PUT`` with ``If-Match``
  on the ETag just read, so a change in between makes the PUT fail (412)
  and the check runs again; anything else: a conflict, left untouched.

Stores without conditional writes (a 501 answer) fall back to check-then-PUT;
a write by someone else between the check and the PUT can then be lost. A
store that silently ignores the headers cannot be detected: the same race
applies. AWS S3, MinIO (recent releases), R2 and moto honour both headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, NamedTuple

from docproc.errors import ObjectStoreError, SidecarConflict, SidecarError
from docproc.models import SidecarSettings, object_key, object_uri
from docproc.sidecars.digest import MAX_SIDECAR_BYTES, is_own

if TYPE_CHECKING:
    from docproc.aws import Bucket

MAX_KEY_BYTES = 1024
_ATTEMPTS = 3
_NOT_OURS = "an object docproc did not write is there; it is left untouched"
CONTENT_TYPES = {"markdown": "text/markdown; charset=utf-8", "json": "application/json"}


class ObjectKeys(NamedTuple):
    """Where the two sidecar objects of one source go (keys in :attr:`ObjectSidecars.bucket`)."""

    markdown: str
    json: str


class ObjectSidecars:
    """Plans and writes the sidecar objects of one watched S3 prefix.

    Args:
        bucket: where the sidecars go (the watched bucket, or the output prefix's).
        prefix: the watched prefix (``""`` or ending in ``/``).
        settings: the sidecar suffixes.
        output_prefix: ``s3://bucket/prefix/`` to mirror sidecars under; ``None``:
            next to each source key.
    """

    def __init__(
        self, bucket: Bucket, *, prefix: str, settings: SidecarSettings,
        output_prefix: str | None = None,
    ) -> None:  # fmt: skip
        self.bucket = bucket
        self.prefix = prefix
        self.settings = settings
        self._base = object_key(output_prefix)[1] if output_prefix else None
        self._conditional = True

    def uri(self, key: str) -> str:
        return object_uri(self.bucket.name, key)

    @property
    def place(self) -> str:
        """Where this root's sidecar objects go: ``s3://bucket/prefix/``."""
        return self.uri(self.prefix if self._base is None else self._base)

    def plan(self, source_key: str) -> ObjectKeys:
        """The two sidecar keys of ``source_key``, proven to stay under their base prefix.

        Raises:
            SidecarError: the source is outside the watched prefix, a key would
                be over 1,024 bytes, or the key has ``.`` or ``..`` segments.
        """
        if not source_key.startswith(self.prefix) or source_key == self.prefix:
            raise SidecarError(f"{source_key!r} is not an object under {self.prefix!r}")
        rel = source_key[len(self.prefix) :]
        if any(part in (".", "..") for part in rel.split("/")):
            raise SidecarError(f"refusing a sidecar for {source_key!r}: '.' or '..' in the key")
        base = self.prefix if self._base is None else self._base
        keys = ObjectKeys(base + rel + self.settings.summary_suffix,
                          base + rel + self.settings.json_suffix)  # fmt: skip
        for key in keys:
            if not key.startswith(base):
                raise SidecarError(f"sidecar key {key!r} would leave {base!r}")
            if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
                raise SidecarError(f"sidecar key too long for S3 (over {MAX_KEY_BYTES} bytes):"
                                   f" {key[:80]}...")  # fmt: skip
        return keys

    def write(
        self, key: str, data: bytes, *, expected: Collection[str], metadata: Mapping[str, str],
        content_type: str,
    ) -> str:  # fmt: skip
        """Put ``data`` at ``key`` unless an object docproc did not write is there.

        Args:
            key: a sidecar key from :meth:`plan`.
            data: the rendered sidecar.
            expected: sha256 of every sidecar docproc wrote (or was about to write)
                at this key, from the ledger.
            metadata: user metadata linking the sidecar to its source.
            content_type: the object's Content-Type.

        Returns:
            The sha256 of ``data``.

        Raises:
            SidecarConflict: someone else's object is at ``key``.
            ObjectStoreError: a call failed (access denied, throttled, ...).
        """
        digest = hashlib.sha256(data).hexdigest()
        meta = {**metadata, "docproc-sha256": digest}
        # Nothing of ours can be there: skip the read and PUT only if absent (when the
        # store supports that; otherwise look first).
        blind = not expected and self._conditional
        for _ in range(_ATTEMPTS):
            found = None if blind else self._read(key)
            blind = False
            if found is not None:
                body_sha, _, own = found
                if body_sha == digest:
                    return digest
                if not own and body_sha not in expected:
                    raise SidecarConflict(self.uri(key), body_sha, _NOT_OURS)
            if self._put(key, data, meta, content_type, None if found is None else found[1]):
                return digest
        raise SidecarConflict(
            self.uri(key), None, "the object kept changing while docproc wrote it"
        )

    def read(self, key: str) -> bytes | None:
        """The object at ``key``, or ``None`` when there is none or it is too large to be
        a sidecar of docproc's (for a ledger adopting the sidecars it finds).

        Raises:
            ObjectStoreError: the read failed (access denied, throttled, ...).
        """
        try:
            found = self.bucket.read(key, max_bytes=MAX_SIDECAR_BYTES)
        except ObjectStoreError as exc:
            if exc.code == "too_large":
                return None
            raise
        return None if found is None else found[0]

    def remove_if_ours(self, key: str, expected: Collection[str]) -> bool:
        """Delete the sidecar at ``key`` if it still holds bytes docproc wrote.

        Returns:
            ``True`` when removed (or already absent); ``False`` when kept.

        The check and the delete are two calls: a change in between is lost.
        """
        found = self._read(key)
        if found is None:
            return True
        if found[0] not in expected:  # an unchanged sidecar of a lost ledger is kept too
            return False
        self.bucket.delete(key)
        return True

    def _read(self, key: str) -> tuple[str, str, bool] | None:
        """(sha256, ETag, docproc's own and unchanged) of the object at ``key``."""
        try:
            found = self.bucket.read(key, max_bytes=MAX_SIDECAR_BYTES)
        except ObjectStoreError as exc:
            if exc.code == "too_large":
                raise SidecarConflict(self.uri(key), None, _NOT_OURS) from exc
            raise
        if found is None:
            return None
        body, etag = found
        return hashlib.sha256(body).hexdigest(), etag, is_own(body)

    def _put(
        self, key: str, data: bytes, meta: Mapping[str, str], content_type: str, etag: str | None
    ) -> bool:
        """One conditional PUT; ``False`` when the condition failed (look again)."""
        try:
            self.bucket.put(
                key, data, metadata=meta, content_type=content_type,
                if_none_match=self._conditional and etag is None,
                if_match=etag if self._conditional else None,
            )  # fmt: skip
        except ObjectStoreError as exc:
            if exc.code == "precondition":
                return False
            if exc.code == "not_implemented" and self._conditional:
                self._conditional = False  # see the module docstring: the race that remains
                return False
            raise
        return True
