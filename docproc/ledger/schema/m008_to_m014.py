"""The ledger's later migrations: conflict reasons, identity, operator requests, staged
batches, sidecar retries, create attempts.

Released migrations are never edited; a change of schema is a new step at the
end of the newest module of this package."""

from __future__ import annotations

from docproc.ledger.schema.step import Step

STEPS = (
    Step(
        "m008_conflict_reasons",
        """A file in conflict shows why (the sidecar's reason) in file_status and stuck; a
        file whose result was imported from its sidecars is written before its text is
        extracted again.""",
        """
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
                    WHEN v.state = 'pending' AND j.state = 'done' AND EXISTS (
                        SELECT 1 FROM sidecars s WHERE s.file_id = f.id AND s.job_id = j.id
                        AND s.state = 'written') THEN 'written'
                    WHEN v.state != 'extracted' THEN v.state
                    WHEN j.id IS NULL THEN 'extracted'
                    WHEN EXISTS (SELECT 1 FROM sidecars s WHERE s.file_id = f.id
                                 AND s.job_id = j.id AND s.state = 'conflict') THEN 'conflict'
                    WHEN j.state = 'done' AND EXISTS (
                        SELECT 1 FROM sidecars s WHERE s.file_id = f.id AND s.job_id = j.id
                        AND s.state = 'written') THEN 'written'
                    ELSE j.state END AS state,
               v.sha256, f.size, v.extractor, v.chars, v.truncated_from,
               COALESCE(f.problem, v.error,
                        (SELECT s.detail FROM sidecars s WHERE s.file_id = f.id
                         AND s.job_id = j.id AND s.state = 'conflict' ORDER BY s.id DESC LIMIT 1),
                        j.error) AS error,
               v.failure_kind, v.attempts,
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
        "m009_ledger_identity",
        """A random id per ledger, part of every custom_id from now on: a rebuilt ledger
        never sends a custom_id an earlier one used, nor collides with results it imports.""",
        """
        CREATE TABLE ledger_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO ledger_info (key, value) VALUES ('id', lower(hex(randomblob(4))));
        """,
    ),
    Step(
        "m010_operator_requests",
        """What operators asked (cancel, retry, reprocess), for the daemon to carry out,
        with who asked and what it was estimated to cost; a batch canceled without retry.""",
        """
        CREATE TABLE operator_requests (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL,
            requested_by TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            estimated_cost_usd REAL,
            state TEXT NOT NULL DEFAULT 'pending',
            outcome TEXT,
            done_at TEXT
        );
        CREATE INDEX operator_requests_state ON operator_requests(state, id);
        ALTER TABLE batches ADD COLUMN cancel_retry INTEGER;
        """,
    ),
    Step(
        "m011_ocr_pages",
        """Pages (or pictures) whose text came from OCR, per version (NULL before this).""",
        "ALTER TABLE versions ADD COLUMN ocr_pages INTEGER",
        script=False,
    ),
    Step(
        "m012_staged_batches",
        """What staged and live batches record.

        ``batches.submit_token`` is the batch's idempotency token, written before
        the create call and made of the ledger's id (``m009_ledger_identity``) and
        the batch id, so two ledgers sharing an account and a staging prefix never
        adopt each other's jobs. ``batches.tier`` is ``batch`` (a provider batch,
        at the batch price) or ``live`` (below a provider's minimum: sent through
        the live API at the list price). ``provider_status`` and ``provider_detail``
        hold the provider's last word on a batch (e.g. ``InProgress``; message and
        counts).
        """,
        """
        ALTER TABLE batches ADD COLUMN submit_token TEXT;
        ALTER TABLE batches ADD COLUMN tier TEXT NOT NULL DEFAULT 'batch';
        ALTER TABLE batches ADD COLUMN provider_status TEXT;
        ALTER TABLE batches ADD COLUMN provider_detail TEXT;
        DROP VIEW request_costs;
        CREATE VIEW request_costs AS
        SELECT q.id AS request_id, q.custom_id, q.batch_id, b.provider_batch_id, b.provider,
               COALESCE(q.model, b.model) AS model, b.tier, q.state,
               substr(q.completed_at, 1, 10) AS day,
               (SELECT r.uri FROM files f JOIN roots r ON r.id = f.root_id
                WHERE f.version_id = j.version_id ORDER BY f.id LIMIT 1) AS root,
               q.input_tokens, q.output_tokens, q.cache_creation_input_tokens,
               q.cache_read_input_tokens, q.cost_usd, q.completed_at
        FROM requests q JOIN batches b ON b.id = q.batch_id JOIN jobs j ON j.id = q.job_id
        WHERE q.completed_at IS NOT NULL;
        DROP VIEW batch_status;
        CREATE VIEW batch_status AS
        SELECT b.id, b.provider, b.provider_batch_id, b.model, b.tier, b.state,
               b.provider_status, b.request_count, b.request_bytes, b.created_at,
               b.submitted_at, b.ended_at, b.applied_at, b.estimated_cost_usd,
               (SELECT SUM(q.cost_usd) FROM requests q WHERE q.batch_id = b.id) AS cost_usd,
               (SELECT COUNT(*) FROM requests q WHERE q.batch_id = b.id
                AND q.state = 'succeeded') AS succeeded,
               (SELECT COUNT(*) FROM requests q WHERE q.batch_id = b.id
                AND q.state IN ('errored', 'canceled', 'expired', 'missing')) AS failed,
               b.error, b.submit_token, b.provider_detail
        FROM batches b;
        """,
    ),
    Step(
        "m013_sidecar_retries",
        """Sidecar writes that failed for a storage reason, waiting for their next try.

        One row per (file, job) while its sidecars are not written: the fault's
        kind and sentence, where the write must go (``place``: a folder, or
        ``s3://bucket/prefix/``), how many tries, and when the next is due
        (``retry_at``, epoch seconds). The row goes once the sidecars are
        written. ``file_status`` shows such a file as ``retrying`` with the
        reason, and a file whose job is answered but not yet written as
        ``answered`` (it showed the job's internal ``done``).
        """,
        """
        CREATE TABLE sidecar_retries (
            file_id INTEGER NOT NULL REFERENCES files(id),
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            place TEXT NOT NULL,
            kind TEXT NOT NULL,
            reason TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 1,
            first_at TEXT NOT NULL,
            last_at TEXT NOT NULL,
            retry_at REAL NOT NULL,
            PRIMARY KEY (file_id, job_id)
        );
        CREATE INDEX sidecar_retries_place ON sidecar_retries(place);
        CREATE INDEX sidecar_retries_due ON sidecar_retries(retry_at);
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
                    WHEN v.state = 'failed' AND v.failure_kind IN ('transient', 'storage')
                         THEN 'retrying'
                    WHEN v.state = 'pending' AND j.state = 'done' AND EXISTS (
                        SELECT 1 FROM sidecars s WHERE s.file_id = f.id AND s.job_id = j.id
                        AND s.state = 'written') THEN 'written'
                    WHEN v.state != 'extracted' THEN v.state
                    WHEN j.id IS NULL THEN 'extracted'
                    WHEN EXISTS (SELECT 1 FROM sidecars s WHERE s.file_id = f.id
                                 AND s.job_id = j.id AND s.state = 'conflict') THEN 'conflict'
                    WHEN j.state = 'done' AND EXISTS (
                        SELECT 1 FROM sidecars s WHERE s.file_id = f.id AND s.job_id = j.id
                        AND s.state = 'written') THEN 'written'
                    WHEN j.state = 'done' AND sr.file_id IS NOT NULL THEN 'retrying'
                    WHEN j.state = 'done' THEN 'answered'
                    ELSE j.state END AS state,
               v.sha256, f.size, v.extractor, v.chars, v.truncated_from,
               COALESCE(f.problem, v.error,
                        (SELECT s.detail FROM sidecars s WHERE s.file_id = f.id
                         AND s.job_id = j.id AND s.state = 'conflict' ORDER BY s.id DESC LIMIT 1),
                        CASE WHEN j.state = 'done' THEN sr.reason END,
                        j.error) AS error,
               v.failure_kind, v.attempts,
               j.id AS job_id, f.first_seen_at, f.updated_at, v.extracted_at
        FROM files f JOIN roots r ON r.id = f.root_id
        LEFT JOIN versions v ON v.id = f.version_id
        LEFT JOIN current_job cj ON cj.version_id = v.id
        LEFT JOIN jobs j ON j.id = cj.job_id
        LEFT JOIN sidecar_retries sr ON sr.file_id = f.id AND sr.job_id = j.id;
        CREATE VIEW stuck AS
        SELECT * FROM file_status WHERE state IN ('failed', 'retrying', 'conflict');
        """,
    ),
    Step(
        "m014_create_attempts",
        """``batches.create_attempts``: how many create calls of a batch were (or may have
        been) made. Each is numbered in the ledger before its call; a provider whose
        create has no idempotency key (Vertex AI) labels the job with the number, so
        a job made by an earlier attempt is recognised and never paid for twice.
        Batches recorded before this migration made one attempt or none.
        """,
        """
        ALTER TABLE batches ADD COLUMN create_attempts INTEGER NOT NULL DEFAULT 0;
        UPDATE batches SET create_attempts = 1 WHERE provider_batch_id IS NOT NULL;
        """,
    ),
)
