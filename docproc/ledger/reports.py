"""Audit queries for people, as datasette canned queries (read-only SQL over the views).

``docproc ledger datasette-metadata > metadata.json`` then
``datasette ledger.db -m metadata.json`` shows them on the database page;
each is plain SQL that sqlite3 runs as well. Parameters are datasette's
``:name`` placeholders.
"""

from __future__ import annotations

from typing import Any

# name -> (title, description, sql)
CANNED: dict[str, tuple[str, str, str]] = {
    "stuck_files": (
        "Stuck files",
        "Files failed, waiting for a retry, or in conflict, with the reason; oldest first.",
        "SELECT id, path, state, error, attempts, updated_at FROM stuck ORDER BY updated_at",
    ),
    "spend_per_day_and_model": (
        "Spend per day and model",
        "Answered requests, tokens and dollars billed (batch prices), per UTC day and model.",
        "SELECT day, model, COUNT(*) AS requests, SUM(input_tokens) AS input_tokens,"
        " SUM(output_tokens) AS output_tokens,"
        " SUM(cache_creation_input_tokens) AS cache_write_tokens,"
        " SUM(cache_read_input_tokens) AS cache_read_tokens,"
        " ROUND(SUM(cost_usd), 4) AS cost_usd"
        " FROM request_costs GROUP BY day, model ORDER BY day DESC, model",
    ),
    "batches_in_flight": (
        "Batches in flight",
        "Batches planned, submitted or ended whose results are not applied yet.",
        "SELECT id, provider, provider_batch_id, model, state, request_count, created_at,"
        " submitted_at, ended_at, estimated_cost_usd, error FROM batch_status"
        " WHERE state IN ('planned', 'submitted', 'ended') ORDER BY id",
    ),
    "file_history": (
        "A file's history",
        "Every event about one file (give its path or URI): the file, each version"
        " of its content, and the jobs that summarised them.",
        "WITH f AS (SELECT id FROM files WHERE path = :path OR uri = :path),"
        " v AS (SELECT DISTINCT ve.id FROM versions ve JOIN events e"
        "   ON e.subject IN (SELECT 'file:' || id FROM f)"
        "   AND json_extract(e.detail, '$.sha256') = ve.sha256),"
        " j AS (SELECT id FROM jobs WHERE version_id IN (SELECT id FROM v))"
        " SELECT id, at, actor, kind, subject, detail FROM events"
        " WHERE subject IN (SELECT 'file:' || id FROM f)"
        " OR subject IN (SELECT 'version:' || id FROM v)"
        " OR subject IN (SELECT 'job:' || id FROM j) ORDER BY id",
    ),
}


def datasette_metadata(database: str = "ledger") -> dict[str, Any]:
    """datasette's metadata document with the canned queries of :data:`CANNED`.

    ``database`` is the name datasette gives the file: its name without ``.db``.
    """
    queries = {
        name: {"title": title, "description": description, "sql": sql}
        for name, (title, description, sql) in CANNED.items()
    }
    return {
        "title": "docproc ledger",
        "databases": {database: {"queries": queries}},
    }
