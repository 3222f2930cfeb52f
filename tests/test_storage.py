"""Storage faults in words: errno to kind and sentence, the state directory at start-up,
the low-space floor, and the ledger refusing a write on a real full or read-only tmpfs."""

from __future__ import annotations

# SQLite only: about the state directory's disk, where the SQLite ledger lives.
import errno
import os
from pathlib import Path

import pytest

from docproc.errors import LedgerUnwritable, StorageError
from docproc.health import Snapshot, prometheus_text, status_line
from docproc.ledger.connection import open_ledger
from docproc.storage import (
    MB,
    SpaceGuard,
    check_state_dir,
    fault_cleared,
    fault_of,
    state_dir_trouble,
)
from docproc.textstore import TextStore
from tests.parts import files, queries, raw
from tests.tmpfs import cannot_mount, mounted

needs_mount = pytest.mark.skipif(cannot_mount() is not None, reason=str(cannot_mount()))


@pytest.mark.parametrize(
    ("code", "kind", "sentence"),
    [
        (errno.ENOSPC, "no_space", "no space left on /srv/in"),
        (errno.EDQUOT, "quota", "disk quota exceeded on /srv/in"),
        (errno.EROFS, "read_only", "read-only file system at /srv/in"),
        (errno.EACCES, "permission", "permission denied on /srv/in"),
        (errno.EPERM, "permission", "permission denied on /srv/in"),
        (errno.EIO, "io_error", "I/O error on /srv/in"),
    ],
)
def test_each_storage_errno_has_a_kind_and_a_sentence(code: int, kind: str, sentence: str) -> None:
    fault = fault_of(OSError(code, os.strerror(code)), Path("/srv/in"))
    assert fault is not None
    assert (fault.kind, fault.place, fault.reason) == (kind, "/srv/in", sentence)


def test_other_errors_are_not_storage_faults() -> None:
    assert fault_of(OSError(errno.ENOENT, "gone"), "/srv/in") is None
    assert fault_of(OSError(errno.ENAMETOOLONG, "long"), "/srv/in") is None


def test_a_missing_state_directory_is_created_only_where_its_parent_is(tmp_path: Path) -> None:
    check_state_dir(tmp_path / "state")  # a first run
    assert (tmp_path / "state").is_dir()
    deep = tmp_path / "unmounted" / "state"
    with pytest.raises(StorageError, match=f"state directory {deep} is missing, and so is"):
        check_state_dir(deep)
    assert not deep.parent.exists()
    check_state_dir(deep, create_parents=True)  # the built-in default location
    assert deep.is_dir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StorageError, match="something else is at that path"):
        check_state_dir(tmp_path / "afile")


@needs_mount
def test_full_and_read_only_state_directories_are_refused(tmp_path: Path) -> None:
    with mounted(tmp_path / "state", "1m") as fs:
        fs.fill()
        with pytest.raises(StorageError, match=r"is full: no space left"):
            check_state_dir(fs.path)
        assert (
            state_dir_trouble(fs.path, None) == f"ledger not writable: no space left on {fs.path}"
        )
        fs.free()
        check_state_dir(fs.path)
        assert os.listdir(fs.path) == []  # the probe is gone
        fs.read_only()
        with pytest.raises(StorageError, match=r"is read-only: its file system is mounted"):
            check_state_dir(fs.path)
        assert state_dir_trouble(fs.path, None) == (
            f"ledger not writable: read-only file system at {fs.path}"
        )


@needs_mount
def test_the_low_space_floor_defaults_to_a_share_of_a_small_filesystem(tmp_path: Path) -> None:
    with mounted(tmp_path / "state", "10m") as fs:
        assert SpaceGuard(fs.path, None).floor == int(10 * MB * 0.05)
        guard = SpaceGuard(fs.path, 4)
        assert guard.shortage() is None
        fs.fill(leave=2 * MB)
        assert guard.shortage() == (f"2 MB free on {fs.path}, below [storage] min_free_mb (4)")
        assert state_dir_trouble(fs.path, 4) == f"new work paused: {guard.shortage()}"
        assert SpaceGuard(fs.path, 0).shortage() is None


@needs_mount
def test_a_ledger_write_on_a_full_disk_is_refused_whole_then_works_once_freed(
    tmp_path: Path,
) -> None:
    with mounted(tmp_path / "state", "2m") as fs:
        ledger = open_ledger(fs.path / "ledger.db")
        root = files(ledger).ensure_root("file:///docs", kind="local", mode="events")
        fs.fill()
        with pytest.raises(LedgerUnwritable) as caught:
            for i in range(200):  # enough to need a new page, whatever the cache held
                files(ledger).record_version(root, Path(f"/docs/{i}.txt"), size=i, mtime_ns=1,
                                      sha256=f"{i:064x}")  # fmt: skip
        assert caught.value.kind == "no_space"
        assert str(caught.value) == f"ledger not writable: no space left on {fs.path}"
        recorded = raw(ledger).execute("SELECT COUNT(*) FROM files").fetchone()[0]
        fs.free()
        files(ledger).record_version(
            root, Path("/docs/late.txt"), size=1, mtime_ns=1, sha256="f" * 64
        )
        count = raw(ledger).execute("SELECT COUNT(*) FROM files").fetchone()[0]
        assert count == recorded + 1  # the refused transaction left nothing half-done
        assert queries(ledger).verify().ok
        ledger.close()


@needs_mount
def test_the_text_store_leaves_no_temp_file_and_sweeps_old_ones(tmp_path: Path) -> None:
    with mounted(tmp_path / "text", "1m") as fs:
        store = TextStore(fs.path)
        store.put("warm up")  # the two-hex folder exists; its text does not fit later
        fs.fill()
        with pytest.raises(OSError, match="No space left"):
            store.put("x" * 200_000 + "".join(chr(0x4E00 + i) for i in range(5000)))
        fs.free()
        leftovers = [p for p in fs.path.rglob("*") if p.name.startswith(".tmp-")]
        assert leftovers == []
        folder = next(p for p in fs.path.iterdir() if p.is_dir())
        (folder / ".tmp-abandoned.gz").write_bytes(b"half")
        assert store.sweep() == 1


def test_status_line_and_metrics_say_why() -> None:
    snapshot = Snapshot(
        sidecars_waiting=(("no_space", "no space left on /srv/in", 25),),
        intake_paused="3 MB free on /var/lib/docproc, below [storage] min_free_mb (64)",
        ledger_unwritable="ledger not writable: no space left on /var/lib/docproc",
        state_free_bytes=0,
    )
    line = status_line(snapshot)
    assert line.startswith("ledger not writable: no space left on /var/lib/docproc; new work"
                           " paused: 3 MB free")  # fmt: skip
    assert "25 sidecars retrying (no space left on /srv/in)" in line
    text = prometheus_text(snapshot)
    assert 'docproc_sidecars_retrying{kind="no_space"} 25' in text
    assert 'docproc_sidecars_retrying{kind="read_only"} 0' in text
    assert 'docproc_ledger_unwritable{reason="ledger not writable: no space left on' in text
    assert "docproc_state_free_bytes 0" in text
    assert "docproc_intake_paused 0" not in text
    quiet = prometheus_text(Snapshot())
    assert "docproc_ledger_unwritable 0" in quiet
    assert "docproc_intake_paused 0" in quiet


@needs_mount
def test_a_cleared_fault_is_seen_without_writing(tmp_path: Path) -> None:
    with mounted(tmp_path / "inbox", "4m") as fs:
        place = str(fs.path)
        fs.fill()
        assert not fault_cleared(place, "no_space")
        fs.free()
        assert fault_cleared(place, "no_space")
        fs.read_only()
        assert not fault_cleared(place, "read_only")
        fs.read_write()
        assert fault_cleared(place, "read_only")
        assert not fault_cleared(place, "io_error")  # cannot be seen: its files wait their turn
        assert not fault_cleared("s3://bucket/docs/", "permission")
