"""Writing sidecars atomically, never over a file docproc did not write.

A hidden temp file (``.<name>.<8 hex>.tmp``, skipped by the watcher's ignore
rules), fsync, rename, fsync of the directory: a crash leaves the old file or
the new one, never half of one. :func:`write_atomic` writes one file;
:func:`stage` and :func:`commit` write a chunk with one filesystem sync.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
from collections.abc import Callable, Collection, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from docproc.errors import SidecarConflict, SidecarError
from docproc.sidecars.fs import (
    _Found,
    _fsync_dir,
    _inspect,
    _make_parents,
    _open_dir,
    _unlink_quietly,
    _write_all,
    temp_name,
)

_WRITE_ATTEMPTS = 3  # re-inspections when the target changes under a write


def write_atomic(
    target: Path,
    data: bytes,
    *,
    expected_existing: Collection[str],
    within: Path | None = None,
    make_parents: bool = False,
) -> str:
    """Write ``data`` at ``target`` atomically, never over a file docproc did not write.

    If ``target`` already holds ``data``, nothing is written (a rewrite after a
    crash is a no-op). Otherwise a temp file in the same directory is written,
    fsynced and renamed onto ``target``, and the directory is fsynced. A new file
    is linked into place (no-clobber), so a file a user creates meanwhile is not
    replaced either.

    Args:
        target: the sidecar path, as planned by :func:`plan_paths`.
        data: the rendered sidecar.
        expected_existing: sha256 hashes of what docproc wrote at ``target``
            before (from the ledger); only such a file may be replaced, or a
            sidecar whose own digest shows it is docproc's, unchanged (a
            ledger that lost its record of it).
        within: the base directory (root or output directory); when given, the
            directory actually opened is checked to lie inside it.
        make_parents: create missing parent directories (the output-directory
            mirror); requires ``within``.

    Returns:
        The sha256 hex digest of ``data``, to record in the ledger.

    Raises:
        SidecarConflict: the target is a file docproc did not write, a symlink,
            or something other than a regular file.
        SidecarError: the directory is outside ``within`` or a name is too long.
        OSError: the write failed (disk full, permissions, read-only filesystem).
    """
    digest = hashlib.sha256(data).hexdigest()
    try:
        if make_parents:
            _make_parents(target.parent, within)
        with _open_dir(target.parent, within) as dir_fd:
            for _ in range(_WRITE_ATTEMPTS):
                found = _inspect(dir_fd, target)
                if found is not None and found.sha256 == digest:
                    return digest
                if found is not None and not (found.own or found.sha256 in expected_existing):
                    raise SidecarConflict(str(target), found.sha256, _NOT_OURS)
                if _install(dir_fd, target.name, data, found):
                    _fsync_dir(dir_fd)
                    return digest
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise SidecarError(f"sidecar name too long for the filesystem: {target}") from exc
        raise
    raise SidecarConflict(str(target), None, "the file kept changing while docproc wrote it")


_NOT_OURS = "a file docproc did not write is there; it is left untouched"


# -- batched writing: the same guarantees, one filesystem sync per chunk -------------


@dataclass(frozen=True, slots=True)
class Staged:
    """A sidecar written to its temp file, not yet durable nor in place."""

    target: Path
    tmp: str
    found: _Found | None
    digest: str
    within: Path | None


def stage(
    target: Path,
    data: bytes,
    *,
    expected_existing: Collection[str],
    within: Path | None = None,
    make_parents: bool = False,
) -> Staged | None:
    """First half of a batched :func:`write_atomic`: the same checks, then the temp file.

    Returns ``None`` when ``target`` already holds ``data``. Nothing is synced
    and nothing is in place until :func:`commit`.

    Raises:
        SidecarConflict, SidecarError, OSError: as :func:`write_atomic`.
    """
    digest = hashlib.sha256(data).hexdigest()
    try:
        if make_parents:
            _make_parents(target.parent, within)
        with _open_dir(target.parent, within) as dir_fd:
            found = _inspect(dir_fd, target)
            if found is not None and found.sha256 == digest:
                return None
            if found is not None and not (found.own or found.sha256 in expected_existing):
                raise SidecarConflict(str(target), found.sha256, _NOT_OURS)
            tmp = temp_name(target.name)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o666, dir_fd=dir_fd)
            try:
                try:
                    _write_all(fd, data)
                finally:
                    os.close(fd)
            except OSError:  # disk full, I/O error: no temp file is left behind
                _unlink_quietly(dir_fd, tmp)
                raise
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise SidecarError(f"sidecar name too long for the filesystem: {target}") from exc
        raise
    return Staged(target, tmp, found, digest, within)


def commit(staged: Sequence[Staged]) -> list[SidecarError | OSError | None]:
    """Second half: make every temp file durable with one sync per filesystem, put
    each in place (no clobber; over docproc's own file only if it is unchanged),
    then sync the directory entries. Temp files are always removed (when the
    directory can still be written). Never raises.

    Returns:
        For each staged sidecar: ``None`` (in place and durable); the
        :class:`SidecarConflict` (or :class:`SidecarError`) that stopped it; or
        the ``OSError`` of a failed sync or rename (disk full, read-only, I/O
        error): not in place, or not known to be durable (a retry finds its
        own bytes and only records them).
    """
    outcome: list[SidecarError | OSError | None] = [None] * len(staged)
    groups = _by_directory(staged)
    unsynced = _sync_filesystems([directory for directory, _ in groups])
    for (directory, within), members in groups.items():
        error: OSError | SidecarError | None = unsynced.get(directory)
        if error is None:
            try:
                with _open_dir(directory, within) as dir_fd:
                    for index, item in members:
                        outcome[index] = _placed(dir_fd, item)
                continue
            except (OSError, SidecarError) as exc:
                error = exc
        discard([item for _, item in members])
        for index, _ in members:
            outcome[index] = outcome[index] or error
    unsynced = _sync_filesystems([directory for directory, _ in groups])  # the new entries
    for (directory, _), members in groups.items():
        for index, _ in members:
            outcome[index] = outcome[index] or unsynced.get(directory)
    return outcome


def _placed(dir_fd: int, item: Staged) -> SidecarError | OSError | None:
    try:
        if _place(dir_fd, item):
            return None
    except OSError as exc:
        return exc
    return SidecarConflict(str(item.target), None, "the file changed while docproc wrote it")


def _by_directory(
    staged: Sequence[Staged],
) -> dict[tuple[Path, Path | None], list[tuple[int, Staged]]]:
    groups: dict[tuple[Path, Path | None], list[tuple[int, Staged]]] = {}
    for index, item in enumerate(staged):
        groups.setdefault((item.target.parent, item.within), []).append((index, item))
    return groups


def _place(dir_fd: int, item: Staged) -> bool:
    """Link or rename one staged temp file into place; the temp file is always removed."""
    try:
        if item.found is None:
            return _link_new(dir_fd, item.tmp, item.target.name)
        return _replace_ours(dir_fd, item.tmp, item.target.name, item.found)
    finally:
        _unlink_quietly(dir_fd, item.tmp)


def discard(staged: Sequence[Staged]) -> None:
    """Drop staged temp files that will not be committed (quietly: the disk may be failing)."""
    for item in staged:
        with suppress(OSError):
            (item.target.parent / item.tmp).unlink()


def _sync_filesystems(directories: Sequence[Path]) -> dict[Path, OSError]:
    """One syncfs(2) per filesystem holding these directories (os.sync() where absent).

    Returns:
        The directories whose filesystem could not be synced (or that could
        not be opened), with the error.
    """
    synced: dict[int, OSError | None] = {}
    failed: dict[Path, OSError] = {}
    for directory in dict.fromkeys(directories):
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            failed[directory] = exc
            continue
        try:
            device = os.fstat(fd).st_dev
            if device not in synced:
                synced[device] = _try_syncfs(fd)
        finally:
            os.close(fd)
        if (error := synced[device]) is not None:
            failed[directory] = error
    return failed


def _try_syncfs(fd: int) -> OSError | None:
    try:
        _syncfs(fd)
    except OSError as exc:
        return exc
    return None


def _syncfs(fd: int) -> None:
    if _LIBC_SYNCFS is None:
        os.sync()
        return
    if _LIBC_SYNCFS(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    except OSError:
        return None


_LIBC_SYNCFS = _load_syncfs()


def _install(dir_fd: int, name: str, data: bytes, found: _Found | None) -> bool:
    """Put ``data`` at ``name`` through a temp file; False if the target changed meanwhile."""
    tmp = temp_name(name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o666, dir_fd=dir_fd)  # fmt: skip
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if found is None:
            return _link_new(dir_fd, tmp, name)
        return _replace_ours(dir_fd, tmp, name, found)
    finally:
        _unlink_quietly(dir_fd, tmp)


def _link_new(dir_fd: int, tmp: str, name: str) -> bool:
    """Link the temp file in as ``name`` only if nothing is there (no clobber)."""
    try:
        os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:  # no hard links here (FAT, some FUSE and SMB mounts)
        if exc.errno not in _NO_LINKS:
            raise
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return True


_NO_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}
)


def _replace_ours(dir_fd: int, tmp: str, name: str, found: _Found) -> bool:
    """Rename over ``name`` if it is still the file inspected (docproc's own)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns) != found.identity:
        return False
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return True
