"""The disk, through a descriptor of the target's directory: opening it (checked to lie
inside its base), inspecting what is at a target, temp names, small syscall helpers."""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from docproc.errors import SidecarConflict, SidecarError
from docproc.sidecars.digest import MAX_SIDECAR_BYTES, is_own
from docproc.sidecars.paths import NAME_MAX, _check_inside, _inside

TEMP_SUFFIX = ".tmp"
_TOKEN_HEX = 8  # hex digits of the random part of a temp name
_TEMP_OVERHEAD = len(".") + len(".") + _TOKEN_HEX + len(TEMP_SUFFIX)
_CHUNK = 1024 * 1024


class _Found(NamedTuple):
    """A regular file at the target: its hash and identity when inspected."""

    sha256: str
    identity: tuple[int, int, int, int]  # device, inode, size, mtime_ns
    own: bool = False  # a sidecar docproc wrote, unchanged (its digest still matches)


def _make_parents(directory: Path, within: Path | None) -> None:
    if within is None:
        raise SidecarError("make_parents needs the base directory (within)")
    _check_inside(directory, within)
    directory.mkdir(parents=True, exist_ok=True)


@contextmanager
def _open_dir(directory: Path, within: Path | None) -> Iterator[int]:
    """A descriptor of ``directory``; every later step works relative to it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if within is not None:
            real = _fd_path(fd) or os.path.realpath(directory)
            if not _inside(real, _realpath(str(within))):
                raise SidecarError(f"refusing to write outside {within}: {directory} is {real}")
        yield fd
    finally:
        os.close(fd)


@lru_cache(maxsize=256)
def _realpath(base: str) -> str:
    """The real path of a base directory (a watched root), resolved once.

    Safe to cache: a root swapped for a symlink afterwards makes the opened
    directory's real path differ from this one, and the write is refused.
    """
    return os.path.realpath(base)


def _fd_path(fd: int) -> str | None:
    """Where an open directory really is (Linux ``/proc``), closing the check/use race."""
    try:
        return str(Path(f"/proc/self/fd/{fd}").readlink())
    except OSError:
        return None


def _inspect(dir_fd: int, target: Path) -> _Found | None:
    """What is at ``target`` now: nothing, or a regular file's hash and identity."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(target.name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise SidecarConflict(str(target), None, "a symbolic link is there") from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SidecarConflict(str(target), None, "something other than a regular file is there")
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        sha256, head = _hash_fd(fd)
        own = info.st_size <= MAX_SIDECAR_BYTES and is_own(head)
        return _Found(sha256, identity, own)
    finally:
        os.close(fd)


def _hash_fd(fd: int) -> tuple[str, bytes]:
    """The file's sha256, and its bytes when it is small enough to be a sidecar."""
    digest = hashlib.sha256()
    kept: list[bytes] = []
    size = 0
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if size <= MAX_SIDECAR_BYTES:
            kept.append(chunk)
    return digest.hexdigest(), b"".join(kept) if size <= MAX_SIDECAR_BYTES else b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink_quietly(dir_fd: int, name: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def _fsync_dir(dir_fd: int) -> None:
    try:
        os.fsync(dir_fd)
    except OSError as exc:  # some filesystems cannot fsync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def temp_name(name: str) -> str:
    """A fresh temp name for ``name``: ``.<name>.<8 hex>.tmp``, within ``NAME_MAX``.

    Hidden and ending in ``.tmp``, so the watcher's ignore rules skip it. A long
    ``name`` is cut (by bytes) so the temp name always fits where ``name`` does.
    """
    return _temp_prefix(name) + secrets.token_hex(_TOKEN_HEX // 2) + TEMP_SUFFIX


def _temp_prefix(name: str) -> str:
    raw = os.fsencode(name)[: NAME_MAX - _TEMP_OVERHEAD]
    return "." + os.fsdecode(raw) + "."


def _is_temp_of(entry: str, name: str) -> bool:
    prefix = _temp_prefix(name)
    token = entry[len(prefix) : -len(TEMP_SUFFIX)]
    return (
        entry.startswith(prefix)
        and entry.endswith(TEMP_SUFFIX)
        and len(entry) == len(prefix) + _TOKEN_HEX + len(TEMP_SUFFIX)
        and all(ch in "0123456789abcdef" for ch in token)
    )
