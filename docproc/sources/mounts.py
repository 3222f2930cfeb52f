"""Which filesystem a watched folder lives on, and whether inotify can be trusted there.

inotify only reports changes made through this host's VFS. On network and
FUSE filesystems (NFS, SMB, sshfs, rclone...) writes made by other hosts, or
behind the FUSE daemon's back, never fire an event, so ``mode = "auto"``
polls there and uses events elsewhere.

Everything here is pure except :func:`read_mount_table`, which reads the
kernel's table once; the decision takes that text as an argument.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from docproc.models import Mode

# Filesystems where inotify misses changes made by other hosts or by the server.
NETWORK_FSTYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "davfs",
        "virtiofs",
        "vboxsf",
    }
)
MOUNT_TABLES = ("/proc/self/mountinfo", "/proc/mounts")
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of the mount table: where, what type, from which source."""

    mount_point: str
    fstype: str
    source: str


@dataclass(frozen=True, slots=True)
class ModeDecision:
    """The mode a root will use, and a short reason for people (logs, status)."""

    mode: Mode
    reason: str


def unescape(field: str) -> str:
    r"""Undo the kernel's octal escapes (``\040`` space, ``\011`` tab, ``\012``, ``\134``)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mount_table(text: str) -> list[MountEntry]:
    """Parse ``/proc/self/mountinfo`` or ``/proc/mounts`` text, in table order.

    The format is recognised per line: mountinfo lines carry a lone ``-``
    separator before the filesystem type. Malformed lines are skipped.
    """
    entries: list[MountEntry] = []
    for line in text.splitlines():
        fields = line.split()
        if "-" in fields[6:]:
            sep = fields.index("-", 6)
            if len(fields) > sep + 2:
                entries.append(MountEntry(unescape(fields[4]), fields[sep + 1], fields[sep + 2]))
        elif len(fields) >= 3:
            entries.append(MountEntry(unescape(fields[1]), fields[2], unescape(fields[0])))
    return entries


def mount_for(path: str | Path, entries: list[MountEntry]) -> MountEntry | None:
    """The mount containing ``path``: the longest mount point that is a prefix of it.

    Prefixes are compared by whole path components (``/mnt/x`` contains
    ``/mnt/x/y`` but not ``/mnt/xy``). Of mounts stacked on the same point the
    last one in the table wins, as it hides the others. ``path`` should be
    absolute and already resolved (symlinks followed).
    """
    target = os.path.normpath(os.fspath(path))
    best: MountEntry | None = None
    for entry in entries:
        point = os.path.normpath(entry.mount_point)
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(os.path.normpath(best.mount_point))):
            best = entry
    return best


def needs_polling(fstype: str) -> bool:
    """Whether inotify misses changes on filesystems of this type."""
    return fstype in NETWORK_FSTYPES or fstype == "fuse" or fstype.startswith("fuse.")


def resolve_mode(path: str | Path, mode: Mode, mount_table_text: str) -> ModeDecision:
    """Turn a configured mode into ``EVENTS`` or ``POLL``, with the reason.

    Args:
        path: the watched folder, absolute and resolved.
        mode: the configured mode; ``EVENTS`` and ``POLL`` are kept as they are.
        mount_table_text: the text of ``/proc/self/mountinfo`` or
            ``/proc/mounts``; may be empty (no table: events).
    """
    if mode is not Mode.AUTO:
        return ModeDecision(mode, f"mode set to {mode.value} in the configuration")
    entry = mount_for(path, parse_mount_table(mount_table_text))
    if entry is None:
        return ModeDecision(Mode.EVENTS, "no mount table entry found: using inotify events")
    where = f"{entry.fstype} mount at {entry.mount_point}"
    if entry.fstype in NETWORK_FSTYPES:
        return ModeDecision(Mode.POLL, f"{where}: inotify misses writes made by other hosts")
    if needs_polling(entry.fstype):
        return ModeDecision(Mode.POLL, f"{where}: inotify misses changes behind a FUSE filesystem")
    return ModeDecision(Mode.EVENTS, f"{where}: local filesystem, inotify events")


def read_mount_table() -> str:
    """The kernel's mount table as text, or ``""`` where there is none (not Linux)."""
    for name in MOUNT_TABLES:
        try:
            with open(name, "rb") as handle:
                return os.fsdecode(handle.read())
        except OSError:
            continue
    return ""
