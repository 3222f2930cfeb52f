"""The ledger: its migrations, transitions and hash chain, on SQLite and on PostgreSQL.

Tests about the SQLite file itself (WAL, its migrations, triggers edited with
sqlite3, a reader beside an open write) take ``sqlite_ledger``; PostgreSQL's
counterparts are in test_ledger_postgres.py.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from docproc.errors import FailureKind, LedgerError
from docproc.ledger.connection import Ledger, LedgerLocation, open_ledger
from docproc.ledger.migrations import migrations
from docproc.ledger.uris import file_uri, uri_path
from docproc.models import ExtractFailure, Extraction
from tests.parts import count, extractions, files, queries, raw

SHA_A, SHA_B = "a" * 64, "b" * 64


@pytest.fixture
def ledger(ledger_location: LedgerLocation) -> Ledger:
    led = open_ledger(ledger_location)
    yield led
    led.close()


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Ledger:
    """For tests about the SQLite file itself."""
    led = open_ledger(tmp_path / "ledger.db")
    yield led
    led.close()


def root(ledger: Ledger) -> int:
    return files(ledger).ensure_root("file:///docs", kind="local", mode="events")


def test_new_ledger_is_wal_with_foreign_keys_and_all_migrations(sqlite_ledger: Ledger) -> None:
    ledger = sqlite_ledger
    conn = raw(ledger)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    applied = [m.name for m in migrations.applied(Database(raw(ledger)))]
    assert applied == [
        "m001_initial",
        "m002_problems_and_views",
        "m003_batches_requests_sidecars",
        "m004_sidecars_by_job",
        "m005_costs_and_output_retries",
        "m006_s3_objects",
        "m007_attempts_only_grow",
        "m008_conflict_reasons",
        "m009_ledger_identity",
        "m010_operator_requests",
        "m011_ocr_pages",
        "m012_staged_batches",
        "m013_sidecar_retries",
        "m014_create_attempts",
    ]
    tables = set(Database(raw(ledger)).table_names())
    assert {"roots", "files", "versions", "jobs", "events", "batches", "requests"} <= tables


def test_opening_a_first_schema_ledger_migrates_it_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Database(path)
    migrations.apply(old, stop_before="m002_problems_and_views")
    old.execute(
        "INSERT INTO roots (uri, kind, mode, added_at) VALUES ('file:///d', 'local', 'poll', 't')"
    )
    old.close()
    with open_ledger(path) as led:
        assert [r["uri"] for r in queries(led).roots()] == ["file:///d"]
        assert "problem" in Database(raw(led))["files"].columns_dict
        assert queries(led).files() == []


def test_a_ledger_at_the_schema_before_issue_14_migrates_and_gets_an_identity(
    tmp_path: Path,
) -> None:
    """main's schema up to m007_attempts_only_grow (issue 16), then issue 14's three."""
    path = tmp_path / "old.db"
    old = Database(path)
    migrations.apply(old, stop_before="m008_conflict_reasons")
    assert "attempts_at_retry" in old["jobs"].columns_dict
    old.execute(
        "INSERT INTO roots (uri, kind, mode, added_at) VALUES ('file:///d', 'local', 'poll', 't')"
    )
    old.close()
    with open_ledger(path) as led:
        applied = [m.name for m in migrations.applied(Database(raw(led)))]
        after = applied[applied.index("m007_attempts_only_grow") :]  # later ones follow them
        assert after[:4] == ["m007_attempts_only_grow", "m008_conflict_reasons",
                             "m009_ledger_identity", "m010_operator_requests"]  # fmt: skip
        identity = led.identity()
        assert len(identity) == 8 and int(identity, 16) >= 0
        assert [r["uri"] for r in queries(led).roots()] == ["file:///d"]
        assert "cancel_retry" in Database(raw(led))["batches"].columns_dict
    with open_ledger(path, readonly=True) as again:  # made once, by the migration
        assert again.identity() == identity


def test_readonly_reader_refuses_unmigrated_and_missing_ledgers(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="nothing has been recorded"):
        open_ledger(tmp_path / "none.db", readonly=True)
    old = Database(tmp_path / "old.db")
    migrations.apply(old, stop_before="m002_problems_and_views")
    old.close()
    with pytest.raises(LedgerError, match="needs migrating"):
        open_ledger(tmp_path / "old.db", readonly=True)


def test_same_bytes_at_another_path_reuse_the_version(ledger: Ledger) -> None:
    r = root(ledger)
    seen = files(ledger)
    assert seen.record_version(r, Path("/docs/a.txt"), size=3, mtime_ns=1, sha256=SHA_A)
    extractions(ledger).record_extraction(Extraction(SHA_A, "native:text", "t" * 64, 3))
    assert not seen.record_version(r, Path("/docs/copy.txt"), size=3, mtime_ns=2, sha256=SHA_A)
    rows = {row["path"]: row for row in queries(ledger).files()}
    assert rows["/docs/copy.txt"]["state"] == "extracted"
    assert rows["/docs/copy.txt"]["extractor"] == "native:text"
    assert count(ledger, "versions") == 1


def test_changed_bytes_make_a_new_version_and_an_event(ledger: Ledger) -> None:
    r = root(ledger)
    files(ledger).record_version(r, Path("/docs/a.txt"), size=3, mtime_ns=1, sha256=SHA_A)
    files(ledger).record_version(r, Path("/docs/a.txt"), size=4, mtime_ns=2, sha256=SHA_B)
    assert count(ledger, "versions") == 2
    assert [e["kind"] for e in queries(ledger).events() if e["subject"] == "file:1"] == [
        "file.discovered",
        "file.changed",
    ]
    assert files(ledger).known_files(r) == {Path("/docs/a.txt"): (4, 2)}


def test_deletion_is_recorded_and_history_kept(ledger: Ledger) -> None:
    r = root(ledger)
    files(ledger).record_version(r, Path("/docs/a.txt"), size=3, mtime_ns=1, sha256=SHA_A)
    files(ledger).record_gone(Path("/docs/a.txt"))
    files(ledger).record_gone(Path("/docs/a.txt"))  # twice: recorded once
    assert queries(ledger).files()[0]["state"] == "deleted"
    assert [e["kind"] for e in queries(ledger).events()].count("file.deleted") == 1
    assert files(ledger).known_files(r) == {}
    files(ledger).record_version(r, Path("/docs/a.txt"), size=3, mtime_ns=5, sha256=SHA_A)
    assert queries(ledger).files()[0]["state"] == "pending"
    assert queries(ledger).events()[-1]["kind"] == "file.reappeared"


def test_transient_failures_back_off_then_become_permanent(ledger: Ledger) -> None:
    r = root(ledger)
    files(ledger).record_version(r, Path("/docs/a.pdf"), size=3, mtime_ns=1, sha256=SHA_A)
    assert [t.sha256 for t in extractions(ledger).due_extractions()] == [SHA_A]
    busy = ExtractFailure(SHA_A, FailureKind.TRANSIENT, "file busy")
    extractions(ledger).record_extraction(busy, max_attempts=2)
    assert queries(ledger).files()[0]["state"] == "retrying"
    assert extractions(ledger).due_extractions() == []  # waiting for its backoff
    extractions(ledger).record_extraction(busy, max_attempts=2)
    row = queries(ledger).files()[0]
    assert row["state"] == "failed"
    assert row["failure_kind"] == "permanent"
    assert row["error"] == "gave up after 2 tries: file busy"


def test_problem_recorded_once_with_reason(ledger: Ledger) -> None:
    r = root(ledger)
    for _ in range(3):
        files(ledger).record_problem(r, Path("/docs/loop"), "symbolic link loop")
    (row,) = queries(ledger).files()
    assert (row["state"], row["error"]) == ("failed", "symbolic link loop")
    assert [e["kind"] for e in queries(ledger).events()].count("file.problem") == 1


def test_non_utf8_names_round_trip(ledger: Ledger) -> None:
    name = Path(os.fsdecode(b"/docs/caf\xe9-\xff.txt"))
    r = root(ledger)
    files(ledger).record_version(r, name, size=1, mtime_ns=1, sha256=SHA_A)
    assert uri_path(file_uri(name)) == name
    assert list(files(ledger).known_files(r)) == [name]
    assert queries(ledger).files()[0]["path"] == "/docs/caf\\xe9-\\xff.txt"


def test_verify_detects_edits_and_triggers_block_them(
    sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    ledger = sqlite_ledger
    r = root(ledger)
    files(ledger).record_version(r, Path("/docs/a.txt"), size=3, mtime_ns=1, sha256=SHA_A)
    extractions(ledger).record_extraction(Extraction(SHA_A, "native:text", "t" * 64, 3))
    assert queries(ledger).verify().ok
    other = sqlite3.connect(tmp_path / "ledger.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        other.execute("UPDATE events SET detail = '{}' WHERE id = 2")
    other.execute("DROP TRIGGER events_append_only_update")
    other.execute("UPDATE events SET detail = '{}' WHERE id = 2")
    other.commit()
    result = queries(ledger).verify()
    assert (result.ok, result.broken_at, result.reason) == (False, 2, "event content was changed")
    other.execute("DROP TRIGGER events_append_only_delete")
    other.execute("DELETE FROM events WHERE id = 2")
    other.commit()
    other.close()
    assert queries(ledger).verify().reason == "previous hash does not match"


def test_reader_is_not_blocked_by_an_open_write_transaction(
    sqlite_ledger: Ledger, tmp_path: Path
) -> None:
    ledger = sqlite_ledger
    r = root(ledger)
    files(ledger).record_version(r, Path("/docs/a.txt"), size=3, mtime_ns=1, sha256=SHA_A)
    raw(ledger).execute("BEGIN IMMEDIATE")
    raw(ledger).execute("UPDATE files SET size = 99")
    try:
        with open_ledger(tmp_path / "ledger.db", readonly=True) as reader:
            assert [row["size"] for row in queries(reader).files()] == [3]
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                raw(reader).execute("DELETE FROM files")
    finally:
        raw(ledger).rollback()
