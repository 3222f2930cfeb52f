"""Storage faults: a full disk, a read-only mount, lost permissions, in words people act on.

docproc writes in four places: sidecars next to the sources, the ledger, the
text store and the fetch area (the last three under the state directory). A
write to any of them can fail for a reason that is no document's fault and
that goes away once someone frees space, remounts read-write or fixes a
permission. Such a failure is a :class:`Fault`: a kind, the place, and a
sentence naming both (``no space left on /srv/inbox``). Callers turn it into
an outcome with a retry, never into a dead end.

Kinds, from the ``errno`` of the failed call:

==============  ==========  ==========================================
kind            errno       sentence
==============  ==========  ==========================================
``no_space``    ENOSPC      ``no space left on <place>``
``quota``       EDQUOT      ``disk quota exceeded on <place>``
``read_only``   EROFS       ``read-only file system at <place>``
``permission``  EACCES,     ``permission denied on <place>``
                EPERM
``io_error``    EIO         ``I/O error on <place>``
==============  ==========  ==========================================

Also here: the start-up check of the state directory (:func:`check_state_dir`:
missing, read-only or full, said in one line with the path) and the low-space
guard (:class:`SpaceGuard`: below ``[storage] min_free_mb`` the daemon stops
taking new work before SQLite fails). Standard library only.
"""

from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from docproc.errors import ObjectStoreError, SidecarError, StorageError, brief

MB = 1024 * 1024
DEFAULT_MIN_FREE_MB = 64
SMALL_FS_SHARE = 0.05  # on a small filesystem the default floor is this share of its size
_PROBE_BYTES = 4096
CLEARED_FREE_BYTES = MB  # a full place counts as having room again from this much

_FAULTS = {
    errno.ENOSPC: ("no_space", "no space left on {}"),
    errno.EDQUOT: ("quota", "disk quota exceeded on {}"),
    errno.EROFS: ("read_only", "read-only file system at {}"),
    errno.EACCES: ("permission", "permission denied on {}"),
    errno.EPERM: ("permission", "permission denied on {}"),
    errno.EIO: ("io_error", "I/O error on {}"),
}
KINDS = ("no_space", "quota", "read_only", "permission", "io_error")
REFUSED = "refused"  # a sidecar path or key the planner refuses: the file's own problem
UNEXPECTED = "unexpected"  # anything else that went wrong for one file (a bug): its own too
OWN_KINDS = (REFUSED, UNEXPECTED)  # not the place's fault: other files there go on
# A failed PUT of a sidecar object, in the words of the retry reason (by ObjectStoreError.code).
_STORE_FAULTS = {
    "denied": ("permission", "access denied on {}"),
    "no_credentials": ("permission", "no AWS credentials for {}"),
    "no_bucket": ("no_bucket", "no such bucket for {}"),
    "throttled": ("unavailable", "throttled by {}"),
    "unavailable": ("unavailable", "server errors from {}"),
    "network": ("unavailable", "cannot reach {}"),
}


@dataclass(frozen=True, slots=True)
class Fault:
    """A write that failed for a reason a person (or time) can clear.

    Attributes:
        kind: one of :data:`KINDS` (or a store's kind for S3, see publish).
        place: the folder, or ``s3://bucket/prefix/``, the write needed.
        reason: one sentence naming the cause and the place.
    """

    kind: str
    place: str
    reason: str


def fault_of(exc: OSError, place: Path | str) -> Fault | None:
    """The storage fault ``exc`` reports for a write in ``place``; ``None`` for anything else.

    Anything else (a vanished folder, a name too long...) is not a fault of the disk.
    """
    found = _FAULTS.get(exc.errno or 0)
    if found is None:
        return None
    kind, sentence = found
    return Fault(kind, str(place), sentence.format(place))


def write_fault(exc: BaseException, place: str) -> Fault:
    """Why a sidecar write in ``place`` failed, as the reason of its retry.

    A refused path (:class:`SidecarError`) is ``refused``; an S3 error is
    named for its code; an ``OSError`` is a storage fault (or ``error``);
    anything else is ``unexpected``, with its type and message.
    """
    if isinstance(exc, SidecarError):
        return Fault(REFUSED, place, exc.reason)
    if isinstance(exc, ObjectStoreError):
        kind, sentence = _STORE_FAULTS.get(exc.code, ("store_error", "cannot write to {}"))
        return Fault(kind, place, f"{sentence.format(place)}: {exc.reason}")
    if isinstance(exc, OSError) and (found := fault_of(exc, place)) is not None:
        return found
    if isinstance(exc, OSError):
        return Fault("error", place, f"cannot write in {place}: {exc.strerror or exc}")
    return Fault(UNEXPECTED, place, brief(exc))


def fault_cleared(place: str, kind: str) -> bool:
    """Whether the filesystem says a fault of ``kind`` in the folder ``place`` is gone.

    A cheap look, no write: room again (:data:`CLEARED_FREE_BYTES`), mounted
    read-write again, writable again. Other kinds (a quota, an I/O error, S3)
    cannot be seen this way: their files wait for their next try.
    """
    if place.startswith("s3://") or kind not in ("no_space", "read_only", "permission"):
        return False
    try:
        info = os.statvfs(place)
    except OSError:
        return False
    if kind == "no_space":
        return _free(info) >= CLEARED_FREE_BYTES
    if kind == "read_only":
        return not info.f_flag & os.ST_RDONLY
    return os.access(place, os.W_OK | os.X_OK, effective_ids=True)


def fault_at(place: Path, *, detail: str = "") -> Fault:
    """What is wrong with writing in ``place`` when the failed call did not say (SQLite).

    Looks at the filesystem: mounted read-only, or no space left; otherwise an
    I/O error with ``detail`` (the library's own words).
    """
    try:
        info = os.statvfs(place)
    except OSError as exc:
        return fault_of(exc, place) or Fault("io_error", str(place), f"cannot reach {place}: {exc}")
    if info.f_flag & os.ST_RDONLY:
        return Fault("read_only", str(place), f"read-only file system at {place}")
    if _free(info) == 0:
        return Fault("no_space", str(place), f"no space left on {place}")
    if not os.access(place, os.W_OK):
        return Fault("permission", str(place), f"permission denied on {place}")
    suffix = f" ({detail})" if detail else ""
    return Fault("io_error", str(place), f"I/O error on {place}{suffix}")


# SQLite's primary result codes that mean the disk, not the data (sqlite.org/rescode.html)
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 8, 10, 13, 14


def sqlite_fault(exc: Exception, directory: Path) -> Fault | None:
    """The storage fault behind a failed SQLite call on a database in ``directory``.

    SQLite reports ``database or disk is full`` (SQLITE_FULL), ``disk I/O
    error`` (SQLITE_IOERR, also what ENOSPC in the WAL can become) or
    ``attempt to write a readonly database``; the errno is lost, so the
    filesystem is asked. ``None``: not a storage fault (locked, corrupt, a bug).
    """
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == _SQLITE_FULL:
        return Fault("no_space", str(directory), f"no space left on {directory}")
    if primary not in (_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CANTOPEN):
        return None
    fault = fault_at(directory, detail=str(exc))
    if primary == _SQLITE_READONLY and fault.kind == "io_error":
        return Fault("read_only", str(directory), f"the ledger in {directory} is read-only ({exc})")
    return fault


def free_bytes(path: Path) -> int | None:
    """Bytes this process may still write on the filesystem of ``path``; ``None`` if unknown."""
    try:
        return _free(os.statvfs(path))
    except OSError:
        return None


def _free(info: os.statvfs_result) -> int:
    # root may use the blocks reserved for it; anyone else only the available ones
    blocks = info.f_bfree if os.geteuid() == 0 else info.f_bavail
    return blocks * info.f_frsize


# -- start-up -------------------------------------------------------------------


def check_state_dir(path: Path, *, create_parents: bool = False) -> None:
    """Refuse a state directory that is missing, read-only or full, in one line with the path.

    A missing directory is created when its parent exists (a first run), or
    with all its parents when ``create_parents`` (the built-in default under
    ``$XDG_STATE_HOME``). A missing parent of a configured directory is
    refused: it usually means a disk that is not mounted, and creating the
    tree would put the ledger on the wrong disk.

    Raises:
        StorageError: ``state directory <path> is missing|read-only|full: <why>``.
    """
    if not path.is_dir():
        _create(path, create_parents)
    try:
        info = os.statvfs(path)
    except OSError as exc:
        raise StorageError(f"state directory {path} cannot be used: {exc.strerror}") from None
    if info.f_flag & os.ST_RDONLY:
        raise StorageError(f"state directory {path} is read-only: its file system is mounted"
                           " read-only")  # fmt: skip
    if _free(info) == 0:
        raise StorageError(f"state directory {path} is full: no space left on its file system")
    _probe(path)


def _create(path: Path, parents: bool) -> None:
    if path.exists() or path.is_symlink():
        raise StorageError(f"state directory {path} is missing: something else is at that path")
    if not parents and not path.parent.is_dir():
        raise StorageError(
            f"state directory {path} is missing, and so is {path.parent}: is its disk mounted?"
            " (create it, or fix state_dir)"
        )
    try:
        path.mkdir(parents=parents, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"state directory {path} is missing and cannot be created: {_why(exc)}"
        ) from None


def _probe(path: Path) -> None:
    """Write, sync and remove a small file: what the ledger will need first."""
    probe = path / f".docproc-probe-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise _refusal(path, exc) from None
    try:
        os.write(fd, b"\0" * _PROBE_BYTES)
        os.fsync(fd)
    except OSError as exc:
        raise _refusal(path, exc) from None
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def _refusal(path: Path, exc: OSError) -> StorageError:
    fault = fault_of(exc, path)
    if fault is not None and fault.kind in ("no_space", "quota"):
        return StorageError(f"state directory {path} is full: {_why(exc)}")
    if fault is not None and fault.kind in ("read_only", "permission"):
        return StorageError(f"state directory {path} is read-only: {_why(exc)}")
    return StorageError(f"state directory {path} cannot be written: {_why(exc)}")


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied for uid {os.geteuid()}"
    return (exc.strerror or str(exc)).lower()


# -- low space ----------------------------------------------------------------


def state_dir_trouble(path: Path, min_free_mb: int | None) -> str | None:
    """What the state directory's filesystem says now, for ``docproc status``.

    ``ledger not writable: ...`` when it is mounted read-only or has no space
    left; ``new work paused: ...`` below ``min_free_mb``; ``None`` when fine.
    """
    try:
        info = os.statvfs(path)
    except OSError as exc:
        return f"ledger not writable: cannot reach {path}: {exc.strerror}"
    if info.f_flag & os.ST_RDONLY:
        return f"ledger not writable: read-only file system at {path}"
    if _free(info) == 0:
        return f"ledger not writable: no space left on {path}"
    shortage = SpaceGuard(path, min_free_mb).shortage()
    return f"new work paused: {shortage}" if shortage else None


class SpaceGuard:
    """Says when the state directory's free space is below the floor for new work.

    Args:
        path: the state directory.
        min_free_mb: the floor; ``None``: :data:`DEFAULT_MIN_FREE_MB`, or on a
            filesystem smaller than 20 times that, :data:`SMALL_FS_SHARE` of its size.
    """

    def __init__(self, path: Path, min_free_mb: int | None) -> None:
        self.path = path
        self.floor = self._floor(min_free_mb)

    def _floor(self, min_free_mb: int | None) -> int:
        if min_free_mb is not None:
            return min_free_mb * MB
        try:
            info = os.statvfs(self.path)
        except OSError:
            return DEFAULT_MIN_FREE_MB * MB
        return min(DEFAULT_MIN_FREE_MB * MB, int(info.f_blocks * info.f_frsize * SMALL_FS_SHARE))

    def shortage(self) -> str | None:
        """``None`` while there is room; else why new work waits, e.g.
        ``3 MB free on /var/lib/docproc, below min_free_mb (64)``."""
        free = free_bytes(self.path)
        if free is None or free >= self.floor:
            return None
        return (f"{free / MB:.0f} MB free on {self.path}, below [storage] min_free_mb"
                f" ({self.floor / MB:g})")  # fmt: skip
