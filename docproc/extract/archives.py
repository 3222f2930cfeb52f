"""Zip and tar archives, read member by member through the same routes as any file.

Each member's text appears under its name (``== reports/q3.docx ==``). The
limits of :mod:`docproc.extract.zipguard` apply to the archive as a whole:
declared sizes, expansion ratio, and a budget on the bytes actually
inflated, shared by every member (a tar's is counted as it streams); at most
``max_archive_members`` members are read; an archive inside an archive is
read down to ``max_nesting`` levels. A member that cannot be read (encrypted,
unsupported, damaged) is skipped with a one-line note in the text, so the
others are kept; an archive none of whose members gave text is refused.
"""

from __future__ import annotations

import gzip
import io
import lzma
import posixpath
import tarfile
import zlib

from docproc.errors import PermanentExtractionError
from docproc.extract.reading import Reading
from docproc.extract.zipguard import Budget, GuardedZip

_CHUNK = 1024 * 1024
_TAR_DAMAGE = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)


def zip_archive(data: bytes, reading: Reading) -> str:
    """Every regular member of a zip, in the archive's order."""
    _check_depth(reading, "zip")
    with GuardedZip(data, reading.limits, "zip", encrypted_members=True) as archive:
        infos = [i for i in archive.infos if not i.is_dir()]
        sections, notes = [], []
        for info in infos[: reading.limits.max_archive_members]:
            if info.flag_bits & 0x1:
                notes.append(f"[skipped {info.filename}: encrypted]")
                continue
            try:
                raw = archive.read(info.filename)
            except PermanentExtractionError as exc:
                if "zip bomb" in exc.reason:
                    raise
                notes.append(f"[skipped {info.filename}: {exc.reason}]")
                continue
            sections.append(_member(info.filename, raw or b"", reading, notes))
    return _joined(sections, notes, len(infos), reading, "zip")


def tar_archive(data: bytes, reading: Reading) -> str:
    """Every regular member of a tar (plain, gzip, bzip2 or xz), in order."""
    _check_depth(reading, "tar")
    budget = Budget(len(data), reading.limits)
    sections: list[str] = []
    notes: list[str] = []
    count = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for info in archive:
                if not info.isfile():
                    continue
                count += 1
                if count > reading.limits.max_archive_members:
                    continue
                member = archive.extractfile(info)
                raw = budget.read(member, info.name) if member is not None else b""
                sections.append(_member(info.name, raw, reading, notes))
    except _TAR_DAMAGE as exc:
        if not sections:
            raise PermanentExtractionError(f"tar is damaged or not a tar ({exc})") from exc
        notes.append(f"[the rest is unreadable: {exc}]")
    return _joined(sections, notes, count, reading, "tar")


def gzip_file(data: bytes, reading: Reading) -> str:
    """A single gzip-compressed file (``notes.txt.gz``): the inner name routes it."""
    _check_depth(reading, "gz")
    budget = Budget(len(data), reading.limits)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as packed:
            inner_name = packed.name if isinstance(packed.name, str) else ""
            raw = budget.read(packed, "gz")  # type: ignore[arg-type]  # GzipFile is an IO[bytes]
    except (OSError, EOFError, zlib.error) as exc:
        raise PermanentExtractionError(f"gz is damaged or not gzip ({exc})") from exc
    name = posixpath.basename(inner_name).removesuffix(".gz") or "document"
    if reading.member is None:
        raise PermanentExtractionError("gz members cannot be read here")
    inner = reading.nested()
    text = reading.member(name, raw, inner)
    reading.absorb(inner)
    return text


def _check_depth(reading: Reading, kind: str) -> None:
    if reading.depth + 1 > reading.limits.max_nesting:
        raise PermanentExtractionError(
            f"{kind} nested {reading.depth + 1} archives deep (limit {reading.limits.max_nesting})"
        )
    if reading.member is None:
        raise PermanentExtractionError(f"{kind} members cannot be read here")


def _member(name: str, raw: bytes, reading: Reading, notes: list[str]) -> str:
    """One member's text under its name; a note (and "") when it cannot be read."""
    if not raw.strip():
        return ""
    inner = reading.nested()
    assert reading.member is not None  # checked by _check_depth
    try:
        text = reading.member(name, raw, inner).strip()
    except PermanentExtractionError as exc:
        if "zip bomb" in exc.reason or "nested" in exc.reason:
            raise
        notes.append(f"[skipped {name}: {exc.reason}]")
        return ""
    reading.absorb(inner)
    return f"== {name} ==\n{text}" if text else ""


def _joined(sections: list[str], notes: list[str], count: int, reading: Reading, kind: str) -> str:
    if count > reading.limits.max_archive_members:
        notes.append(f"[{count - reading.limits.max_archive_members} more members not read]")
    texts = [s for s in sections if s]
    if not texts:
        why = "; ".join(notes) if notes else "no members with text"
        raise PermanentExtractionError(f"{kind} holds nothing readable ({why[:300]})")
    return "\n\n".join([*texts, *notes])
