"""Cleaning up: temp files an interrupted or failed write left, and sidecars of deleted sources."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import NamedTuple

from docproc.errors import SidecarConflict, SidecarError
from docproc.sidecars.fs import (
    _TEMP_OVERHEAD,
    _TOKEN_HEX,
    TEMP_SUFFIX,
    _inspect,
    _is_temp_of,
    _open_dir,
)
from docproc.sidecars.paths import NAME_MAX


def remove_stale_temps(target: Path) -> int:
    """Remove temp files an interrupted write of ``target`` left; run at recovery.

    Only regular files named like :func:`temp_name` of ``target`` are removed.

    Returns:
        How many were removed.
    """
    removed = 0
    try:
        entries = list(os.scandir(target.parent))
    except OSError:  # gone, or not readable: nothing can be removed there now
        return 0
    for entry in entries:
        if _is_temp_of(entry.name, target.name) and entry.is_file(follow_symlinks=False):
            try:
                Path(entry.path).unlink()
            except OSError:  # gone, or a read-only folder: swept after the next good write
                continue
            removed += 1
    return removed


def sweep_temps(directory: Path, suffixes: Collection[str]) -> int:
    """Remove the temp files failed or interrupted sidecar writes left in ``directory``.

    For when a write failed and its temp file could not be removed at once
    (the disk went read-only, an I/O error): run at start-up and after the next
    successful write in that folder. Only regular files named like
    :func:`temp_name` of a sidecar (a name ending in one of ``suffixes``, or cut
    to fit ``NAME_MAX``) are removed.

    Returns:
        How many were removed.
    """
    removed = 0
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if e.is_file(follow_symlinks=False)]
    except OSError:
        return 0
    for name in names:
        if _is_sidecar_temp(name, suffixes):
            try:
                (directory / name).unlink()
            except OSError:
                continue
            removed += 1
    return removed


def _is_sidecar_temp(entry: str, suffixes: Collection[str]) -> bool:
    if not (entry.startswith(".") and entry.endswith(TEMP_SUFFIX)):
        return False
    stem = entry[1 : -len(TEMP_SUFFIX)]
    name, dot, token = stem.rpartition(".")
    if not dot or len(token) != _TOKEN_HEX or any(c not in "0123456789abcdef" for c in token):
        return False
    cut = len(os.fsencode(name)) >= NAME_MAX - _TEMP_OVERHEAD - 3  # cut to fit: suffix may be gone
    return cut or any(name.endswith(suffix) for suffix in suffixes)


# -- removing -------------------------------------------------------------------


class Removal(NamedTuple):
    """What :func:`remove_sidecars` did; absent paths are in neither list."""

    removed: list[Path]
    kept: list[Path]  # changed by someone, or not a regular file: left alone


def remove_sidecars(
    paths: Iterable[Path], expected: Collection[str], *, within: Path | None = None
) -> Removal:
    """Delete sidecars whose content is still what docproc wrote.

    For the "delete sidecars with the source" option: a sidecar a person edited
    (its hash is no longer one docproc recorded) is kept.

    Args:
        paths: the sidecar paths, as planned by :func:`plan_paths`.
        expected: sha256 hashes of what docproc wrote at those paths.
        within: the base directory; when given, each directory is checked to lie in it.

    Returns:
        Which paths were removed and which were kept.
    """
    result = Removal([], [])
    for path in paths:
        try:
            with _open_dir(path.parent, within) as dir_fd:
                if _remove_if_ours(dir_fd, path, expected):
                    result.removed.append(path)
        except FileNotFoundError:
            continue
        except SidecarError:
            result.kept.append(path)
    return result


def _remove_if_ours(dir_fd: int, path: Path, expected: Collection[str]) -> bool:
    found = _inspect(dir_fd, path)
    if found is None:
        return False
    if found.sha256 not in expected:
        raise SidecarConflict(str(path), found.sha256, "changed since docproc wrote it; kept")
    os.unlink(path.name, dir_fd=dir_fd)
    return True
