"""The daemon against real storage faults: full disks, read-only remounts, lost permissions.

Every fault is real: a small tmpfs mounted by the test (as root; CI runs the
suite as root) and filled, remounted read-only, or a folder chmod'ed. Where the
test cannot mount, it is skipped with the reason. Each test ends the same way:
the fault cleared without a restart, every document has both sidecars, the
ledger verifies, no temp file is left and no document was summarised twice.
"""

from __future__ import annotations

# SQLite only: full and read-only disks under the ledger's file (tmpfs).
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, free_port, scrape, write_config
from tests.notifysock import NotifySocket
from tests.s3server import Moto
from tests.tmpfs import cannot_mount, mounted

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(cannot_mount() is not None, reason=str(cannot_mount())),
]
TEXT = (
    "The board approved the new archive policy on Thursday. Scanned letters are kept for ten"
    " years, contracts for twenty. The records office audits the shelves every spring."
)
SUFFIXES = (".summary.md", ".docproc.json")


def drop(folder: Path, first: int, count: int) -> list[Path]:
    paths = []
    for i in range(first, first + count):
        path = folder / f"doc{i:02d}.txt"
        path.write_text(f"Document {i}. {TEXT}")
        paths.append(path)
    return paths


def all_written(daemon: DaemonProcess, docs: list[Path]) -> bool:
    found = daemon.states()
    return all(found.get(doc.name) == "written" for doc in docs)


def assert_whole(daemon: DaemonProcess, docs: list[Path]) -> None:
    """Both sidecars per document, no temp file, a verified ledger, one answer per document."""
    for doc in docs:
        for suffix in SUFFIXES:
            assert doc.with_name(doc.name + suffix).stat().st_size > 0, doc
    folders = {doc.parent for doc in docs}
    assert [n for f in folders for n in os.listdir(f) if n.endswith(".tmp")] == []
    assert docproc("ledger", "verify", state=daemon.state).returncode == 0
    answered = daemon.query("SELECT job_id, COUNT(*) FROM requests WHERE state = 'succeeded'"
                            " GROUP BY job_id")  # fmt: skip
    assert len(answered) == len(docs)
    assert all(count == 1 for _, count in answered)  # nobody summarised twice
    written = daemon.query("SELECT subject, COUNT(*) FROM events WHERE kind = 'sidecars.written'"
                           " GROUP BY subject")  # fmt: skip
    assert len(written) == len(docs)
    assert all(count == 1 for _, count in written)


def test_a_watched_folder_fills_up_then_frees_and_every_document_gets_its_sidecars(
    tmp_path: Path,
) -> None:
    port = free_port()
    with mounted(tmp_path / "inbox", "2m") as inbox:
        config = write_config(tmp_path, [inbox.path], f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        daemon = DaemonProcess(config)
        try:
            first = drop(inbox.path, 0, 10)
            daemon.until(lambda: all_written(daemon, first))
            later = drop(inbox.path, 10, 30)
            inbox.fill()  # the daemon takes them after the settle time: no room for sidecars
            reason = f"no space left on {inbox.path}"

            def waiting() -> bool:
                found = daemon.states()
                return all(found.get(doc.name) in ("retrying", "written") for doc in later) and (
                    "retrying" in found.values()
                )

            daemon.until(waiting)
            status = json.loads(docproc("status", "--json", state=daemon.state).stdout)
            retrying = status["sidecars_retrying"]
            assert retrying[0]["kind"] == "no_space"
            assert retrying[0]["reason"] == reason
            assert retrying[0]["files"] == status["files"]["retrying"]
            errors = daemon.query("SELECT DISTINCT error FROM file_status WHERE state = 'retrying'")
            assert errors == [(reason,)]
            assert [n for n in os.listdir(inbox.path) if n.endswith(".tmp")] == []
            daemon.until(lambda: 'docproc_sidecars_retrying{kind="no_space"} 0' not in scrape(port))
            inbox.free()
            daemon.until(lambda: all_written(daemon, first + later), 120)
        finally:
            assert daemon.stop() == 0
        assert_whole(daemon, first + later)


def test_a_watched_folder_remounted_read_only_during_a_run_then_read_write(
    tmp_path: Path,
) -> None:
    with mounted(tmp_path / "inbox", "4m") as inbox:
        daemon = DaemonProcess(write_config(tmp_path, [inbox.path]))
        try:
            first = drop(inbox.path, 0, 5)
            daemon.until(lambda: all_written(daemon, first))
            later = drop(inbox.path, 5, 10)
            inbox.read_only()  # the new documents are read, but nothing can be written next to them
            daemon.until(lambda: "retrying" in daemon.states().values())
            errors = daemon.query("SELECT DISTINCT error FROM file_status WHERE state = 'retrying'")
            assert errors == [(f"read-only file system at {inbox.path}",)]
            assert "sidecars.write_failed" in daemon.output()
            inbox.read_write()
            daemon.until(lambda: all_written(daemon, first + later), 120)
        finally:
            assert daemon.stop() == 0
        assert_whole(daemon, first + later)


def test_a_sidecar_folder_made_unwritable_then_fixed(tmp_path: Path) -> None:
    """chmod, for real: the daemon runs as root *without* CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (``setpriv --bounding-set``), so the folder's mode bits bind
    it as they bind the service user; everything else it needs is root's own."""
    inbox = tmp_path / "inbox"
    locked = inbox / "locked"
    locked.mkdir(parents=True)
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    daemon = DaemonProcess(write_config(tmp_path, [inbox]), prefix=prefix)
    try:
        first = drop(locked, 0, 3)
        daemon.until(lambda: all_written(daemon, first))
        locked.chmod(0o555)
        later = drop(locked, 3, 5)  # the test itself keeps its capabilities
        daemon.until(lambda: sum(s == "retrying" for s in daemon.states().values()) == 5)
        errors = daemon.query("SELECT DISTINCT error FROM file_status WHERE state = 'retrying'")
        assert errors == [(f"permission denied on {locked}",)]
        locked.chmod(0o755)
        daemon.until(lambda: all_written(daemon, first + later), 120)
    finally:
        locked.chmod(0o755)
        assert daemon.stop() == 0
    assert_whole(daemon, first + later)


def test_the_text_store_full_then_freed(tmp_path: Path) -> None:
    text = tmp_path / "state" / "text"
    with mounted(text, "1m") as store:
        store.fill()
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        daemon = DaemonProcess(write_config(tmp_path, [inbox]))
        try:
            docs = drop(inbox, 0, 4)
            daemon.until(lambda: set(daemon.states().values()) == {"retrying"})
            errors = daemon.query("SELECT DISTINCT error FROM file_status")
            assert errors == [(f"text store not writable: no space left on {text}",)]
            store.free()
            daemon.until(lambda: all_written(daemon, docs), 120)
        finally:
            assert daemon.stop() == 0
        assert_whole(daemon, docs)
        attempts = daemon.query("SELECT MAX(attempts) FROM versions")
        assert attempts == [(1,)]  # the full store did not count against the documents


def test_low_space_on_the_state_directory_stops_new_work_until_space_returns(
    tmp_path: Path,
) -> None:
    with mounted(tmp_path / "state", "24m") as state:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        config = write_config(tmp_path, [inbox], "[storage]\nmin_free_mb = 8\n")
        daemon = DaemonProcess(config)
        try:
            first = drop(inbox, 0, 3)
            daemon.until(lambda: all_written(daemon, first))
            state.fill(leave=4 * 1024 * 1024)  # 4 MB left: below the floor, SQLite still fine
            daemon.until(lambda: "storage.low_space" in daemon.output())
            later = drop(inbox, 3, 3)
            status = docproc("status", "--json", "--config", config, state=daemon.state)
            trouble = json.loads(status.stdout)["storage"]["trouble"]
            assert trouble.startswith(f"new work paused: 4 MB free on {state.path}")
            assert not any(doc.name in daemon.states() for doc in later)  # not taken
            state.free()
            daemon.until(lambda: all_written(daemon, first + later), 120)
            assert "storage.space_back" in daemon.output()
        finally:
            assert daemon.stop() == 0
        assert_whole(daemon, first + later)


@pytest.mark.parametrize("fault", ["full", "read-only", "missing"])
@pytest.mark.parametrize("command", ["run", "scan"])
def test_start_up_on_a_broken_state_directory_says_which_in_one_line(
    tmp_path: Path, fault: str, command: str
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text(TEXT)
    config = write_config(tmp_path, [inbox])
    args = ["run", "--config", config] if command == "run" else ["scan", inbox]
    if fault == "missing":
        state = tmp_path / "not-mounted" / "state"
        result = docproc(*args, state=state)
        expected = f"state directory {state} is missing, and so is {state.parent}"
        assert not state.parent.exists()  # nothing created on the wrong disk
    else:
        state = tmp_path / "state"
        with mounted(state, "1m") as fs:
            fs.fill() if fault == "full" else fs.read_only()
            result = docproc(*args, state=state)
        expected = f"state directory {state} is {fault}"
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"docproc: {expected}")


def test_start_up_on_a_state_directory_the_daemon_may_not_write(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o555)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_config(tmp_path, [inbox])
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    result = docproc("run", "--config", config, state=state, prefix=prefix)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"docproc: state directory {state} is read-only: permission denied for uid 0"
    )


@pytest.mark.usefixtures("aws_env")
def test_a_full_fetch_area_holds_s3_objects_back_until_space_returns(
    tmp_path: Path, moto: Moto
) -> None:
    s3 = moto.client()
    bucket = moto.bucket(s3)
    keys = [f"docs/o{i}.txt" for i in range(4)]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=f"Object {i}. {TEXT}".encode())
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    extra = f'[[watch]]\ns3 = "s3://{bucket}/docs/"\nendpoint_url = "{moto.url}"\ninterval = 1\n'
    with mounted(tmp_path / "state" / "fetch", "1m") as fetch:
        fetch.fill()
        daemon = DaemonProcess(write_config(tmp_path, [inbox], extra))
        try:
            daemon.wait_ready()

            def root_status() -> str:
                rows = daemon.query("SELECT status FROM roots WHERE uri LIKE 's3://%'")
                return str(rows[0][0]) if rows else ""

            daemon.until(lambda: root_status().startswith("fetch area not writable"))
            assert f"no space left on {fetch.path}/" in root_status()
            fetch.free()
            wanted = {k + s for k in keys for s in SUFFIXES}
            daemon.until(lambda: wanted <= listed(s3, bucket), 120)
        finally:
            assert daemon.stop() == 0
        assert [p for p in fetch.path.rglob("*") if p.is_file()] == []  # copies removed
        assert docproc("ledger", "verify", state=daemon.state).returncode == 0


def listed(s3: Any, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_the_state_directory_fills_up_during_a_run_then_frees(tmp_path: Path) -> None:
    """The ledger refuses writes: nothing is lost, systemd hears why (STATUS=) and keeps
    getting watchdog pings (a known state, not a hang), no READY=1 is sent, and the
    daemon resumes by itself once space returns."""
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "3000000"}
    with mounted(tmp_path / "state", "16m") as state:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        config = write_config(tmp_path, [inbox], "[storage]\nmin_free_mb = 0\n")
        daemon = DaemonProcess(config, env=env)
        try:
            first = drop(inbox, 0, 10)
            daemon.until(lambda: all_written(daemon, first))
            state.fill()
            filled_at = time.monotonic()
            later = drop(inbox, 10, 30)
            daemon.until(lambda: "ledger.unwritable" in daemon.output())
            reason = f"ledger not writable: no space left on {state.path}"
            assert reason in daemon.output()
            status = notify.wait_for("STATUS", after=filled_at)["STATUS"]
            assert status.startswith(reason), status
            time.sleep(6)  # a while in that state: the watchdog keeps being fed (every 1.5 s)
            pings = [at for at, _ in notify.received("WATCHDOG") if at > filled_at]
            assert len(pings) >= 3
            assert max(b - a for a, b in itertools.pairwise(pings)) < 3.0  # within WatchdogSec
            assert "STUCK" not in notify.received("STATUS")[-1][1]["STATUS"]
            assert [at for at, _ in notify.received("READY") if at > filled_at] == []
            trouble = json.loads(docproc("status", "--json", state=daemon.state).stdout)
            assert trouble["storage"]["trouble"] == reason
            state.free()
            daemon.until(lambda: all_written(daemon, first + later), 120)
            assert "ledger.writable_again" in daemon.output()
        finally:
            assert daemon.stop() == 0
            notify.close()
        assert_whole(daemon, first + later)
