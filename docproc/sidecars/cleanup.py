"""Cleaning up: temp files an interrupted write left, and sidecars of deleted sources."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import NamedTuple

from docproc.errors import SidecarConflict, SidecarError
from docproc.sidecars.fs import _inspect, _is_temp_of, _open_dir


def remove_stale_temps(target: Path) -> int:
    """Remove temp files an interrupted write of ``target`` left; run at recovery.

    Only regular files named like :func:`temp_name` of ``target`` are removed.

    Returns:
        How many were removed.
    """
    removed = 0
    try:
        entries = list(os.scandir(target.parent))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if _is_temp_of(entry.name, target.name) and entry.is_file(follow_symlinks=False):
            try:
                Path(entry.path).unlink()
            except FileNotFoundError:
                continue
            removed += 1
    return removed


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
