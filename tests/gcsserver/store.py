"""The objects of the Cloud Storage test server: on disk, indexed in memory, thread-safe.

Each object has a generation (a counter, as GCS's is a number that only
grows), its custom metadata, a content type and its bytes in a file of its
own, so a 200 MB object costs no memory. ``ifGenerationMatch=0`` is honoured
at creation: a second create of a name that exists fails, as with GCS.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class StoreError(Exception):
    """An answer of the JSON API: HTTP status, reason, message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


@dataclass
class StoredObject:
    bucket: str
    name: str
    path: Path
    size: int
    generation: int
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)

    def resource(self) -> dict[str, object]:
        """The object resource of the JSON API (numbers as strings, as GCS sends them)."""
        found: dict[str, object] = {
            "kind": "storage#object", "id": f"{self.bucket}/{self.name}/{self.generation}",
            "name": self.name, "bucket": self.bucket, "generation": str(self.generation),
            "metageneration": "1", "contentType": self.content_type, "size": str(self.size),
            "storageClass": "STANDARD",
        }  # fmt: skip
        if self.metadata:
            found["metadata"] = dict(self.metadata)
        return found


class GcsStore:
    """Buckets and objects under ``root`` (a folder this store owns)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.buckets: set[str] = set()
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self._lock = threading.Lock()
        self._generation = 1_700_000_000_000_000
        self.creates: list[tuple[str, str]] = []  # (bucket, name) of every object created
        self.overwrites = 0  # an object replaced (docproc never does that)

    def bucket(self, name: str) -> str:
        with self._lock:
            self.buckets.add(name)
        return name

    # -- writes ----------------------------------------------------------------------

    def put(
        self, bucket: str, name: str, source: IO[bytes] | Iterable[bytes], *, size: int | None,
        metadata: dict[str, str] | None = None, content_type: str = "application/octet-stream",
        if_generation_match: int | None = None,
    ) -> StoredObject:  # fmt: skip
        """Store an object from a stream (``size`` bytes of it, or every chunk)."""
        self._check_bucket(bucket)
        self._check_name(name)
        temp = self.root / f".upload-{os.getpid()}-{threading.get_ident()}-{_digest(name)}"
        written = _copy(source, temp, size)
        with self._lock:
            existing = self.objects.get((bucket, name))
            if if_generation_match is not None and (
                (existing is None and if_generation_match != 0)
                or (existing is not None and existing.generation != if_generation_match)
            ):
                temp.unlink()
                raise StoreError(412, "conditionNotMet", "At least one of the pre-conditions"
                                 " you specified did not hold.")  # fmt: skip
            self._generation += 1
            path = self.root / f"{_digest(bucket + '/' + name)}-{self._generation}"
            temp.replace(path)
            if existing is not None:
                self.overwrites += 1
                existing.path.unlink(missing_ok=True)
            stored = StoredObject(bucket, name, path, written, self._generation, content_type,
                                  dict(metadata or {}))  # fmt: skip
            self.objects[(bucket, name)] = stored
            self.creates.append((bucket, name))
        return stored

    def put_lines(self, bucket: str, name: str, lines: Iterable[bytes]) -> StoredObject:
        """An object made of JSONL lines (what a batch job writes)."""
        return self.put(bucket, name, (line + b"\n" for line in lines), size=None,
                        content_type="application/jsonl")  # fmt: skip

    def delete(self, bucket: str, name: str) -> None:
        self._check_bucket(bucket)
        with self._lock:
            stored = self.objects.pop((bucket, name), None)
        if stored is None:
            raise StoreError(404, "notFound", f"No such object: {bucket}/{name}")
        stored.path.unlink(missing_ok=True)

    # -- reads -----------------------------------------------------------------------

    def get(self, bucket: str, name: str) -> StoredObject:
        self._check_bucket(bucket)
        with self._lock:
            stored = self.objects.get((bucket, name))
        if stored is None:
            raise StoreError(404, "notFound", f"No such object: {bucket}/{name}")
        return stored

    def lines(self, bucket: str, name: str) -> Iterator[bytes]:
        """The lines of an object, without their newlines (memory flat)."""
        with open(self.get(bucket, name).path, "rb") as held:
            for raw in held:
                yield raw.rstrip(b"\n")

    def listing(self, bucket: str, prefix: str) -> list[StoredObject]:
        """Objects whose name starts with ``prefix``, in name order (as GCS lists them)."""
        self._check_bucket(bucket)
        with self._lock:
            found = [
                o for (b, n), o in self.objects.items() if b == bucket and n.startswith(prefix)
            ]
        return sorted(found, key=lambda o: o.name)

    def names(self, bucket: str, prefix: str = "") -> list[str]:
        return [o.name for o in self.listing(bucket, prefix)]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)

    # -- checks ------------------------------------------------------------------------

    def _check_bucket(self, bucket: str) -> None:
        if bucket not in self.buckets:
            raise StoreError(404, "notFound", "The specified bucket does not exist.")

    @staticmethod
    def _check_name(name: str) -> None:
        if not name or len(name.encode()) > 1024 or "\n" in name or "\r" in name:
            raise StoreError(400, "invalid", f"Invalid object name: {name[:100]!r}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _copy(source: IO[bytes] | Iterable[bytes], path: Path, size: int | None) -> int:
    written = 0
    with open(path, "wb") as out:
        if hasattr(source, "read"):
            left = size if size is not None else -1
            while left != 0:
                chunk = source.read(min(1 << 20, left) if left > 0 else 1 << 20)  # type: ignore[union-attr]
                if not chunk:
                    break
                out.write(chunk)
                written += len(chunk)
                left = left - len(chunk) if left > 0 else left
        else:
            for chunk in source:
                out.write(chunk)
                written += len(chunk)
    return written
