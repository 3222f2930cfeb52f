"""Extracted text, compressed and content-addressed under the state directory.

Text is keyed by the sha256 of its UTF-8 bytes and stored gzip-compressed at
``<root>/<2 hex>/<64 hex>.txt.gz``. Writes are atomic (temp file, rename),
so a reader sees a whole file or none, and writing the same text twice is a
no-op. Stdlib only: extraction workers write here directly, so the daemon
never carries document text through its own memory.

Durability: a text must be on disk before the ledger says it exists. By
default each write is fsynced. Profiled on a 2,000-document scan, that
fsync was most of an extraction worker's time (0.4 ms a file on an idle
disk, 4 ms under load, against 0.1-1 ms of parsing), so where the kernel has
``syncfs`` (Linux) a bulk ``docproc scan`` has its workers write with
``sync=False`` and makes a whole batch durable with one
:meth:`TextStore.barrier` before it records the batch
(:class:`~docproc.extract.ExtractorPool` with ``batch_sync``). The daemon
keeps the per-file fsync: ``syncfs`` waits for every writer on the
filesystem, which a long-running service must not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import hashlib
import os
import tempfile
from contextlib import suppress
from functools import cache
from pathlib import Path

TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".gz"


@cache
def _syncfs() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """libc's ``syncfs(fd)`` (Linux), or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def batched_sync_available() -> bool:
    """Whether :meth:`TextStore.barrier` can make other processes' writes durable."""
    return _syncfs() is not None


class TextStore:
    """A directory of compressed texts addressed by their sha256.

    Args:
        root: the directory.
        sync: fsync each text as it is written. Pass False only when something
            calls :meth:`barrier` before the texts are relied on.
    """

    def __init__(self, root: Path, *, sync: bool = True) -> None:
        self.root = root
        self.sync = sync
        self._made: set[Path] = set()

    def path_for(self, text_sha256: str) -> Path:
        return self.root / text_sha256[:2] / f"{text_sha256}.txt.gz"

    def put(self, text: str) -> str:
        """Store ``text`` and return its sha256 (hex)."""
        data = text.encode("utf-8", errors="surrogatepass")
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if target.exists():
            return digest
        if target.parent not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(target.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as raw:
                raw.write(gzip.compress(data, compresslevel=6, mtime=0))
                raw.flush()
                if self.sync:
                    os.fsync(raw.fileno())
            Path(tmp).replace(target)
        except BaseException:
            with suppress(OSError):  # the disk may be failing: sweep() gets it at start-up
                Path(tmp).unlink()
            raise
        return digest

    def barrier(self) -> None:
        """Make every text written so far under ``root`` durable, by any process.

        One ``syncfs`` of the store's filesystem; without it (not Linux) this
        does nothing, and writers must have been made with ``sync=True``.

        Raises:
            OSError: the filesystem reported a write error.
        """
        syncfs = _syncfs()
        if syncfs is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if syncfs(fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"syncfs failed: {os.strerror(code)}")
        finally:
            os.close(fd)

    def get(self, text_sha256: str) -> str:
        """Return the stored text; raises ``FileNotFoundError`` if it was pruned."""
        data = gzip.decompress(self.path_for(text_sha256).read_bytes())
        return data.decode("utf-8", errors="surrogatepass")

    def has(self, text_sha256: str) -> bool:
        return self.path_for(text_sha256).exists()

    def sweep(self) -> int:
        """Remove temp files of writes cut short (a crash, a full disk); run at start-up.

        Only ``.tmp-*.gz`` files in the two-hex-digit folders are touched.
        Returns how many were removed.
        """
        removed = 0
        try:
            folders = [entry.path for entry in os.scandir(self.root) if entry.is_dir()]
        except OSError:
            return 0
        for folder in folders:
            for leftover in Path(folder).glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
                try:
                    leftover.unlink()
                except OSError:
                    continue
                removed += 1
        return removed
