"""The local-folder source against real folders and real watchdog observers."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from docproc.errors import SourceError
from docproc.models import Candidate, IntakeBatch, Mode, WatchSpec
from docproc.sources import observer
from docproc.sources.base import Source
from docproc.sources.local import LocalSource
from docproc.sources.mountguard import EMPTY_ROOT_MIN_KNOWN
from tests.clitools import AS_ORDINARY_USER

SETTLE = 0.3
POLL_INTERVAL = 0.1
TICK = 0.05


class Harness:
    """A source plus the ledger's view of it, driven the way the pipeline drives it."""

    def __init__(self, source: LocalSource) -> None:
        self.source = source
        self.known: dict[Path, tuple[int, int]] = {}
        self.ready: list[Candidate] = []
        self.gone: list[Path] = []
        self.problems: list[tuple[Path, str]] = []
        self.scans = 0

    def poll(self) -> IntakeBatch:
        batch = self.source.poll(time.monotonic(), self.known)
        for candidate in batch.ready:
            self.ready.append(candidate)
            self.known[candidate.path] = (candidate.size, candidate.mtime_ns)
        for path in batch.gone:
            self.gone.append(path)
            self.known.pop(path, None)
        self.problems.extend(batch.problems)
        self.scans += batch.scanned
        return batch

    def until(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll until ``done()``; bounded by time and by count."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / TICK) + 1):
            self.poll()
            if done() or time.monotonic() > deadline:
                break
            time.sleep(TICK)
        assert done(), "condition not reached in time"

    def idle(self, seconds: float) -> None:
        """Keep polling for a while (to show that nothing more happens)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
            time.sleep(TICK)

    def released(self, path: Path) -> list[Candidate]:
        return [c for c in self.ready if c.path == path]


@pytest.fixture(params=[Mode.EVENTS, Mode.POLL])
def mode(request: pytest.FixtureRequest) -> Mode:
    return Mode(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def make(root: Path, mode: Mode, settle: float = SETTLE, **kwargs: object) -> LocalSource:
    spec = WatchSpec(root, mode=mode, poll_interval=POLL_INTERVAL, settle_seconds=settle)
    return LocalSource(spec, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def harness(root: Path, mode: Mode) -> Iterator[Harness]:
    source = make(root, mode)
    source.start()
    h = Harness(source)
    h.poll()  # the first poll walks the (empty) tree
    yield h
    source.close()


def test_protocol_is_implemented(root: Path) -> None:
    source: Source = make(root, Mode.EVENTS)
    assert source.pending == 0


def test_a_dropped_file_is_released_once(harness: Harness, root: Path) -> None:
    (root / "a.pdf").write_bytes(b"%PDF-1.4 hello")
    harness.until(lambda: bool(harness.ready))
    harness.idle(SETTLE + 3 * POLL_INTERVAL)
    assert [(c.path, c.size) for c in harness.ready] == [(root / "a.pdf", 14)]
    assert harness.source.pending == 0


def test_a_slow_write_is_released_once_with_its_final_size(root: Path, mode: Mode) -> None:
    source = make(root, mode, settle=2.0)
    source.start()
    h = Harness(source)
    target = root / "scan.pdf"
    try:
        with target.open("wb") as out:
            for _ in range(20):  # ~10 s of a scanner writing page after page
                out.write(b"x" * 1000)
                out.flush()
                h.idle(0.5)
        assert h.ready == []
        h.until(lambda: bool(h.ready), timeout=5.0)
        h.idle(0.5)
    finally:
        source.close()
    assert [(c.path, c.size) for c in h.ready] == [(target, 20_000)]


def test_ignored_files_are_never_released(harness: Harness, root: Path) -> None:
    for name in ("a.summary.md", "a.docproc.json", "b.pdf.part", ".DS_Store", ".hidden.pdf"):
        (root / name).write_bytes(b"ignored")
    (root / "@eaDir").mkdir()
    (root / "@eaDir" / "thumb.jpg").write_bytes(b"ignored")
    (root / "real.pdf").write_bytes(b"taken")
    harness.until(lambda: bool(harness.ready))
    harness.source.request_rescan()
    harness.idle(SETTLE + 3 * POLL_INTERVAL)
    assert [c.path.name for c in harness.ready] == ["real.pdf"]


def test_deletion_is_reported_as_gone(harness: Harness, root: Path) -> None:
    (root / "a.pdf").write_bytes(b"a")
    harness.until(lambda: bool(harness.ready))
    (root / "a.pdf").unlink()
    harness.until(lambda: bool(harness.gone))
    assert harness.gone == [root / "a.pdf"]


def test_a_move_within_the_root_is_gone_plus_new(harness: Harness, root: Path) -> None:
    (root / "sub").mkdir()
    (root / "a.pdf").write_bytes(b"a")
    harness.until(lambda: bool(harness.ready))
    (root / "a.pdf").rename(root / "sub" / "b.pdf")
    harness.until(lambda: bool(harness.gone) and len(harness.ready) == 2)
    assert harness.gone == [root / "a.pdf"]
    assert harness.ready[1].path == root / "sub" / "b.pdf"


def test_a_directory_moved_in_arrives_with_its_files(
    harness: Harness, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside" / "batch"
    (outside / "deep").mkdir(parents=True)
    (outside / "one.pdf").write_bytes(b"1")
    (outside / "deep" / "two.pdf").write_bytes(b"22")
    (outside.parent / "batch").rename(root / "batch")
    harness.until(lambda: len(harness.ready) == 2)
    assert {c.path for c in harness.ready} == {root / "batch/one.pdf", root / "batch/deep/two.pdf"}


def test_a_directory_moved_away_takes_its_files_with_it(
    harness: Harness, root: Path, tmp_path: Path
) -> None:
    (root / "batch").mkdir()
    (root / "batch" / "one.pdf").write_bytes(b"1")
    harness.until(lambda: len(harness.ready) == 1)
    (root / "batch").rename(tmp_path / "elsewhere")
    harness.until(lambda: bool(harness.gone))
    assert harness.gone == [root / "batch" / "one.pdf"]


def test_unchanged_known_files_are_not_released_on_rescan(root: Path, mode: Mode) -> None:
    for i in range(5):
        (root / f"f{i}.pdf").write_bytes(b"x" * i)
    source = make(root, mode)
    source.start()
    h = Harness(source)
    for path in root.iterdir():
        info = path.stat()
        h.known[path] = (info.st_size, info.st_mtime_ns)
    try:
        h.poll()
        source.request_rescan()
        batch = h.poll()
        assert batch.scanned
        h.idle(SETTLE + 3 * POLL_INTERVAL)
    finally:
        source.close()
    assert h.ready == []
    assert h.scans == 2


def test_known_file_changed_while_away_is_released(root: Path) -> None:
    (root / "a.pdf").write_bytes(b"new content")
    source = make(root, Mode.EVENTS)  # never started: a one-shot scan
    h = Harness(source)
    h.known[root / "a.pdf"] = (3, 1)
    h.known[root / "vanished.pdf"] = (3, 1)
    h.until(lambda: bool(h.ready))
    assert h.ready[0].size == 11
    assert h.gone == [root / "vanished.pdf"]
    assert source.last_scan_at is not None


def test_problems_are_reported_once(harness: Harness, root: Path, tmp_path: Path) -> None:
    os.symlink("loop", root / "loop")
    os.symlink("nowhere", root / "broken")
    os.mkfifo(root / "pipe")
    (tmp_path / "secret.pdf").write_bytes(b"s")
    os.symlink(tmp_path / "secret.pdf", root / "outside.pdf")
    (root / "inner.pdf").write_bytes(b"inner")
    os.symlink("inner.pdf", root / "alias.pdf")
    os.symlink(".", root / "dirlink")
    for _ in range(3):
        harness.source.request_rescan()
        harness.idle(SETTLE + 2 * POLL_INTERVAL)
    assert Counter((p.name, r) for p, r in harness.problems) == {
        ("loop", "symbolic link loop"): 1,
        ("broken", "broken symbolic link"): 1,
        ("pipe", "not a regular file (fifo)"): 1,
        ("outside.pdf", "symbolic link points outside the watched folder"): 1,
    }
    assert sorted(c.path.name for c in harness.ready) == ["alias.pdf", "inner.pdf"]


def test_a_fixed_problem_is_gone_and_may_come_back(harness: Harness, root: Path) -> None:
    os.symlink("nowhere", root / "link.pdf")
    harness.until(lambda: bool(harness.problems))
    (root / "link.pdf").unlink()
    harness.until(lambda: bool(harness.gone))
    assert harness.gone == [root / "link.pdf"]
    os.symlink("nowhere", root / "link.pdf")
    harness.until(lambda: len(harness.problems) == 2)


def test_a_non_utf8_name_is_released(harness: Harness, root: Path) -> None:
    raw = os.fsencode(root) + b"/caf\xe9.pdf"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"latin-1 name")
    os.close(fd)
    harness.until(lambda: bool(harness.ready))
    path = harness.ready[0].path
    assert os.fsencode(path) == raw
    assert harness.ready[0].size == 12


@pytest.mark.parametrize("mode_", [Mode.EVENTS, Mode.POLL])
def test_missing_root_raises_a_clear_error(tmp_path: Path, mode_: Mode) -> None:
    source = make(tmp_path / "nope", mode_)
    with pytest.raises(SourceError, match=r"watched folder .*/nope does not exist"):
        source.start()
    source.close()


def test_a_file_as_root_raises(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(SourceError, match="is not a directory"):
        make(tmp_path / "f", Mode.EVENTS).start()


# Starts a source in a fresh process and prints why it could not start.
START_PROBE = """
import sys
from pathlib import Path
from docproc.errors import SourceError
from docproc.models import Mode, WatchSpec
from docproc.sources.local import LocalSource
source = LocalSource(WatchSpec(Path(sys.argv[1]), mode=Mode.EVENTS))
try:
    source.start()
except SourceError as exc:
    print(exc)
source.close()
"""


def start_error(root: Path) -> str:
    """Why ``start()`` fails for ``root``, as an ordinary user would see it.

    As root, file modes do not stop reads, so the check runs in a process
    without the capabilities that let root ignore them.
    """
    if os.geteuid() == 0:
        argv = [*AS_ORDINARY_USER, sys.executable, "-c", START_PROBE, str(root)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
        return result.stdout.strip()
    source = make(root, Mode.EVENTS)
    try:
        source.start()
    except SourceError as exc:
        return str(exc)
    finally:
        source.close()
    return ""


def test_an_unreadable_root_raises(root: Path) -> None:
    root.chmod(0)
    try:
        error = start_error(root)
    finally:
        root.chmod(0o755)
    assert error == f"watched folder {root} is not readable: permission denied"


def test_close_leaves_no_observer_threads(root: Path, mode: Mode) -> None:
    before = set(threading.enumerate())
    source = make(root, mode)
    source.start()
    assert len(set(threading.enumerate()) - before) >= 2
    source.close()
    source.close()  # idempotent
    assert [t for t in threading.enumerate() if t not in before] == []


def test_mode_auto_is_resolved_and_logged(root: Path) -> None:
    table = f"1 0 0:1 / {root} rw - nfs4 nas:/x rw\n"
    source = LocalSource(WatchSpec(root, poll_interval=POLL_INTERVAL), mount_table=table)
    with capture_logs() as logs:
        source.start()
    source.close()
    assert source.mode is Mode.POLL
    assert source.mode_reason.startswith(f"nfs4 mount at {root}")
    assert any(e["event"] == "source.mode" and e["mode"] == "poll" for e in logs)


def test_watch_limit_falls_back_to_polling(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_inotify() -> object:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(observer, "Observer", no_inotify)
    source = make(root, Mode.EVENTS)
    source.start()
    try:
        assert source.mode is Mode.POLL
        assert source.status == "polling: inotify watch limit reached"
        h = Harness(source)
        h.poll()
        (root / "a.pdf").write_bytes(b"a")
        h.until(lambda: bool(h.ready))
    finally:
        source.close()


def test_a_dead_observer_is_restarted_with_a_rescan(harness: Harness, root: Path) -> None:
    running = harness.source._watcher._observer
    assert running is not None
    running.stop()
    running.join(5)
    with capture_logs() as logs:
        batch = harness.poll()
    assert batch.scanned
    assert harness.source.status == "observer restarted after error: observer thread stopped"
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["source.observer_error"]
    (root / "after.pdf").write_bytes(b"a")
    harness.until(lambda: bool(harness.ready))


def test_a_deleted_root_shows_in_status_and_reports_nothing_gone(
    harness: Harness, root: Path
) -> None:
    (root / "a.pdf").write_bytes(b"a")
    harness.until(lambda: bool(harness.ready))
    (root / "a.pdf").unlink()
    root.rmdir()
    harness.until(lambda: "does not exist" in harness.source.status)
    harness.source.request_rescan()
    harness.idle(0.2)
    assert harness.gone in ([], [root / "a.pdf"])  # the file event may beat the rmdir


def test_a_real_inotify_overflow_becomes_a_rescan(root: Path) -> None:
    source = make(root, Mode.EVENTS)
    source.start()
    try:
        h = Harness(source)
        h.poll()
        assert not h.poll().scanned
        # Stall watchdog's inotify reader (private: this also checks that the
        # reader thread is where we expect it) while the kernel queue
        # (max_queued_events, 16384 here) overflows.
        reader = source._watcher._observer._inotify_fd  # type: ignore[union-attr]
        with reader._lock:
            for i in range(20_000):
                (root / f"f{i}").touch()
                (root / f"f{i}").unlink()
        with capture_logs() as logs:
            # 40,000 queued events drain first; on a busy machine that takes a while
            h.until(lambda: h.scans >= 2, timeout=60.0)
        assert any(e["event"] == "source.inotify_overflow" for e in logs)
    finally:
        source.close()


def test_a_full_queue_becomes_a_rescan(
    root: Path, mode: Mode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(observer, "QUEUE_SIZE", 2)
    source = make(root, mode)
    source.start()
    try:
        h = Harness(source)
        h.poll()
        for i in range(10):
            (root / f"f{i}.pdf").write_bytes(b"x")
        h.until(lambda: h.scans == 2)
        h.until(lambda: len(h.ready) == 10)
    finally:
        source.close()


def test_poll_without_start_walks_once(root: Path) -> None:
    (root / "sub").mkdir()
    (root / "sub" / "a.pdf").write_bytes(b"a")
    old = time.time() - 3600
    os.utime(root / "sub" / "a.pdf", (old, old))
    source = make(root, Mode.EVENTS, settle=60.0)
    batch = source.poll(time.monotonic(), {})
    assert [c.path for c in batch.ready] == [root / "sub" / "a.pdf"]  # old mtime: no wait
    assert batch.scanned
    assert not source.poll(time.monotonic(), {}).scanned
    source.close()


def test_non_recursive_stays_at_the_top(root: Path) -> None:
    (root / "sub").mkdir()
    (root / "sub" / "a.pdf").write_bytes(b"a")
    (root / "top.pdf").write_bytes(b"t")
    spec = WatchSpec(root, mode=Mode.EVENTS, settle_seconds=0.0, recursive=False)
    batch = LocalSource(spec).poll(time.monotonic(), {})
    assert [c.path.name for c in batch.ready] == ["top.pdf"]


def test_event_paths_through_a_directory_symlink_are_ignored(root: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "a.pdf").write_bytes(b"a")
    os.symlink(tmp_path / "elsewhere", root / "link")
    source = make(root, Mode.EVENTS, settle=0.0)
    h = Harness(source)
    h.poll()  # the walk does not descend the link
    source._watcher.paths.put(
        (str(root / "link" / "a.pdf"), False)
    )  # as a following observer would
    h.idle(0.2)
    assert h.ready == []
    assert h.problems == []


# -- a root that looks unmounted (mountguard) -----------------------------------


def test_a_root_emptied_wholesale_reports_nothing_gone(
    harness: Harness, root: Path, tmp_path: Path
) -> None:
    names = ["a.pdf", "b.pdf", "c.pdf"]
    for name in names:
        (root / name).write_bytes(b"x")
    harness.until(lambda: len(harness.ready) == 3)
    away = tmp_path / "away"
    away.mkdir()
    for name in names:  # as if the share were unmounted, leaving an empty mount point
        (root / name).rename(away / name)
    expected = "root is empty but 3 files were known; not treating them as deleted"
    with capture_logs() as logs:
        harness.until(lambda: harness.source.status == expected)
        harness.source.request_rescan()
        harness.idle(SETTLE)
    assert harness.gone == []
    assert sorted(p.name for p in harness.known) == names
    assert [e["error"] for e in logs if e["event"] == "source.root_unavailable"] == [expected]
    (root / "new.pdf").write_bytes(b"new")  # the root holds something again
    harness.source.request_rescan()
    harness.until(lambda: len(harness.gone) == 3)
    assert harness.source.status == "ok"


def test_files_deleted_one_by_one_are_gone(harness: Harness, root: Path) -> None:
    names = ["a.pdf", "b.pdf", "c.pdf"]
    for name in names:
        (root / name).write_bytes(b"x")
    harness.until(lambda: len(harness.ready) == 3)
    for name in names:
        (root / name).unlink()
        harness.until(lambda name=name: root / name in harness.gone)  # type: ignore[misc]
    assert sorted(p.name for p in harness.gone) == names
    assert harness.source.status == "ok"


def test_a_walk_of_an_empty_root_with_known_files_reports_nothing_gone(root: Path) -> None:
    source = make(root, Mode.EVENTS)  # never started: a one-shot scan
    known = {root / f"f{i}.pdf": (1, 1) for i in range(EMPTY_ROOT_MIN_KNOWN)}
    batch = source.poll(time.monotonic(), known)
    assert (batch.gone, batch.scanned) == ((), False)
    assert source.status.startswith(f"root is empty but {EMPTY_ROOT_MIN_KNOWN} files were known")
    assert source.last_scan_at is None


def test_a_walk_of_an_empty_root_reports_a_single_known_file_gone(root: Path) -> None:
    source = make(root, Mode.EVENTS)
    batch = source.poll(time.monotonic(), {root / "last.pdf": (1, 1)})
    assert (batch.gone, batch.scanned) == ((root / "last.pdf",), True)
    assert source.status == "ok"


def test_a_changed_root_device_reports_nothing_gone(harness: Harness, root: Path) -> None:
    for name in ("a.pdf", "b.pdf"):
        (root / name).write_bytes(b"x")
    harness.until(lambda: len(harness.ready) == 2)
    # Stands in for an unmount: the device seen at start() is not the root's now.
    harness.source._guard._device = root.stat().st_dev + 1
    (root / "a.pdf").unlink()
    harness.until(lambda: harness.source.status.startswith("root looks unmounted: device changed"))
    harness.source.request_rescan()
    assert not harness.poll().scanned  # nothing mounted in its place is walked
    assert harness.gone == []
