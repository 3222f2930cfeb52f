"""Planning: where the two sidecars of a source go, proven to stay inside their base.

Next to the source, or mirrored under an output directory; any path that
would lead a write out of its root is refused: ``..``, a source outside the
root, a directory symlink pointing elsewhere, a name the filesystem cannot hold.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from docproc.errors import SidecarError
from docproc.models import SIDECAR_SUFFIXES

NAME_MAX = 255  # bytes in one file name: ext4, xfs, btrfs, APFS, NTFS (in UTF-16 units)
PATH_MAX = 4096  # bytes in a whole path handed to the kernel (Linux)


class SidecarPaths(NamedTuple):
    """Where the two sidecars of one source go."""

    markdown: Path
    json: Path


def plan_paths(
    source: Path,
    root: Path,
    *,
    summary_suffix: str = SIDECAR_SUFFIXES[0],
    json_suffix: str = SIDECAR_SUFFIXES[1],
    output_dir: Path | None = None,
) -> SidecarPaths:
    """The sidecar paths of ``source``, proven to stay inside their base directory.

    The base is ``root`` (sidecars next to the source) or ``output_dir`` (the
    source's root-relative path mirrored there, for read-only sources). Pass the
    same base as ``within`` to :func:`write_atomic`.

    Args:
        source: the source file: absolute and under ``root``, or relative to it.
        root: the watched root the source belongs to.
        summary_suffix: appended to the source's name for the Markdown sidecar.
        json_suffix: appended to the source's name for the JSON sidecar.
        output_dir: mirror sidecars under this directory instead of the root.

    Returns:
        The Markdown and JSON sidecar paths (a named 2-tuple).

    Raises:
        SidecarError: ``..`` in the source, a source outside the root, a bad
            suffix, a directory symlink leading out of the base, or a name or
            path too long for the filesystem.
    """
    _check_suffixes(summary_suffix, json_suffix)
    root_abs = _absolute(root)
    base = _absolute(output_dir) if output_dir is not None else root_abs
    rel = _relative_to_root(source, root_abs)
    parent = base.joinpath(*rel.parts[:-1])
    paths = SidecarPaths(parent / (rel.name + summary_suffix), parent / (rel.name + json_suffix))
    for path in paths:
        _check_length(path)
    _check_inside(parent, base)
    return paths


def _absolute(path: Path) -> Path:
    """``path`` made absolute and normalised, symlinks not resolved (they are checked)."""
    return Path(os.path.abspath(path))  # noqa: PTH100 - resolve() would follow links


def _check_suffixes(*suffixes: str) -> None:
    for suffix in suffixes:
        if not suffix or "/" in suffix or os.sep in suffix or "\0" in suffix:
            raise SidecarError(f"invalid sidecar suffix {suffix!r}: empty or has a separator")
    if len(set(suffixes)) != len(suffixes):
        raise SidecarError(f"sidecar suffixes must differ: {suffixes!r}")


def _relative_to_root(source: Path, root: Path) -> Path:
    """``source`` relative to ``root``, refusing anything that could climb out."""
    if "\0" in str(source):
        raise SidecarError(f"refusing a source path with a NUL byte: {source!r}")
    if ".." in source.parts:
        raise SidecarError(f"refusing a source path with '..': {source}")
    if not source.is_absolute():
        rel = source
    elif source.is_relative_to(root):
        rel = source.relative_to(root)
    else:
        raise SidecarError(f"source {source} is outside its root {root}")
    if not rel.parts:
        raise SidecarError(f"source {source} is the root itself, not a file in it")
    return rel


def _check_length(path: Path) -> None:
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise SidecarError(
            f"sidecar name too long for the filesystem: {len(os.fsencode(path.name))} bytes"
            f" (limit {NAME_MAX}) for {path}"
        )
    if len(os.fsencode(path)) >= PATH_MAX:
        raise SidecarError(f"sidecar path too long for the filesystem (limit {PATH_MAX}): {path}")


def _check_inside(directory: Path, base: Path) -> None:
    """Refuse ``directory`` if, symlinks resolved, it is not inside ``base``."""
    real_base = os.path.realpath(base)
    real_dir = os.path.realpath(directory)
    if not _inside(real_dir, real_base):
        raise SidecarError(
            f"refusing to write outside {base}: {directory} leads to {real_dir}"
            " (a symbolic link points out of it)"
        )


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)
