"""The SQLite ledger: every file, version and state change docproc has seen.

One file under the state directory, in WAL mode with a busy timeout and
foreign keys on. The writer (the daemon or a scan) changes state only through
the methods of :class:`Ledger`; each is one ``BEGIN IMMEDIATE`` transaction
that also appends to ``events``. Events are hash-chained: each carries the
hash of its predecessor, so :meth:`Ledger.verify` shows whether the history
was edited. Readers (the CLI, sqlite3, datasette) open the file read-only and
are never blocked by the writer.

``synchronous=NORMAL``: a crash of the process (kill -9) loses nothing that
was committed; a power cut may lose the last transactions but never corrupts
the file, and the reconcile scan finds any file they described again.

This module and :mod:`docproc.ledger.migrations` are the only ones with SQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes

from docproc.errors import FailureKind, LedgerError, LedgerUnwritable
from docproc.ledger.invariants import Violation, check
from docproc.ledger.migrations import Database, migrations
from docproc.models import (
    ExtractFailure,
    Extraction,
    ExtractOutcome,
    ExtractTask,
    Location,
    ObjectState,
    object_key,
)
from docproc.storage import sqlite_fault

GENESIS = "0" * 64
STORAGE_RETRY = timedelta(seconds=30)  # text that could not be stored is extracted again after
# The states of the file_status view, in the order a file goes through them.
FILE_STATES = (
    "pending", "extracted", "queued", "submitting", "submitted", "answered", "written",
    "retrying", "failed", "conflict", "deleted",
)  # fmt: skip
BUSY_TIMEOUT_S = 30.0
Row = dict[str, Any]


def file_uri(path: Path) -> str:
    """``file://`` URI of an absolute path; any bytes in the name survive."""
    return "file://" + quote(os.fsencode(path), safe="/")


def uri_path(uri: str) -> Path:
    return Path(os.fsdecode(unquote_to_bytes(uri.removeprefix("file://"))))


def display_path(path: Path) -> str:
    """The path as text for people; undecodable bytes shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def location_uri(where: Location) -> str:
    """The ledger's identity of a location: a ``file://`` URI, or the remote URI as is."""
    return where if isinstance(where, str) else file_uri(where)


def display_location(where: Location) -> str:
    """A location as text for people: a path, or ``s3://bucket/key`` with the key decoded."""
    return unquote(where) if isinstance(where, str) else display_path(where)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(prev: str, at: str, actor: str, kind: str, subject: str, detail: str) -> str:
    payload = json.dumps([prev, at, actor, kind, subject, detail], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Seen:
    """A stable file and the sha256 of its bytes, about to be recorded."""

    root_id: int
    path: Path
    size: int
    mtime_ns: int
    sha256: str
    uri: str = ""  # a remote object's identity; ``path`` is then a local copy of its bytes
    etag: str = ""


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of walking the event chain."""

    ok: bool
    events: int
    broken_at: int | None = None
    reason: str = ""


class Ledger:
    """The one writer's handle on the ledger (or a reader's, with ``readonly``)."""

    def __init__(
        self,
        path: Path,
        *,
        readonly: bool = False,
        actor: str = "docproc",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = path
        self.actor = actor
        self.readonly = readonly
        self._clock = clock or (lambda: datetime.now(UTC))
        self._head: str | None = None  # see transaction()
        self.db = Database(_connect(path, readonly))
        if not readonly:
            with self._storage_faults():
                migrations.apply(self.db)
        elif migrations.pending(self.db):
            raise LedgerError(f"ledger {path} needs migrating; run any writing command first")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def identity(self) -> str:
        """This ledger's random id (8 hex digits), made when it was created or migrated."""
        row = self.db.conn.execute("SELECT value FROM ledger_info WHERE key = 'id'").fetchone()
        return str(row[0])

    # -- transactions and events ----------------------------------------

    def now(self) -> str:
        return _utc(self._clock())

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: all of it commits, or none.

        Raises:
            LedgerUnwritable: the disk refused the write (full, read-only, I/O
                error); nothing of the transaction was recorded.
        """
        conn = self.db.conn
        with self._storage_faults():
            conn.execute("BEGIN IMMEDIATE")
            self._head = None  # the chain's last hash, valid while we hold the write lock
            try:
                yield conn
            except BaseException:
                self._head = None
                conn.rollback()
                raise
            self._head = None
            try:
                conn.commit()
            except BaseException:
                with suppress(sqlite3.Error):  # SQLite has already rolled back on a disk fault
                    conn.rollback()
                raise

    @contextmanager
    def _storage_faults(self) -> Iterator[None]:
        """Turn SQLite's words for a disk fault into :class:`LedgerUnwritable`."""
        try:
            yield
        except sqlite3.Error as exc:
            fault = sqlite_fault(exc, self.path.parent)
            if fault is None:
                raise
            raise LedgerUnwritable(fault.kind, fault.reason) from exc

    @contextmanager
    def savepoint(self, conn: sqlite3.Connection) -> Iterator[None]:
        """A part of the current transaction that may fail alone (one item of many).

        On an exception its changes, events included, are undone and the
        exception propagates; the rest of the transaction stands. A disk fault
        is no item's fault: it comes out as :class:`LedgerUnwritable`, which
        per-item handlers let pass, and the whole transaction is rolled back.
        """
        with self._storage_faults():
            conn.execute("SAVEPOINT item")
            try:
                yield
            except BaseException:
                conn.execute("ROLLBACK TO SAVEPOINT item")
                conn.execute("RELEASE SAVEPOINT item")
                self._head = None  # an event appended inside was undone with it
                raise
            conn.execute("RELEASE SAVEPOINT item")

    def event(self, conn: sqlite3.Connection, name: str, subject: str, **detail: Any) -> None:
        """Append one event to the hash chain, inside the caller's transaction."""
        prev = self._head
        if prev is None:
            row = conn.execute("SELECT hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
            prev = row[0] if row else GENESIS
        at, text = self.now(), json.dumps(detail, sort_keys=True, separators=(",", ":"))
        digest = event_hash(prev, at, self.actor, name, subject, text)
        conn.execute(
            "INSERT INTO events (at, actor, kind, subject, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, self.actor, name, subject, text, prev, digest),
        )
        self._head = digest

    # -- roots ------------------------------------------------------------

    def ensure_root(self, uri: str, *, kind: str, mode: str) -> int:
        """Return the id of the root at ``uri``, recording it (or its new mode)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT id, mode FROM roots WHERE uri = ?", (uri,)).fetchone()
            if row is None:
                cur = conn.execute(
                    "INSERT INTO roots (uri, kind, mode, added_at) VALUES (?, ?, ?, ?)",
                    (uri, kind, mode, self.now()),
                )
                root_id = int(cur.lastrowid or 0)
                self.event(conn, "root.added", f"root:{root_id}", uri=uri, mode=mode)
                return root_id
            if row[1] != mode:
                conn.execute("UPDATE roots SET mode = ? WHERE id = ?", (mode, row[0]))
                self.event(conn, "root.mode", f"root:{row[0]}", mode=mode, was=row[1])
            return int(row[0])

    def root_scanned(self, root_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE roots SET last_scan_at = ? WHERE id = ?", (self.now(), root_id))

    def known_files(self, root_id: int) -> dict[Path, tuple[int, int]]:
        """Live files of a root with the size and mtime the ledger last saw."""
        rows = self.db.conn.execute(
            "SELECT uri, size, mtime_ns FROM files"
            " WHERE root_id = ? AND state = 'present' AND version_id IS NOT NULL",
            (root_id,),
        )
        return {uri_path(uri): (size, mtime) for uri, size, mtime in rows}

    def known_objects(self, root_id: int) -> dict[str, ObjectState]:
        """Live objects of an S3 root, by key, with the hints the ledger last saw."""
        rows = self.db.conn.execute(_OBJECTS_SQL + " WHERE f.root_id = ?", (root_id,))
        return {key: ObjectState(etag, size, mtime, bool(settled))
                for key, etag, size, mtime, settled in rows}  # fmt: skip

    def known_object(self, root_id: int, key: str) -> ObjectState | None:
        """One live object's hints, if the ledger has it."""
        row = self.db.conn.execute(
            _OBJECTS_SQL + " WHERE f.root_id = ? AND o.key = ?", (root_id, key)
        ).fetchone()
        return None if row is None else ObjectState(row[1], row[2], row[3], bool(row[4]))

    def root_status(self, root_id: int, status: str) -> None:
        """Record a root's health sentence (``ok`` or what is wrong) when it changes."""
        with self.transaction() as conn:
            row = conn.execute("SELECT status FROM roots WHERE id = ?", (root_id,)).fetchone()
            if row is None or row[0] == status:
                return
            conn.execute("UPDATE roots SET status = ? WHERE id = ?", (status, root_id))
            self.event(conn, "root.status", f"root:{root_id}", status=status, was=row[0])

    def known_file(self, path: Path) -> tuple[int, int] | None:
        """Size and mtime the ledger last saw for one live file, if any."""
        row = self.db.conn.execute(
            "SELECT size, mtime_ns FROM files"
            " WHERE uri = ? AND state = 'present' AND version_id IS NOT NULL",
            (file_uri(path),),
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    # -- intake transitions -----------------------------------------------

    def record_version(
        self, root_id: int, path: Path, *, size: int, mtime_ns: int, sha256: str
    ) -> bool:
        """Record that ``path`` holds the bytes ``sha256``; see :meth:`record_versions`."""
        return self.record_versions([Seen(root_id, path, size, mtime_ns, sha256)])[0]

    def record_versions(self, seen: Sequence[Seen]) -> list[bool]:
        """Record what each path holds, in one transaction.

        For each, ``True`` when that content still needs extracting (a version
        never seen, or one recorded but not yet extracted); ``False`` when an
        extraction of the same bytes exists, which the file then reuses.
        """
        with self.transaction() as conn:
            return [self._record_version(conn, item) for item in seen]

    def _record_version(self, conn: sqlite3.Connection, item: Seen) -> bool:
        where = item.uri or item.path
        uri, shown = location_uri(where), display_location(where)
        version_id, state = self._version(conn, item.sha256, item.size)
        row = conn.execute(
            "SELECT id, version_id, state FROM files WHERE uri = ?", (uri,)
        ).fetchone()
        detail = {"path": shown, "sha256": item.sha256, "size": item.size}
        if state == "extracted":
            detail["reused"] = True
        if row is None:
            file_id = self._insert_file(
                conn, item.root_id, uri, shown, version_id, item.size, item.mtime_ns
            )
            self.event(conn, "file.discovered", f"file:{file_id}", **detail)
        else:
            file_id = int(row[0])
            self._update_file(conn, row, version_id, item.size, item.mtime_ns, detail)
        if item.uri:
            conn.execute(
                "INSERT INTO s3_objects (file_id, root_id, key, etag) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (file_id) DO UPDATE SET etag = excluded.etag",
                (file_id, item.root_id, object_key(item.uri)[1], item.etag),
            )
        return state == "pending"

    def _version(self, conn: sqlite3.Connection, sha256: str, size: int) -> tuple[int, str]:
        row = conn.execute("SELECT id, state FROM versions WHERE sha256 = ?", (sha256,)).fetchone()
        if row is not None:
            return int(row[0]), str(row[1])
        cur = conn.execute(
            "INSERT INTO versions (sha256, size, created_at) VALUES (?, ?, ?)",
            (sha256, size, self.now()),
        )
        version_id = int(cur.lastrowid or 0)
        self.event(conn, "version.recorded", f"version:{version_id}", sha256=sha256, size=size)
        return version_id, "pending"

    def _insert_file(
        self,
        conn: sqlite3.Connection,
        root_id: int,
        uri: str,
        shown: str,
        version_id: int,
        size: int,
        mtime_ns: int,
    ) -> int:
        now = self.now()
        cur = conn.execute(
            "INSERT INTO files (root_id, uri, path, version_id, size, mtime_ns,"
            " first_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (root_id, uri, shown, version_id, size, mtime_ns, now, now),
        )
        return int(cur.lastrowid or 0)

    def _update_file(
        self,
        conn: sqlite3.Connection,
        row: tuple[int, int | None, str],
        version_id: int,
        size: int,
        mtime_ns: int,
        detail: dict[str, Any],
    ) -> None:
        file_id, old_version, old_state = row
        conn.execute(
            "UPDATE files SET version_id = ?, size = ?, mtime_ns = ?, state = 'present',"
            " problem = NULL, updated_at = ? WHERE id = ?",
            (version_id, size, mtime_ns, self.now(), file_id),
        )
        if old_state != "present":
            self.event(conn, "file.reappeared", f"file:{file_id}", **detail)
        elif old_version != version_id:
            self.event(conn, "file.changed", f"file:{file_id}", **detail)

    def record_gone(self, path: Location) -> None:
        """The file at ``path`` was deleted (or moved away); its history stays."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM files WHERE uri = ? AND state != 'deleted'", (location_uri(path),)
            ).fetchone()
            if row is None:
                return
            conn.execute(
                "UPDATE files SET state = 'deleted', updated_at = ? WHERE id = ?",
                (self.now(), row[0]),
            )
            self.event(conn, "file.deleted", f"file:{row[0]}", path=display_location(path))

    def record_problem(self, root_id: int, path: Location, reason: str) -> None:
        """An entry that can never be read as it is (a symlink loop, a FIFO...)."""
        uri, shown = location_uri(path), display_location(path)
        with self.transaction() as conn:
            row = conn.execute("SELECT id, problem FROM files WHERE uri = ?", (uri,)).fetchone()
            if row is not None and row[1] == reason:
                return
            if row is None:
                now = self.now()
                cur = conn.execute(
                    "INSERT INTO files (root_id, uri, path, state, problem, first_seen_at,"
                    " updated_at) VALUES (?, ?, ?, 'problem', ?, ?, ?)",
                    (root_id, uri, shown, reason, now, now),
                )
                file_id = int(cur.lastrowid or 0)
            else:
                file_id = int(row[0])
                conn.execute(
                    "UPDATE files SET state = 'problem', problem = ?, updated_at = ? WHERE id = ?",
                    (reason, self.now(), file_id),
                )
            self.event(conn, "file.problem", f"file:{file_id}", path=shown, reason=reason)

    # -- extraction transitions -------------------------------------------

    def record_extraction(self, outcome: ExtractOutcome, *, max_attempts: int = 5) -> None:
        """Record what extraction of one version produced."""
        self.record_extractions([outcome], max_attempts=max_attempts)

    def record_extractions(
        self, outcomes: Sequence[ExtractOutcome], *, max_attempts: int = 5
    ) -> None:
        """Record what extraction produced, for several versions in one transaction."""
        with self.transaction() as conn:
            for outcome in outcomes:
                self._record_extraction(conn, outcome, max_attempts)

    def _record_extraction(
        self, conn: sqlite3.Connection, outcome: ExtractOutcome, max_attempts: int
    ) -> None:
        row = conn.execute(
            "SELECT id, attempts FROM versions WHERE sha256 = ?", (outcome.sha256,)
        ).fetchone()
        if row is None:
            raise LedgerError(f"no version {outcome.sha256} in the ledger")
        version_id, attempts = int(row[0]), int(row[1]) + 1
        if isinstance(outcome, Extraction):
            self._extracted(conn, version_id, attempts, outcome)
        else:
            self._extraction_failed(conn, version_id, attempts, outcome, max_attempts)

    def _extraction_failed(
        self,
        conn: sqlite3.Connection,
        version_id: int,
        attempts: int,
        failure: ExtractFailure,
        max_attempts: int,
    ) -> None:
        kind, reason = failure.kind, failure.reason
        if kind is FailureKind.TRANSIENT and attempts >= max_attempts:
            kind, reason = FailureKind.PERMANENT, f"gave up after {attempts} tries: {reason}"
        retry_at = None
        if kind is FailureKind.TRANSIENT:
            retry_at = _utc(self._clock() + _backoff(attempts))
        elif kind is FailureKind.STORAGE:  # docproc's disk, not the document: not counted
            attempts -= 1
            retry_at = _utc(self._clock() + STORAGE_RETRY)
        conn.execute(
            "UPDATE versions SET state = 'failed', failure_kind = ?, error = ?, extractor = ?,"
            " attempts = ?, retry_at = ?, extract_seconds = ? WHERE id = ?",
            (
                kind.value,
                reason,
                failure.extractor,
                attempts,
                retry_at,
                failure.seconds,
                version_id,
            ),
        )
        self.event(
            conn, "extraction.failed", f"version:{version_id}",
            kind=kind.value, reason=reason, extractor=failure.extractor, retry_at=retry_at,
        )  # fmt: skip

    def _extracted(
        self, conn: sqlite3.Connection, version_id: int, attempts: int, done: Extraction
    ) -> None:
        conn.execute(
            "UPDATE versions SET state = 'extracted', extractor = ?, text_sha256 = ?, chars = ?,"
            " truncated_from = ?, failure_kind = NULL, error = NULL, retry_at = NULL,"
            " attempts = ?, extracted_at = ?, extract_seconds = ?, json_bytes = ?,"
            " ocr_pages = ? WHERE id = ?",
            (
                done.extractor, done.text_sha256, done.chars, done.truncated_from,
                attempts, self.now(), done.seconds, done.json_bytes, done.ocr_pages, version_id,
            ),
        )  # fmt: skip
        detail: dict[str, Any] = {"ocr_pages": done.ocr_pages} if done.ocr_pages else {}
        self.event(
            conn, "extraction.succeeded", f"version:{version_id}",
            extractor=done.extractor, chars=done.chars, text_sha256=done.text_sha256,
            truncated_from=done.truncated_from, **detail,
        )  # fmt: skip

    def requeue_failed(self, patterns: Sequence[str]) -> int:
        """Set versions that failed for good with a reason LIKE one of ``patterns``
        back to pending (a reader for them exists now); returns how many."""
        if not patterns:
            return 0
        where = " OR ".join("error LIKE ?" for _ in patterns)
        with self.transaction() as conn:
            # Only "?" placeholders are joined into the query; patterns are parameters.
            query = f"{_FAILED_FOR_GOOD} AND ({where})"
            rows = conn.execute(query, tuple(patterns)).fetchall()
            for version_id, error in rows:
                conn.execute(
                    "UPDATE versions SET state = 'pending', failure_kind = NULL, error = NULL,"
                    " retry_at = NULL WHERE id = ?",
                    (version_id,),
                )
                self.event(conn, "extraction.requeued", f"version:{version_id}", was=error)
        return len(rows)

    def due_extractions(self) -> list[ExtractTask]:
        """Versions to (re)extract now: never extracted, or a transient failure whose wait is over.

        Each comes with the path of one live local file holding it. This is how
        work in hand at a crash is picked up again. Versions held only by remote
        objects are in :meth:`due_versions`.
        """
        return [ExtractTask(sha256=sha, path=uri_path(uri))
                for sha, uri in self.due_versions() if uri.startswith("file://")]  # fmt: skip

    def due_versions(self) -> list[tuple[str, str]]:
        """(sha256, URI of one live file holding it) of every version due for extraction.

        A local file is preferred (``file://`` sorts before ``s3://``).
        """
        rows = self.db.conn.execute(
            "SELECT v.sha256, MIN(f.uri) FROM versions v JOIN files f ON f.version_id = v.id"
            " WHERE f.state = 'present' AND (v.state = 'pending' OR (v.state = 'failed'"
            " AND v.failure_kind IN ('transient', 'storage') AND v.retry_at <= ?))"
            " GROUP BY v.id ORDER BY v.id",
            (self.now(),),
        )
        return [(str(sha), str(uri)) for sha, uri in rows]

    def settled_versions(self, shas: Sequence[str]) -> set[str]:
        """Which of these versions need no more extraction (extracted, or failed for good)."""
        marks = ",".join("?" * len(shas))
        rows = self.db.conn.execute(
            f"SELECT sha256 FROM versions WHERE sha256 IN ({marks}) AND"  # noqa: S608
            " (state = 'extracted' OR (state = 'failed' AND failure_kind = 'permanent'))",
            list(shas),
        )
        return {str(sha) for (sha,) in rows}

    # -- reading ----------------------------------------------------------

    def files(self, state: str | None = None, roots: list[str] | None = None) -> list[Row]:
        """Files as people see them (the ``file_status`` view), by state and root URI."""
        clauses, args = [], []
        if state:
            clauses, args = ["state = ?"], [state]
        if roots:
            clauses.append("root IN (" + ",".join("?" * len(roots)) + ")")
            args.extend(roots)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"SELECT * FROM file_status{where} ORDER BY path"  # noqa: S608 (placeholders only)
        return list(self.db.query(sql, args))

    def find_file(self, ref: str) -> Row | None:
        """A file by id, by path (absolute or relative to the working directory) or URI."""
        if ref.isdigit():
            rows = self.db.query("SELECT * FROM file_status WHERE id = ?", [int(ref)])
        elif ref.startswith("s3://"):  # as shown (key decoded) or as stored (encoded)
            rows = self.db.query(
                "SELECT * FROM file_status WHERE uri = ? OR path = ? ORDER BY id LIMIT 1",
                [ref, ref],
            )
        else:
            uri = ref if ref.startswith("file://") else file_uri(Path(ref).absolute())
            rows = self.db.query("SELECT * FROM file_status WHERE uri = ?", [uri])
        return next(iter(rows), None)

    def text_sha256(self, file_id: int) -> str | None:
        row = self.db.conn.execute(
            "SELECT v.text_sha256 FROM files f JOIN versions v ON v.id = f.version_id"
            " WHERE f.id = ?",
            (file_id,),
        ).fetchone()
        return None if row is None else row[0]

    def events(self, subjects: list[str] | None = None, limit: int | None = None) -> list[Row]:
        sql, args = "SELECT * FROM events", list(subjects or [])
        if subjects:
            sql += " WHERE subject IN (" + ",".join("?" * len(subjects)) + ")"
        sql += " ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return list(reversed(list(self.db.query(sql, args))))

    def file_subjects(self, file_id: int) -> list[str]:
        """Event subjects that concern one file: itself and every version it held."""
        rows = self.db.conn.execute(
            "SELECT DISTINCT json_extract(detail, '$.sha256') FROM events"
            " WHERE subject = ? AND json_extract(detail, '$.sha256') IS NOT NULL",
            (f"file:{file_id}",),
        )
        shas = [r[0] for r in rows]
        marks = ",".join("?" * len(shas))
        sql = f"SELECT id FROM versions WHERE sha256 IN ({marks})"  # noqa: S608 (placeholders only)
        ids = self.db.conn.execute(sql, shas)
        return [f"file:{file_id}", *(f"version:{r[0]}" for r in ids)]

    def state_counts(self) -> dict[str, int]:
        rows = self.db.conn.execute("SELECT state, COUNT(*) FROM file_status GROUP BY state")
        return dict(rows)

    def roots(self) -> list[Row]:
        return list(self.db.query("SELECT * FROM roots ORDER BY id"))

    def verify(self) -> Verification:
        """Walk the event chain and report the first event that does not fit."""
        prev, count = GENESIS, 0
        cursor = self.db.conn.execute(
            "SELECT id, at, actor, kind, subject, detail, prev_hash, hash FROM events ORDER BY id"
        )
        for event_id, at, actor, kind, subject, detail, prev_hash, digest in cursor:
            count += 1
            if prev_hash != prev:
                return Verification(False, count, event_id, "previous hash does not match")
            if event_hash(prev, at, actor, kind, subject, detail) != digest:
                return Verification(False, count, event_id, "event content was changed")
            prev = digest
        return Verification(True, count)

    def violations(self) -> list[Violation]:
        """The invariants the ledger's state breaks (see :mod:`docproc.ledger.invariants`)."""
        return check(self.db.conn)


# Live objects of S3 roots with their hints; "settled": nothing left to extract.
_OBJECTS_SQL = (
    "SELECT o.key, o.etag, f.size, f.mtime_ns,"
    " v.state = 'extracted' OR (v.state = 'failed' AND v.failure_kind = 'permanent')"
    " FROM s3_objects o JOIN files f ON f.id = o.file_id JOIN versions v ON v.id = f.version_id"
    " AND f.state = 'present'"
)


_FAILED_FOR_GOOD = (
    "SELECT id, error FROM versions WHERE state = 'failed' AND failure_kind = 'permanent'"
)


def _backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min ... capped at one hour."""
    return timedelta(seconds=min(3600, 30 * 2 ** (attempts - 1)))


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            if not path.exists():
                raise LedgerError(f"no ledger at {path}: nothing has been recorded yet")
            conn = sqlite3.connect(
                f"file:{quote(str(path))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        fault = sqlite_fault(exc, path.parent)
        if fault is not None and not readonly:
            raise LedgerUnwritable(fault.kind, f"{fault.reason} (opening {path})") from exc
        raise LedgerError(f"cannot open ledger {path}: {exc}") from exc
    return conn
