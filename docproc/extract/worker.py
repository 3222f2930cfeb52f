"""One document to one outcome: the per-document boundary of extraction.

:func:`run_task` never raises. Whatever happens to one document (a damaged
file, a library bug, a memory ceiling) becomes an :class:`ExtractFailure`
with a reason for people, and the worker process goes on with the next one.
The text goes straight into the :class:`TextStore`; only its digest travels
back to the daemon.

Order of work, cheapest refusal first:

1. route by suffix (a type that can never be read is refused without being
   read; a suffix that says nothing is routed by the bytes after step 3);
2. open and ``fstat`` the file: a regular file, not over ``max_file_bytes``
   (checked before a byte is read);
3. read the bytes once and check their sha256 against the task, so the text
   belongs to exactly the version the ledger recorded;
4. extract from those bytes, strip, refuse empty text, cut to ``max_chars``;
5. store the text and report (with the pages OCR'd, if any).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from docproc.errors import (
    ExtractionError,
    FailureKind,
    PermanentExtractionError,
    TextStoreUnwritable,
    TransientExtractionError,
)
from docproc.extract import readers, route
from docproc.extract.reading import Reading
from docproc.models import ExtractFailure, Extraction, ExtractLimits, ExtractOutcome, ExtractTask
from docproc.storage import fault_of
from docproc.textstore import TextStore

Extractor = Callable[[bytes], str]
"""An extra extractor: the file's bytes in, its text out (see ``run_task``)."""

_TRANSIENT_ERRNOS = frozenset(
    (errno.EIO, errno.EBUSY, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE, errno.EINTR)
)
_EXTRA_PREFIX = "extra:"

log = structlog.get_logger()


def run_task(
    task: ExtractTask,
    limits: ExtractLimits,
    store: TextStore,
    extra: Mapping[str, Extractor] | None = None,
) -> ExtractOutcome:
    """Extract one document; never raises.

    Args:
        task: the file and the sha256 its bytes must have.
        limits: size, character, archive and time limits (time is the pool's job).
        store: where the text is written.
        extra: suffix (``".hang"``) to extractor, consulted before the normal
            routes. Tests use it to plant hanging or crashing documents; the
            daemon never passes it, so no file name can reach such code there.

    Returns:
        An :class:`Extraction`, or an :class:`ExtractFailure` whose kind says
        whether a retry can help.
    """
    started = time.monotonic()
    chosen: list[str] = []  # the extractor's name, once routing has chosen one
    try:
        return _run(task, limits, store, extra or {}, chosen, started)
    except ExtractionError as exc:
        return _failure(task, exc.kind, exc.reason, chosen, started)
    except MemoryError:
        reason = "document needs more memory than the worker's ceiling"
        return _failure(task, FailureKind.PERMANENT, reason, chosen, started)
    except RecursionError:
        reason = "document is nested too deeply to read"
        return _failure(task, FailureKind.PERMANENT, reason, chosen, started)
    except Exception as exc:
        # The per-document boundary: a library bug costs this document, not the worker.
        log.exception("extract.crashed", sha256=task.sha256, path=str(task.path))
        reason = f"extractor crashed: {type(exc).__name__}: {exc}"
        return _failure(task, FailureKind.PERMANENT, reason, chosen, started)


def _run(
    task: ExtractTask,
    limits: ExtractLimits,
    store: TextStore,
    extra: Mapping[str, Extractor],
    chosen: list[str],
    started: float,
) -> Extraction:
    name = _route(task.path, extra)
    chosen.append(name)
    data = read_verified(task, limits)
    name = chosen[0] = readers.resolve(name, data, task.path.suffix.lower())
    reading = Reading(limits)
    content = _extract(name, data, reading, extra).strip()
    del data  # the bytes can be large; the text is all we keep
    if not content:
        raise PermanentExtractionError(readers.empty_reason(name))
    original = len(content)
    truncated = original if original > limits.max_chars else None
    content = content[: limits.max_chars]
    try:
        digest = store.put(content)
    except OSError as exc:
        fault = fault_of(exc, store.root)
        if fault is not None:
            raise TextStoreUnwritable(f"text store not writable: {fault.reason}") from exc
        raise TransientExtractionError(f"text store write failed: {exc}") from exc
    return Extraction(
        sha256=task.sha256,
        extractor="+".join([name, *(r for r in reading.routes if r != name)]),
        text_sha256=digest,
        chars=len(content),
        truncated_from=truncated,
        seconds=time.monotonic() - started,
        json_bytes=len(json.dumps(content, ensure_ascii=False).encode("utf-8", "replace")) - 2,
        ocr_pages=reading.ocr_pages,
    )


def _route(path: Path, extra: Mapping[str, Extractor]) -> str:
    suffix = path.suffix.lower()
    if suffix in extra:
        return _EXTRA_PREFIX + suffix
    return route.route(path)


def _extract(name: str, data: bytes, reading: Reading, extra: Mapping[str, Extractor]) -> str:
    if name.startswith(_EXTRA_PREFIX):
        return extra[name.removeprefix(_EXTRA_PREFIX)](data)
    return readers.read(name, data, reading)


def read_verified(task: ExtractTask, limits: ExtractLimits) -> bytes:
    """Read the file once, refusing it before reading when it is too big.

    Raises:
        PermanentExtractionError: not a regular file, empty, over the size limit,
            or permission denied.
        TransientExtractionError: vanished, I/O error, or bytes that no longer
            hash to ``task.sha256``.
    """
    try:
        data = _read_capped(task.path, limits.max_file_bytes)
    except OSError as exc:
        raise _read_error(exc) from exc
    if hashlib.sha256(data).hexdigest() != task.sha256:
        raise TransientExtractionError("file changed while it was being read")
    return data


def _read_capped(path: Path, max_bytes: int) -> bytes:
    # O_NONBLOCK: opening a FIFO must not hang the worker; fstat then refuses it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PermanentExtractionError("not a regular file")
        if info.st_size > max_bytes:
            raise PermanentExtractionError(_too_big(info.st_size, max_bytes))
        if info.st_size == 0:
            raise PermanentExtractionError("file is empty (0 bytes)")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TransientExtractionError("file changed while it was being read (it grew)")
    return data


def _read_error(exc: OSError) -> ExtractionError:
    if isinstance(exc, FileNotFoundError):
        return TransientExtractionError("file vanished before it could be read")
    if isinstance(exc, PermissionError):
        # Retrying cannot fix permissions; a person must, then retry it from the ledger.
        return PermanentExtractionError("permission denied")
    if exc.errno in _TRANSIENT_ERRNOS:
        return TransientExtractionError(f"I/O error while reading ({exc.strerror})")
    return TransientExtractionError(f"file could not be read ({exc.strerror or exc})")


def _too_big(size: int, limit: int) -> str:
    return f"file is {size / 1_048_576:.1f} MB, over the {limit / 1_048_576:g} MB limit"


def _failure(
    task: ExtractTask, kind: FailureKind, reason: str, chosen: list[str], started: float
) -> ExtractFailure:
    return ExtractFailure(
        sha256=task.sha256,
        kind=kind,
        reason=reason,
        extractor=chosen[0] if chosen else None,
        seconds=time.monotonic() - started,
    )
