"""``docproc scan`` and the ledger commands, run as real subprocesses."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.clitools import docproc, files_json

SENTENCE = "The archive team agreed to keep every scanned contract for ten years."


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text(f"Notes\n\n{SENTENCE}\n")
    (folder / "sub" / "page.html").write_text(
        "<html><head><script>var hidden = 1;</script></head>"
        "<body><h1>Title</h1><p>Paragraph about ledgers.</p></body></html>"
    )
    (folder / "readme.md").write_text("# Readme\n\nMarkdown is read natively.\n")
    (folder / ".hidden.txt").write_text("never taken")
    (folder / "download.pdf.part").write_text("never taken")
    return folder


def test_scan_records_extracts_and_answers_queries(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = docproc("scan", "--settle", "0", inbox, state=state)
    assert out.returncode == 0, out.stderr
    assert "extracted" in out.stdout
    rows = files_json(state)
    assert sorted(Path(p).name for p in rows) == ["notes.txt", "page.html", "readme.md"]
    for row in rows.values():
        assert row["state"] == "extracted"
        assert len(row["sha256"]) == 64
        assert row["extractor"].startswith("native:")
        assert row["error"] is None
    text = docproc("ledger", "text", inbox / "notes.txt", state=state)
    assert SENTENCE in text.stdout
    html = docproc("ledger", "text", inbox / "sub" / "page.html", state=state).stdout
    assert "Paragraph about ledgers." in html
    assert "hidden" not in html
    assert docproc("ledger", "verify", state=state).stdout.startswith("ok:")
    status = json.loads(docproc("status", "--json", state=state).stdout)
    assert status["files"] == {"extracted": 3}
    assert status["roots"][0]["last_scan_at"]


def test_rescan_of_unchanged_folder_reads_nothing_again(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert docproc("scan", "--settle", "0", inbox, state=state).returncode == 0
    before = docproc("ledger", "events", "--limit", "0", "--json", state=state).stdout
    assert docproc("scan", "--settle", "0", inbox, state=state).returncode == 0
    after = docproc("ledger", "events", "--limit", "0", "--json", state=state).stdout
    assert json.loads(after) == json.loads(before)


def test_same_bytes_elsewhere_reuse_extraction_and_changes_make_versions(
    inbox: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    docproc("scan", "--settle", "0", inbox, state=state)
    (inbox / "copy-of-notes.txt").write_bytes((inbox / "notes.txt").read_bytes())
    (inbox / "readme.md").write_text("# Readme\n\nA second edition.\n")
    (inbox / "sub" / "page.html").unlink()
    assert docproc("scan", "--settle", "0", inbox, state=state).returncode == 0
    rows = {Path(p).name: r for p, r in files_json(state).items()}
    assert rows["copy-of-notes.txt"]["sha256"] == rows["notes.txt"]["sha256"]
    assert rows["copy-of-notes.txt"]["state"] == "extracted"
    assert rows["page.html"]["state"] == "deleted"
    assert "second edition" in docproc("ledger", "text", inbox / "readme.md", state=state).stdout
    db = sqlite3.connect(state / "ledger.db")
    kinds = [k for (k,) in db.execute("SELECT kind FROM events")]
    db.close()
    assert kinds.count("extraction.succeeded") == 4  # 3 first, 1 new readme; the copy reused
    show = json.loads(docproc("ledger", "show", inbox / "readme.md", "--json", state=state).stdout)
    assert [e["kind"] for e in show["events"]].count("extraction.succeeded") == 2


def test_scan_of_nothing_readable_exits_1(tmp_path: Path) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "random.pdf").write_bytes(bytes(range(256)) * 40)
    out = docproc("scan", "--settle", "0", folder, state=tmp_path / "state")
    assert out.returncode == 1
    assert "nothing could be read" in out.stderr
    assert "random.pdf" in out.stdout


def test_single_file_argument(inbox: Path, tmp_path: Path) -> None:
    out = docproc("scan", inbox / "readme.md", state=tmp_path / "state")
    assert out.returncode == 0, out.stderr
    assert list(files_json(tmp_path / "state")) == [str(inbox / "readme.md")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan", "/no/such/folder"], "/no/such/folder does not exist"),
        (["--config", "/no/such.toml", "config", "check"], "config file /no/such.toml"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    out = docproc(*args, state=tmp_path / "state")
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_config_check_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "docproc.toml"
    cfg.write_text("[[watch]]\npath = '.'\nmode = 'inotify'\n")
    out = docproc("config", "check", cfg, state=tmp_path / "state")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "docproc: config error: watch[0].mode: must be one of events, poll, auto (got 'inotify')"
    )
    cfg.write_text("[[watch]]\npath = '.'\n")
    good = docproc("config", "check", cfg, state=tmp_path / "state")
    assert good.returncode == 0
    assert "config ok" in good.stdout


def test_state_dir_option_works_before_and_after_the_command(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "elsewhere"
    out = docproc("--state-dir", state, "scan", "--settle", "0", inbox, state=tmp_path / "ignored")
    assert out.returncode == 0, out.stderr
    assert (state / "ledger.db").exists()
    assert not (tmp_path / "ignored").exists()
    listing = docproc("ledger", "files", "--state-dir", state, state=tmp_path / "ignored")
    assert "notes.txt" in listing.stdout
    path = docproc("ledger", "path", "--state-dir", state, state=tmp_path / "ignored")
    assert path.stdout.strip() == str(state / "ledger.db")


def test_ledger_queries_fail_clearly(tmp_path: Path) -> None:
    empty = docproc("ledger", "files", state=tmp_path / "none")
    assert empty.returncode == 1
    assert "nothing has been recorded yet" in empty.stderr
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.txt").write_text("some words here")
    docproc("scan", "--settle", "0", folder, state=tmp_path / "s")
    missing = docproc("ledger", "show", "/nope.txt", state=tmp_path / "s")
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        "docproc: no file '/nope.txt' in the ledger",
    )


def test_csv_and_state_filter(inbox: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    (inbox / "empty.txt").write_bytes(b"")
    docproc("scan", "--settle", "0", inbox, state=state)
    csv_out = docproc("ledger", "files", "--csv", "--state", "failed", state=state).stdout
    lines = csv_out.strip().splitlines()
    assert lines[0] == "id,path,state,sha256,extractor,chars,error"
    assert len(lines) == 2
    assert "file is empty (0 bytes)" in lines[1]


def test_old_files_are_taken_at_once_whatever_the_settle_time(tmp_path: Path) -> None:
    """An existing tree (mtimes older than settle_seconds) needs no settle wait."""
    import os
    import time

    folder = tmp_path / "archive"
    folder.mkdir()
    for i in range(20):
        (folder / f"note{i}.txt").write_text(f"Archived note number {i}.\n")
        os.utime(folder / f"note{i}.txt", (time.time() - 3600, time.time() - 3600))
    started = time.monotonic()
    scan = docproc("scan", "--settle", "60", folder, state=tmp_path / "state")
    assert scan.returncode == 0, scan.stderr
    assert time.monotonic() - started < 45, "waited for the settle time"
    rows = files_json(tmp_path / "state")
    assert sorted(r["state"] for r in rows.values()) == ["extracted"] * 20


def test_files_failed_for_want_of_a_reader_are_read_again(tmp_path: Path) -> None:
    """An OpenDocument file an older docproc refused (no pandoc) is read on the next scan."""
    import hashlib

    from docproc.errors import FailureKind
    from docproc.ledger.connection import open_ledger
    from docproc.models import ExtractFailure
    from tests import docformats
    from tests.parts import extractions

    folder = tmp_path / "docs"
    folder.mkdir()
    said = docformats.write_odt(folder / "minutes.odt", ["Minutes were approved.", "b.", "c."])
    state = tmp_path / "state"
    first = docproc("scan", "--settle", "0", folder, state=state)
    assert first.returncode == 0, first.stderr
    sha = hashlib.sha256((folder / "minutes.odt").read_bytes()).hexdigest()
    old = "odt needs the optional 'pandoc' extra: pip install 'docproc[pandoc]'"
    with open_ledger(state / "ledger.db") as ledger:  # what an older docproc recorded
        extractions(ledger).record_extraction(ExtractFailure(sha, FailureKind.PERMANENT, old))
    assert files_json(state)[str(folder / "minutes.odt")]["error"] == old
    again = docproc("scan", "--settle", "0", folder, state=state)
    assert again.returncode == 0, again.stderr
    row = files_json(state)[str(folder / "minutes.odt")]
    assert (row["state"], row["extractor"]) == ("extracted", "native:odt")
    text = docproc("ledger", "text", str(folder / "minutes.odt"), state=state).stdout
    assert all(s in text for s in said)
    events = docproc("ledger", "events", "--json", state=state).stdout
    assert "extraction.requeued" in events


def test_a_subfolder_of_a_watched_folder_is_scanned_into_the_watched_root(
    inbox: Path, tmp_path: Path
) -> None:
    """Its files belong to the watch, so the daemon makes jobs for them (and knows them
    unchanged); files of the watch outside the subfolder are neither read nor gone."""
    (inbox / "sub" / "deep").mkdir()
    (inbox / "sub" / "deep" / "more.txt").write_text(f"More\n\n{SENTENCE}\n")
    (inbox / "sub" / ".private").mkdir()
    (inbox / "sub" / ".private" / "x.txt").write_text("a hidden folder the watch skips")
    state = tmp_path / "state"
    config = tmp_path / "docproc.toml"
    config.write_text(f'state_dir = "{state}"\n[[watch]]\npath = "{inbox}"\nmode = "poll"\n'
                      'settle_seconds = 0\n')  # fmt: skip
    assert docproc("scan", inbox / "notes.txt", "--config", config, state=state).returncode == 0
    out = docproc("scan", "--settle", "0", inbox / "sub", "--config", config, state=state)
    assert out.returncode == 0, out.stderr
    summary = [line.split() for line in out.stdout.splitlines()[1:]]  # what was asked only
    assert summary == [["extracted", "native:html", "1"], ["extracted", "native:text", "1"]]
    rows = files_json(state)
    assert sorted(Path(p).relative_to(inbox).as_posix() for p in rows) == [
        "notes.txt", "sub/deep/more.txt", "sub/page.html"]  # fmt: skip
    assert {row["root"] for row in rows.values()} == {inbox.as_uri()}
    assert {row["state"] for row in rows.values()} == {"extracted"}  # notes.txt not gone

    run = docproc("run", "--once", "--config", config, state=state)
    assert run.returncode == 0, run.stderr
    rows = files_json(state)
    assert len(rows) == 4 and {row["state"] for row in rows.values()} == {"written"}
    assert (inbox / "sub" / "deep" / "more.txt.docproc.json").exists()
    with sqlite3.connect(state / "ledger.db") as db:  # the scan made no root of its own
        assert db.execute("SELECT uri FROM roots").fetchall() == [(inbox.as_uri(),)]
