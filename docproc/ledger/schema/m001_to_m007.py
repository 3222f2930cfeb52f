"""The ledger's first migrations: files, versions, jobs, events, batches, sidecars, costs.

Released migrations are never edited; a change of schema is a new step at the
end of the newest module of this package."""

from __future__ import annotations

from docproc.ledger.schema.step import Step

STEPS = (
    Step(
        "m001_initial",
        """Roots, file locations, content versions, jobs and the hash-chained events.""",
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
        """,
    ),
    Step(
        "m002_problems_and_views",
        """Location problems (symlink loops, FIFOs, ...) and the audit views for people.""",
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
        """,
    ),
    Step(
        "m003_batches_requests_sidecars",
        """Tasks, batches, per-request results and the sidecars written from them.""",
        """
        CREATE TABLE tasks (
            fingerprint TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN ready_at REAL;
        ALTER TABLE jobs ADD COLUMN request_bytes INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN error TEXT;
        ALTER TABLE jobs ADD COLUMN result_request_id INTEGER;
        CREATE INDEX jobs_state ON jobs(task, state);
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            provider TEXT NOT NULL,
            provider_batch_id TEXT UNIQUE,
            state TEXT NOT NULL DEFAULT 'planned',
            request_count INTEGER NOT NULL,
            request_bytes INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            submitted_at TEXT,
            ended_at TEXT,
            applied_at TEXT,
            error TEXT
        );
        CREATE INDEX batches_state ON batches(state);
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            batch_id INTEGER NOT NULL REFERENCES batches(id),
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            custom_id TEXT NOT NULL UNIQUE,
            attempt INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            summary TEXT,
            highlights TEXT,
            dropped_highlights INTEGER,
            model TEXT,
            stop_reason TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cache_creation_input_tokens INTEGER,
            cache_read_input_tokens INTEGER,
            error_type TEXT,
            error TEXT,
            completed_at TEXT
        );
        CREATE INDEX requests_batch ON requests(batch_id);
        CREATE INDEX requests_job ON requests(job_id);
        CREATE TABLE sidecars (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id),
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            uri TEXT NOT NULL,
            sha256 TEXT,
            state TEXT NOT NULL,
            detail TEXT,
            created_at TEXT NOT NULL,
            written_at TEXT
        );
        CREATE INDEX sidecars_file ON sidecars(file_id, job_id);
        CREATE INDEX sidecars_uri ON sidecars(uri);
        DROP VIEW stuck;
        DROP VIEW file_status;
        CREATE VIEW file_status AS
        WITH current_job AS (
            SELECT version_id, MAX(id) AS job_id FROM jobs GROUP BY version_id
        )
        SELECT f.id, f.path, f.uri, r.uri AS root,
               CASE WHEN f.state = 'deleted' THEN 'deleted'
                    WHEN f.state = 'problem' THEN 'failed'
                    WHEN v.id IS NULL THEN 'pending'
                    WHEN v.state = 'failed' AND v.failure_kind = 'transient' THEN 'retrying'
                    WHEN v.state != 'extracted' THEN v.state
                    WHEN j.id IS NULL THEN 'extracted'
                    WHEN EXISTS (SELECT 1 FROM sidecars s WHERE s.file_id = f.id
                                 AND s.job_id = j.id AND s.state = 'conflict') THEN 'conflict'
                    WHEN j.state = 'done' AND EXISTS (
                        SELECT 1 FROM sidecars s WHERE s.file_id = f.id AND s.job_id = j.id
                        AND s.state = 'written') THEN 'written'
                    ELSE j.state END AS state,
               v.sha256, f.size, v.extractor, v.chars, v.truncated_from,
               COALESCE(f.problem, v.error, j.error) AS error, v.failure_kind, v.attempts,
               j.id AS job_id, f.first_seen_at, f.updated_at, v.extracted_at
        FROM files f JOIN roots r ON r.id = f.root_id
        LEFT JOIN versions v ON v.id = f.version_id
        LEFT JOIN current_job cj ON cj.version_id = v.id
        LEFT JOIN jobs j ON j.id = cj.job_id;
        CREATE VIEW stuck AS
        SELECT * FROM file_status WHERE state IN ('failed', 'retrying', 'conflict');
        """,
    ),
    Step(
        "m004_sidecars_by_job",
        """Find a job's sidecars without scanning them all (was quadratic in files).""",
        "CREATE INDEX sidecars_job ON sidecars(job_id, state)",
        script=False,
    ),
    Step(
        "m005_costs_and_output_retries",
        """Cost per request, budget reservations, exact request sizes, cuts and output retries.""",
        """
        ALTER TABLE versions ADD COLUMN json_bytes INTEGER;
        ALTER TABLE jobs ADD COLUMN max_tokens INTEGER;
        ALTER TABLE jobs ADD COLUMN output_retries INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE requests ADD COLUMN cost_usd REAL;
        ALTER TABLE requests ADD COLUMN text_cut_from INTEGER;
        ALTER TABLE batches ADD COLUMN estimated_cost_usd REAL;
        ALTER TABLE batches ADD COLUMN model TEXT;
        CREATE INDEX requests_completed ON requests(completed_at);
        CREATE VIEW request_costs AS
        SELECT q.id AS request_id, q.custom_id, q.batch_id, b.provider_batch_id, b.provider,
               COALESCE(q.model, b.model) AS model, q.state, substr(q.completed_at, 1, 10) AS day,
               (SELECT r.uri FROM files f JOIN roots r ON r.id = f.root_id
                WHERE f.version_id = j.version_id ORDER BY f.id LIMIT 1) AS root,
               q.input_tokens, q.output_tokens, q.cache_creation_input_tokens,
               q.cache_read_input_tokens, q.cost_usd, q.completed_at
        FROM requests q JOIN batches b ON b.id = q.batch_id JOIN jobs j ON j.id = q.job_id
        WHERE q.completed_at IS NOT NULL;
        CREATE VIEW batch_status AS
        SELECT b.id, b.provider, b.provider_batch_id, b.model, b.state, b.request_count,
               b.request_bytes, b.created_at, b.submitted_at, b.ended_at, b.applied_at,
               b.estimated_cost_usd,
               (SELECT SUM(q.cost_usd) FROM requests q WHERE q.batch_id = b.id) AS cost_usd,
               (SELECT COUNT(*) FROM requests q WHERE q.batch_id = b.id
                AND q.state = 'succeeded') AS succeeded,
               (SELECT COUNT(*) FROM requests q WHERE q.batch_id = b.id
                AND q.state IN ('errored', 'canceled', 'expired', 'missing')) AS failed,
               b.error
        FROM batches b;
        """,
    ),
    Step(
        "m006_s3_objects",
        """Per-object listing hints of S3 roots, and each root's health as a sentence.""",
        """
        CREATE TABLE s3_objects (
            file_id INTEGER PRIMARY KEY REFERENCES files(id),
            root_id INTEGER NOT NULL REFERENCES roots(id),
            key TEXT NOT NULL,
            etag TEXT NOT NULL
        );
        CREATE INDEX s3_objects_root ON s3_objects(root_id);
        ALTER TABLE roots ADD COLUMN status TEXT;
        """,
    ),
    Step(
        "m007_attempts_only_grow",
        """Where each job's current round of attempts began, and repair of lowered counts.

        ``docproc ledger retry`` used to set ``attempts`` back to 0, so the next
        request rebuilt a custom_id already in ``requests`` and every batch after
        it failed (issue 16). The retry now starts a round at ``attempts_at_retry``;
        a job whose count was lowered gets it back, as a job retried at that point.
        """,
        """
        ALTER TABLE jobs ADD COLUMN attempts_at_retry INTEGER NOT NULL DEFAULT 0;
        UPDATE jobs
           SET attempts = (SELECT MAX(r.attempt) FROM requests r WHERE r.job_id = jobs.id),
               attempts_at_retry = (SELECT MAX(r.attempt) FROM requests r
                                    WHERE r.job_id = jobs.id)
         WHERE attempts < (SELECT COALESCE(MAX(r.attempt), 0) FROM requests r
                           WHERE r.job_id = jobs.id);
        """,
    ),
)
