"""Mount-table parsing and the auto mode decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from docproc.models import Mode
from docproc.sources.mounts import (
    mount_for,
    parse_mount_table,
    read_mount_table,
    resolve_mode,
    unescape,
)

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
30 22 0:26 / /tmp rw,nosuid,nodev shared:14 - tmpfs tmpfs rw
40 22 0:40 / /mnt/nas rw,relatime shared:20 - nfs4 nas:/export/docs rw,vers=4.2,addr=10.0.0.2
41 22 0:41 / /mnt/share rw,relatime - cifs //fs/Scans rw,vers=3.1.1
42 22 0:42 / /home/me/remote rw,nosuid,nodev,relatime - fuse.sshfs me@host:/data rw
43 22 0:43 / /mnt/gdrive rw,nosuid,nodev,relatime - fuse.rclone gdrive: rw
44 22 0:44 / /var/lib/docker/overlay2/x/merged rw,relatime - overlay overlay rw,lowerdir=/a
45 22 8:17 / /mnt/My\\040Documents rw,relatime shared:30 - ext4 /dev/sdb1 rw
46 40 0:46 / /mnt/nas/local rw,relatime - xfs /dev/sdc1 rw
47 22 0:47 / /mnt/vm rw - 9p drvfs rw
48 22 0:48 / /mnt/plain rw - fuse /dev/fuse rw
"""

PROC_MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
nas:/export /srv/in nfs rw,vers=3 0 0
//fs/a\\040b /srv/smb smb3 rw 0 0
"""


def test_parse_mountinfo() -> None:
    entries = parse_mount_table(MOUNTINFO)
    assert len(entries) == 12
    nas = entries[3]
    assert (nas.mount_point, nas.fstype, nas.source) == ("/mnt/nas", "nfs4", "nas:/export/docs")
    assert entries[8].mount_point == "/mnt/My Documents"


def test_parse_proc_mounts_and_skip_garbage() -> None:
    entries = parse_mount_table(PROC_MOUNTS + "\n garbage\n")
    assert [(e.mount_point, e.fstype) for e in entries] == [
        ("/", "ext4"),
        ("/srv/in", "nfs"),
        ("/srv/smb", "smb3"),
    ]
    assert entries[2].source == "//fs/a b"


def test_unescape() -> None:
    assert unescape(r"/a\040b\011c\134d") == "/a b\tc\\d"


@pytest.mark.parametrize(
    ("path", "mount_point"),
    [
        ("/", "/"),
        ("/mnt/nas", "/mnt/nas"),
        ("/mnt/nas/in/box", "/mnt/nas"),
        ("/mnt/nasty", "/"),  # whole components only
        ("/mnt/nas/local/x", "/mnt/nas/local"),  # the longest prefix wins
        ("/mnt/My Documents/x", "/mnt/My Documents"),
    ],
)
def test_mount_for(path: str, mount_point: str) -> None:
    found = mount_for(path, parse_mount_table(MOUNTINFO))
    assert found is not None
    assert found.mount_point == mount_point


def test_stacked_mounts_the_last_one_wins() -> None:
    text = MOUNTINFO + "50 30 0:50 / /tmp rw - nfs server:/t rw\n"
    found = mount_for("/tmp/x", parse_mount_table(text))
    assert found is not None
    assert found.fstype == "nfs"


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("/mnt/nas/inbox", Mode.POLL),
        ("/mnt/share", Mode.POLL),
        ("/home/me/remote/docs", Mode.POLL),
        ("/mnt/gdrive/x", Mode.POLL),
        ("/mnt/vm/c", Mode.POLL),
        ("/mnt/plain", Mode.POLL),
        ("/var/lib/docker/overlay2/x/merged/app", Mode.EVENTS),
        ("/home/me/docs", Mode.EVENTS),
        ("/tmp/in", Mode.EVENTS),
        ("/mnt/nas/local/in", Mode.EVENTS),
    ],
)
def test_auto_mode(path: str, mode: Mode) -> None:
    assert resolve_mode(path, Mode.AUTO, MOUNTINFO).mode is mode


def test_reasons_name_the_filesystem_and_the_mount() -> None:
    reason = resolve_mode("/mnt/nas/in", Mode.AUTO, MOUNTINFO).reason
    assert reason == "nfs4 mount at /mnt/nas: inotify misses writes made by other hosts"
    assert (
        "fuse.rclone mount at /mnt/gdrive"
        in resolve_mode("/mnt/gdrive", Mode.AUTO, MOUNTINFO).reason
    )
    assert "ext4" in resolve_mode("/home", Mode.AUTO, MOUNTINFO).reason


def test_explicit_modes_are_kept() -> None:
    assert resolve_mode("/mnt/nas", Mode.EVENTS, MOUNTINFO).mode is Mode.EVENTS
    assert resolve_mode("/home", Mode.POLL, MOUNTINFO).mode is Mode.POLL


def test_no_table_means_events() -> None:
    assert resolve_mode("/x", Mode.AUTO, "").mode is Mode.EVENTS


def test_this_machine_has_a_table_that_covers_tmp(tmp_path: Path) -> None:
    text = read_mount_table()
    assert mount_for(tmp_path.resolve(), parse_mount_table(text)) is not None
