"""The ledger's invariants, written down once and checked by ``docproc ledger verify``.

The hash chain (:func:`docproc.ledger.events.verify`) shows that the history
was not edited; these show that the state it describes is one docproc can
go on from. Each is a query for counter-examples, so the same checks serve
the CLI, the tests and the stateful property test (``tests/test_ledger_machine.py``).

Documented states (nothing else may appear in these columns)::

    files     present | deleted | problem
    versions  pending | extracted | failed
    jobs      queued -> submitting -> submitted -> done
                 ^          |            |
                 +----------+------------+  retryable outcome, attempts left
              -> failed  (quarantined with the reason; ``ledger retry`` -> queued)
              done | failed -> queued  (``docproc reprocess``: an operator's new round)
    batches   planned -> submitted -> ended -> applied
              planned -> failed  (the create certainly did not happen)
              submitted | ended -> lost  (the provider no longer knows it)
              imported  (results recorded from sidecars: adopted or ``import-sidecars``; never live)
    requests  pending -> succeeded | errored | expired | canceled | missing
    sidecars  writing -> written | conflict | error;  written -> removed | kept
              written -> superseded  (reprocessed: on disk until the new result replaces it)

A batch is *live* while planned, submitted or ended: its results may still
come. The invariants:

``custom_ids_unique``
    No custom_id is recorded twice (results are matched by custom_id alone).
``custom_ids_never_reused``
    No job sends the same attempt twice: a custom_id (``<ledger>-j<job>-a<attempt>``,
    the ledger's random id first, so a rebuilt ledger never reuses one either)
    names one request, ever.
``attempts_increase``
    A job's requests carry strictly increasing attempts, in the order they
    were recorded, and the job's ``attempts`` is never below the last of
    them: attempts only grow, and the requests of earlier attempts stay.
``one_live_batch``
    A job waits (has a pending request) in at most one live batch, and only
    while it is submitting or submitted: a queued job is in no batch yet.
``written_once``
    A document is written at most once per version and task: one ``written``
    sidecar per file, job and target, and at most one succeeded request per job,
    plus one for each time an operator asked to summarise it again
    (``job.reprocess`` in the events: a costed, recorded decision).
``documented_states``
    Every row is in a documented state (above), and a ``done`` job's result
    is a succeeded request of its own.
``no_wait_on_closed_batch``
    A job that is submitting or submitted has its pending request in a live
    batch: nothing waits for results that can no longer come.

SQL here is plain (``||``, ``GROUP BY``/``HAVING``, correlated subqueries)
so the checks move to another database unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from docproc.ledger.engine import Connection

LIVE_BATCH_STATES = ("planned", "submitted", "ended")
STATES = {
    "files": ("present", "deleted", "problem"),
    "versions": ("pending", "extracted", "failed"),
    "jobs": ("queued", "submitting", "submitted", "done", "failed"),
    "batches": ("planned", "submitted", "ended", "applied", "failed", "lost", "imported"),
    "requests": ("pending", "succeeded", "errored", "expired", "canceled", "missing"),
    "sidecars": ("writing", "written", "conflict", "error", "removed", "kept", "superseded"),
}
EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class Invariant:
    """One rule: its name, what it says, and queries whose rows break it."""

    name: str
    statement: str
    queries: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken invariant with a few of the rows that break it."""

    name: str
    statement: str
    examples: tuple[str, ...]


def _undocumented(table: str) -> str:
    allowed = ", ".join(repr(s) for s in STATES[table])
    return (
        f"SELECT '{table} ' || id || ' is ' || COALESCE(state, 'NULL') FROM {table}"  # noqa: S608
        f" WHERE state IS NULL OR state NOT IN ({allowed})"
    )


INVARIANTS = (
    Invariant(
        "custom_ids_unique",
        "no custom_id is recorded twice",
        (
            "SELECT 'custom_id ' || custom_id || ' recorded ' || COUNT(*) || ' times'"
            " FROM requests GROUP BY custom_id HAVING COUNT(*) > 1",
        ),
    ),
    Invariant(
        "custom_ids_never_reused",
        "no job sends the same attempt twice",
        (
            "SELECT 'job ' || job_id || ' sent attempt ' || attempt || ' ' || COUNT(*)"
            " || ' times' FROM requests GROUP BY job_id, attempt HAVING COUNT(*) > 1",
        ),
    ),
    Invariant(
        "attempts_increase",
        "a job's attempts strictly increase and its count never falls below the last sent",
        (
            "SELECT 'job ' || a.job_id || ': ' || a.custom_id || ' then ' || b.custom_id"
            " FROM requests a JOIN requests b ON b.job_id = a.job_id AND b.id > a.id"
            " AND b.attempt <= a.attempt",
            "SELECT 'job ' || j.id || ' has attempts ' || j.attempts || ' but sent attempt '"
            " || MAX(r.attempt) FROM jobs j JOIN requests r ON r.job_id = j.id"
            " GROUP BY j.id, j.attempts HAVING j.attempts < MAX(r.attempt)",
        ),
    ),
    Invariant(
        "one_live_batch",
        "a job waits in at most one live batch, and only while submitting or submitted",
        (
            "SELECT 'job ' || r.job_id || ' waits in ' || COUNT(*) || ' live batches'"
            " FROM requests r JOIN batches b ON b.id = r.batch_id"
            " WHERE r.state = 'pending' AND b.state IN ('planned', 'submitted', 'ended')"
            " GROUP BY r.job_id HAVING COUNT(*) > 1",
            "SELECT 'job ' || j.id || ' is ' || j.state || ' but waits in live batch '"
            " || r.batch_id FROM jobs j JOIN requests r ON r.job_id = j.id"
            " JOIN batches b ON b.id = r.batch_id WHERE r.state = 'pending'"
            " AND b.state IN ('planned', 'submitted', 'ended')"
            " AND j.state NOT IN ('submitting', 'submitted')",
        ),
    ),
    Invariant(
        "written_once",
        "a document is written at most once per version and task",
        (
            "SELECT 'file ' || file_id || ', job ' || job_id || ': ' || uri || ' written '"
            " || COUNT(*) || ' times' FROM sidecars WHERE state = 'written'"
            " GROUP BY file_id, job_id, uri HAVING COUNT(*) > 1",
            "SELECT 'job ' || r.job_id || ' answered ' || COUNT(*) || ' times' FROM requests r"
            " WHERE r.state = 'succeeded' GROUP BY r.job_id HAVING COUNT(*) > 1 + (SELECT"
            " COUNT(*) FROM events e WHERE e.subject = 'job:' || r.job_id"
            " AND e.kind = 'job.reprocess')",
        ),
    ),
    Invariant(
        "documented_states",
        "every row is in a documented state",
        (
            *(_undocumented(table) for table in STATES),
            "SELECT 'job ' || j.id || ' is done without a succeeded request of its own'"
            " FROM jobs j LEFT JOIN requests r ON r.id = j.result_request_id"
            " WHERE j.state = 'done' AND (r.id IS NULL OR r.job_id != j.id"
            " OR r.state != 'succeeded')",
        ),
    ),
    Invariant(
        "no_wait_on_closed_batch",
        "no job waits on a batch that is closed",
        (
            "SELECT 'job ' || j.id || ' is ' || j.state || ' with no pending request in a"
            " live batch' FROM jobs j WHERE j.state IN ('submitting', 'submitted')"
            " AND NOT EXISTS (SELECT 1 FROM requests r JOIN batches b ON b.id = r.batch_id"
            " WHERE r.job_id = j.id AND r.state = 'pending'"
            " AND b.state IN ('planned', 'submitted', 'ended'))",
        ),
    ),
)


def check(conn: Connection, limit: int = EXAMPLES) -> list[Violation]:
    """Every invariant the ledger on ``conn`` breaks, each with up to ``limit`` examples."""
    broken = []
    for invariant in INVARIANTS:
        examples: list[str] = []
        for sql in invariant.queries:
            rows = conn.execute(f"{sql} LIMIT {int(limit)}").fetchall()
            examples.extend(str(row[0]) for row in rows)
        if examples:
            broken.append(Violation(invariant.name, invariant.statement, tuple(examples[:limit])))
    return broken
