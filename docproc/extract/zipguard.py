"""Zip-bomb guard for zip-based formats (docx, pptx, xlsx, odt, epub, ...).

Two layers, because a zip's central directory can lie about sizes:

1. :func:`check` reads only the central directory (nothing is decompressed)
   and refuses archives whose *declared* total size, expansion ratio or member
   count is out of bounds. Every zip-based file passes through it before any
   reader, ours or unstructured's, opens it.
2. :class:`GuardedZip` then reads members for our own readers with a hard
   budget on the bytes actually produced by decompression. CPython's zipfile
   already stops a member at its declared size (a member that declares 1 KB
   and inflates to gigabytes ends in "Bad CRC-32" after 1 KB), so the budget
   is the second belt: it bounds the sum over all members, whatever the
   zipfile implementation does.

Below :data:`RATIO_FLOOR` of expansion the ratio is not checked: a 20 KB
member of repeated XML can compress 500:1 and hurt nobody.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
import zlib
from typing import IO

from docproc.errors import PermanentExtractionError
from docproc.models import ExtractLimits

MAX_MEMBERS = 20_000  # real Office files hold tens to a few thousand parts
RATIO_FLOOR = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Compound File (legacy Office, encrypted OOXML)
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)


def check(data: bytes, limits: ExtractLimits, kind: str) -> None:
    """Refuse ``data`` unless its central directory looks like a sane archive.

    Args:
        data: the whole file.
        limits: ``max_archive_bytes`` and ``max_expansion_ratio`` apply.
        kind: the format's name for messages, e.g. ``"docx"``.

    Raises:
        PermanentExtractionError: not a zip, damaged, encrypted, or a possible bomb.
    """
    _open(data, limits, kind).close()


class Budget:
    """Bytes that decompression may still produce: the bomb guard for streams.

    At most ``max_archive_bytes`` and at most ``max_expansion_ratio`` times the
    file's size (never less than :data:`RATIO_FLOOR`), shared by every read.
    """

    def __init__(self, packed_size: int, limits: ExtractLimits) -> None:
        ratio_budget = max(int(limits.max_expansion_ratio * packed_size), RATIO_FLOOR)
        self.left = min(limits.max_archive_bytes, ratio_budget)

    def read(self, stream: IO[bytes], name: str) -> bytes:
        """All of ``stream``, charged to the budget.

        Raises:
            PermanentExtractionError: the budget ran out (a bomb, or one that lies).
        """
        parts = []
        while chunk := stream.read(min(_CHUNK, self.left + 1)):
            self.left -= len(chunk)
            if self.left < 0:
                raise PermanentExtractionError(
                    f"archive expands too much ({name} inflates past the limit), "
                    "refused as a possible zip bomb"
                )
            parts.append(chunk)
        return b"".join(parts)


class GuardedZip:
    """A zip archive whose members are read under a decompression budget.

    Construction runs :func:`check`. The budget is shared by all reads: at most
    ``max_archive_bytes`` and at most ``max_expansion_ratio`` times the file's
    size (never less than :data:`RATIO_FLOOR`).
    """

    def __init__(
        self, data: bytes, limits: ExtractLimits, kind: str, *, encrypted_members: bool = False
    ) -> None:
        self._zip = _open(data, limits, kind, encrypted_members=encrypted_members)
        self._kind = kind
        self._budget = Budget(len(data), limits)
        self.infos = self._zip.infolist()
        self.names = frozenset(info.filename for info in self.infos)

    def read(self, name: str) -> bytes | None:
        """Return the member's bytes, or None when the archive has no such member.

        Raises:
            PermanentExtractionError: the budget ran out (a lying bomb), or the
                member is damaged.
        """
        if name not in self.names:
            return None
        try:
            with self._zip.open(name) as member:
                return self._budget.read(member, name)
        except _DAMAGE as exc:
            raise _damaged(self._kind, exc) from exc

    def xml(self, name: str) -> ET.Element | None:
        """Parse the member ``name`` as XML; None when the archive lacks it.

        expat refuses entity-expansion bombs and never fetches external entities.

        Raises:
            PermanentExtractionError: the member is damaged, or not XML.
        """
        raw = self.read(name)
        if raw is None:
            return None
        try:
            return ET.fromstring(raw)  # noqa: S314 - expat refuses entity bombs; no external fetch
        except ET.ParseError as exc:
            raise _damaged(self._kind, exc) from exc

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> GuardedZip:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _open(
    data: bytes, limits: ExtractLimits, kind: str, *, encrypted_members: bool = False
) -> zipfile.ZipFile:
    if data.startswith(_OLE_MAGIC):
        raise PermanentExtractionError(_ole_reason(data, kind))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _DAMAGE as exc:
        raise _damaged(kind, exc) from exc
    try:
        _check_directory(archive.infolist(), limits, kind, encrypted_members)
    except BaseException:
        archive.close()
        raise
    return archive


def _check_directory(
    members: list[zipfile.ZipInfo], limits: ExtractLimits, kind: str, encrypted_members: bool
) -> None:
    """Judge the declared sizes; nothing is decompressed here.

    ``encrypted_members``: a plain archive may hold some (they are skipped);
    a document format with one is encrypted as a whole.
    """
    if len(members) > MAX_MEMBERS:
        raise PermanentExtractionError(
            f"archive has {len(members):,} members (more than {MAX_MEMBERS:,}), "
            "refused as a possible zip bomb"
        )
    if not encrypted_members and any(info.flag_bits & 0x1 for info in members):
        raise PermanentExtractionError(f"{kind} is password protected (encrypted zip)")
    expanded = sum(info.file_size for info in members)
    packed = max(sum(info.compress_size for info in members), 1)
    if expanded > limits.max_archive_bytes:
        raise PermanentExtractionError(
            f"archive expands too much ({_mb(expanded)} > {_mb(limits.max_archive_bytes)}), "
            "refused as a possible zip bomb"
        )
    ratio = expanded / packed
    if expanded > RATIO_FLOOR and ratio > limits.max_expansion_ratio:
        raise PermanentExtractionError(
            f"archive expands too much (ratio {ratio:,.0f}:1 > "
            f"{limits.max_expansion_ratio:g}:1), refused as a possible zip bomb"
        )


def _ole_reason(data: bytes, kind: str) -> str:
    """Office encrypts OOXML by wrapping it in a Compound File with this stream."""
    if _ENCRYPTED_PACKAGE in data[:1_048_576] or _ENCRYPTED_PACKAGE in data[-1_048_576:]:
        return f"{kind} is password protected"
    return f"{kind} is a legacy binary Office file (not a zip), which cannot be read as {kind}"


def _damaged(kind: str, exc: BaseException) -> PermanentExtractionError:
    return PermanentExtractionError(f"{kind} is damaged or not a {kind} ({exc})")


def _mb(size: int) -> str:
    return f"{size / 1_048_576:,.0f} MB"


def local_name(tag: object) -> str:
    """An XML tag without its namespace (``{ns}p`` -> ``p``); "" for comments and PIs."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""
