"""The daemon end to end: a real subprocess, real folders, real signals, the local provider."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemonrun import DaemonProcess, write_config

TEXT = (
    "The archive team met on Tuesday to plan the migration of the scanned contracts. "
    "Every contract will be checked against the ledger before it is moved. "
    "The migration is expected to finish before the end of the quarter. "
    "Questions about retention go to the records office."
)


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + ".summary.md"), path.with_name(path.name + ".docproc.json")


def test_files_dropped_while_running_and_while_stopped_get_sidecars(
    inbox: Path, tmp_path: Path, ledger_url: str | None
) -> None:
    (inbox / "before.txt").write_text(TEXT)
    config = write_config(tmp_path, [inbox], ledger=ledger_url)
    daemon = DaemonProcess(config)
    try:
        daemon.until(lambda: daemon.states().get("before.txt") == "written")
        (inbox / "during.txt").write_text(TEXT.replace("Tuesday", "Friday"))
        daemon.until(lambda: daemon.states().get("during.txt") == "written")
    finally:
        assert daemon.stop() == 0
    (inbox / "while-stopped.md").write_text("# Notes\n\n" + TEXT.replace("contracts", "deeds"))
    daemon = DaemonProcess(config)
    try:
        daemon.until(lambda: daemon.states().get("while-stopped.md") == "written")
    finally:
        assert daemon.stop() == 0
    md, js = sidecars(inbox / "during.txt")
    document = json.loads(js.read_text())
    assert document["source"]["sha256"]
    assert document["provider"]["name"] == "local"
    assert 3 <= len(document["highlights"]) <= 10
    for highlight in document["highlights"]:
        assert highlight["quote"] in TEXT.replace("Tuesday", "Friday")
    assert "Friday" in md.read_text()


def test_changed_file_gets_new_sidecars_and_duplicates_cost_one_request(
    inbox: Path, tmp_path: Path, ledger_url: str | None
) -> None:
    (inbox / "a.txt").write_text(TEXT)
    (inbox / "copy-of-a.txt").write_text(TEXT)
    daemon = DaemonProcess(write_config(tmp_path, [inbox], ledger=ledger_url))
    try:
        daemon.until(lambda: set(daemon.states().values()) == {"written"})
        assert daemon.query("SELECT COUNT(*) FROM requests") == [(1,)]
        written = daemon.query("SELECT detail FROM events WHERE kind = 'sidecars.written'")
        assert [json.loads(detail).get("reused") for (detail,) in written].count(True) == 1
        old = sidecars(inbox / "a.txt")[1].read_text()
        (inbox / "a.txt").write_text(TEXT + " A late addition about storage costs was agreed.")
        daemon.until(lambda: sidecars(inbox / "a.txt")[1].read_text() != old)
        daemon.until(lambda: daemon.states().get("a.txt") == "written")
        assert daemon.query("SELECT COUNT(*) FROM requests") == [(2,)]
    finally:
        assert daemon.stop() == 0
    assert (
        json.loads(sidecars(inbox / "a.txt")[1].read_text())["source"]["sha256"]
        != json.loads(sidecars(inbox / "copy-of-a.txt")[1].read_text())["source"]["sha256"]
    )


def test_a_file_docproc_did_not_write_is_never_overwritten(
    inbox: Path, tmp_path: Path, ledger_url: str | None
) -> None:
    (inbox / "report.txt").write_text(TEXT)
    mine = sidecars(inbox / "report.txt")[0]
    mine.write_text("my own notes, not docproc's\n")
    daemon = DaemonProcess(write_config(tmp_path, [inbox], ledger=ledger_url))
    try:
        daemon.until(lambda: daemon.states().get("report.txt") == "conflict")
    finally:
        assert daemon.stop() == 0
    assert mine.read_text() == "my own notes, not docproc's\n"


def test_sigterm_exits_0_within_5_seconds(
    inbox: Path, tmp_path: Path, ledger_url: str | None
) -> None:
    for i in range(30):
        (inbox / f"doc{i}.txt").write_text(f"Document {i}. {TEXT}")
    daemon = DaemonProcess(write_config(tmp_path, [inbox], ledger=ledger_url))
    daemon.until(lambda: len(daemon.states()) > 5)
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0
    assert time.monotonic() - started < 5.0
    assert "daemon.stopped" in daemon.log.read_text()


def test_sighup_reload_adds_a_folder_without_losing_work(
    inbox: Path, tmp_path: Path, ledger_url: str | None
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    config = write_config(tmp_path, [inbox], ledger=ledger_url)
    daemon = DaemonProcess(config)
    try:
        (inbox / "one.txt").write_text(TEXT)
        daemon.until(lambda: daemon.states().get("one.txt") == "written")
        write_config(tmp_path, [inbox, other], ledger=ledger_url)
        (other / "two.txt").write_text(TEXT.replace("Tuesday", "Monday"))
        daemon.signal(signal.SIGHUP)
        daemon.until(lambda: daemon.states().get("two.txt") == "written")
        config.write_text("this is not toml [")
        daemon.signal(signal.SIGHUP)
        (inbox / "three.txt").write_text(TEXT.replace("Tuesday", "Sunday"))
        daemon.until(lambda: daemon.states().get("three.txt") == "written")
        assert "daemon.reload_failed" in daemon.log.read_text()
    finally:
        assert daemon.stop() == 0


def test_once_writes_everything_and_exits_0(
    inbox: Path, tmp_path: Path, ledger_url: str | None
) -> None:
    for i in range(20):
        (inbox / f"n{i}.txt").write_text(f"Note {i}. {TEXT}")
    (inbox / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    config = write_config(tmp_path, [inbox], ledger=ledger_url)
    daemon = DaemonProcess(config, "--once")
    assert daemon.wait(timeout=120) == 0, daemon.tail()
    states = daemon.states()
    assert states.pop("broken.pdf") == "failed"
    assert set(states.values()) == {"written"}
    assert len(states) == 20


def test_default_run_watches_inbox_with_local_provider(tmp_path: Path) -> None:
    """No configuration at all: the SQLite ledger in the state directory (so SQLite only)."""
    env_state = tmp_path / "state"
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "hello.txt").write_text(TEXT)
    out = subprocess.run(
        [sys.executable, "-m", "docproc", "run", "--once"],
        cwd=tmp_path,
        env={**__import__("os").environ, "DOCPROC_STATE_DIR": str(env_state)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "inbox" / "hello.txt.summary.md").exists()
    assert (env_state / "ledger.db").exists()


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)  # about the text store; 18 s
def test_lost_extracted_text_is_extracted_again_not_stuck(
    inbox: Path, tmp_path: Path, ledger_url: str | None
) -> None:
    import shutil

    from tests.clitools import docproc

    for i in range(5):
        (inbox / f"t{i}.txt").write_text(f"Text {i}. {TEXT}")
    config = write_config(tmp_path, [inbox], ledger=ledger_url)
    scan = docproc("--config", config, "scan", "--settle", "0", inbox, state=tmp_path / "state")
    assert scan.returncode == 0, scan.stderr
    shutil.rmtree(tmp_path / "state" / "text")
    daemon = DaemonProcess(config, "--once")
    assert daemon.wait(timeout=120) == 0, daemon.tail()
    assert set(daemon.states().values()) == {"written"}
    assert "dispatch.text_lost" in daemon.output()


@pytest.mark.parametrize("delete_with_source", [False, True])
def test_deleted_source_sidecars_stay_unless_configured(
    inbox: Path, tmp_path: Path, delete_with_source: bool, ledger_url: str | None
) -> None:
    extra = f"[sidecars]\ndelete_with_source = {str(delete_with_source).lower()}\n"
    (inbox / "gone.txt").write_text(TEXT)
    (inbox / "edited.txt").write_text(TEXT.replace("Tuesday", "Monday"))
    daemon = DaemonProcess(write_config(tmp_path, [inbox], extra, ledger=ledger_url))
    try:
        daemon.until(lambda: set(daemon.states().values()) == {"written"})
        edited_md = sidecars(inbox / "edited.txt")[0]
        edited_md.write_text(edited_md.read_text() + "\nMy own remark.\n")
        (inbox / "gone.txt").unlink()
        (inbox / "edited.txt").unlink()
        daemon.until(lambda: set(daemon.states().values()) == {"deleted"})
        if delete_with_source:
            daemon.until(lambda: not sidecars(inbox / "gone.txt")[0].exists())
    finally:
        assert daemon.stop() == 0
    assert all(p.exists() != delete_with_source for p in sidecars(inbox / "gone.txt"))
    assert edited_md.exists()  # changed by a person: never removed
    assert not [row for row in daemon.query("SELECT path FROM files") if ".summary" in row[0]]


def test_output_dir_mirrors_sidecars_for_read_only_sources(
    inbox: Path, tmp_path: Path, ledger_url: str | None
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (inbox / "deep" / "er").mkdir(parents=True)
    (inbox / "deep" / "er" / "doc.txt").write_text(TEXT)
    inbox.chmod(0o555)  # the sources are read-only for docproc's purposes
    extra = f'[sidecars]\noutput_dir = "{mirror}"\n'
    daemon = DaemonProcess(write_config(tmp_path, [inbox], extra, ledger=ledger_url))
    try:
        daemon.until(lambda: daemon.states().get("doc.txt") == "written")
    finally:
        assert daemon.stop() == 0
        inbox.chmod(0o755)
    assert (mirror / "deep" / "er" / "doc.txt.docproc.json").exists()
    assert (mirror / "deep" / "er" / "doc.txt.summary.md").exists()
    assert not list(inbox.rglob("*.docproc.json"))
