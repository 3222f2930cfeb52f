"""The ledger's schema history: named, ordered, append-only.

Each migration and the record of it having run commit together
(``sqlite_utils.Migrations``). A released migration is never edited; a change
of schema is a new function at the end of this file.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("docproc")


@migrations()
def m001_initial(db: Database) -> None:
    """Roots, file locations, content versions, jobs and the hash-chained events."""
    db.executescript(
        """
        CREATE TABLE roots (
            id INTEGER PRIMARY KEY,
            uri TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            mode TEXT,
            added_at TEXT NOT NULL,
            last_scan_at TEXT
        );
        CREATE TABLE versions (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            extractor TEXT,
            text_sha256 TEXT,
            chars INTEGER,
            truncated_from INTEGER,
            failure_kind TEXT,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            retry_at TEXT,
            created_at TEXT NOT NULL,
            extracted_at TEXT
        );
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            root_id INTEGER NOT NULL REFERENCES roots(id),
            uri TEXT NOT NULL UNIQUE,
            path TEXT NOT NULL,
            version_id INTEGER REFERENCES versions(id),
            size INTEGER,
            mtime_ns INTEGER,
            state TEXT NOT NULL DEFAULT 'present',
            first_seen_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX files_root ON files(root_id, state);
        CREATE INDEX files_version ON files(version_id);
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            version_id INTEGER NOT NULL REFERENCES versions(id),
            task TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'queued',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (version_id, task)
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX events_subject ON events(subject);
        """
    )


@migrations()
def m002_problems_and_views(db: Database) -> None:
    """Location problems (symlink loops, FIFOs, ...) and the audit views for people."""
    db.executescript(
        """
        ALTER TABLE files ADD COLUMN problem TEXT;
        ALTER TABLE versions ADD COLUMN extract_seconds REAL;
        CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE VIEW file_status AS
        SELECT f.id, f.path, f.uri, r.uri AS root,
               CASE WHEN f.state = 'deleted' THEN 'deleted'
                    WHEN f.state = 'problem' THEN 'failed'
                    WHEN v.id IS NULL THEN 'pending'
                    WHEN v.state = 'failed' AND v.failure_kind = 'transient' THEN 'retrying'
                    ELSE v.state END AS state,
               v.sha256, f.size, v.extractor, v.chars, v.truncated_from,
               COALESCE(f.problem, v.error) AS error, v.failure_kind, v.attempts,
               f.first_seen_at, f.updated_at, v.extracted_at
        FROM files f JOIN roots r ON r.id = f.root_id
        LEFT JOIN versions v ON v.id = f.version_id;
        CREATE VIEW stuck AS
        SELECT * FROM file_status WHERE state IN ('failed', 'retrying');
        """
    )
