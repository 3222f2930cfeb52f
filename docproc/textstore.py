"""Extracted text, compressed and content-addressed under the state directory.

Text is keyed by the sha256 of its UTF-8 bytes and stored gzip-compressed at
``<root>/<2 hex>/<64 hex>.txt.gz``. Writes are atomic (temp file, fsync,
rename), so a reader sees a whole file or none, and writing the same text
twice is a no-op. Stdlib only: extraction workers write here directly, so the
daemon never carries document text through its own memory.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from contextlib import suppress
from pathlib import Path

TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".gz"


class TextStore:
    """A directory of compressed texts addressed by their sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, text_sha256: str) -> Path:
        return self.root / text_sha256[:2] / f"{text_sha256}.txt.gz"

    def put(self, text: str) -> str:
        """Store ``text`` and return its sha256 (hex)."""
        data = text.encode("utf-8", errors="surrogatepass")
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as raw:
                raw.write(gzip.compress(data, compresslevel=6, mtime=0))
                raw.flush()
                os.fsync(raw.fileno())
            Path(tmp).replace(target)
        except BaseException:
            with suppress(OSError):  # the disk may be failing: sweep() gets it at start-up
                Path(tmp).unlink()
            raise
        return digest

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
