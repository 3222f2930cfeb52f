"""A chunk of results in a few statements: one lookup, then the common path written in bulk.

Most results of a batch take one path: succeeded, answering the pending
request of a job still waiting for it. Recording each alone took four
statements (lookup, request, job, event), each a round trip on PostgreSQL.
:func:`look_up` reads the rows of a whole chunk at once; :func:`common`
picks the results on that path (one per request and per job in the chunk,
so no result's outcome depends on another's); :func:`write_done` records a
run of them with a few statements (:mod:`docproc.ledger.bulk`). Every other
result takes the per-result path of
:class:`~docproc.ledger.dispatch.results.ResultLedger`, in the chunk's order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from docproc.costs import PriceTable
from docproc.ledger.bulk import select_in, update_by_id
from docproc.ledger.connection import Ledger
from docproc.ledger.dispatch.jobs import ROUND
from docproc.ledger.engine import Connection
from docproc.models import Highlight, OutputProblem, ProviderResult, ResultKind

OUTPUT_PROBLEMS = frozenset(problem.value for problem in OutputProblem)
WAITING = ("submitted", "submitting")  # job states in which a result is awaited


@dataclass(frozen=True, slots=True)
class Found:
    """What the ledger holds for one result's custom_id."""

    request_id: int
    request_state: str
    job_id: int
    job_state: str
    attempts: int  # in the job's current round
    tier: str  # the batch's: "live" is priced without the batch discount


def look_up(conn: Connection, results: Sequence[ProviderResult]) -> dict[str, Found]:
    """The request, job and batch of each result (by custom_id) that the ledger knows."""
    rows = select_in(
        conn,
        f"SELECT r.custom_id, r.id, r.state, j.id, j.state, {ROUND}, b.tier"  # noqa: S608
        " FROM requests r JOIN jobs j ON j.id = r.job_id JOIN batches b ON b.id = r.batch_id"
        " WHERE r.custom_id IN ({keys})",
        sorted({result.custom_id for result in results}),
    )
    return {row[0]: Found(*row[1:]) for row in rows}


def common(results: Sequence[ProviderResult], found: dict[str, Found]) -> set[int]:
    """Indexes of the results on the common path: succeeded with a usable answer, for a
    pending request of a waiting job, and the only result in the chunk for that request
    and for that job."""
    per_id = Counter(result.custom_id for result in results)
    per_job = Counter(found[r.custom_id].job_id for r in results if r.custom_id in found)
    picked = set()
    for index, result in enumerate(results):
        row = found.get(result.custom_id)
        if (
            row is not None
            and result.kind is ResultKind.SUCCEEDED
            and result.error_type not in OUTPUT_PROBLEMS
            and row.request_state == "pending"
            and row.job_state in WAITING
            and per_id[result.custom_id] == 1
            and per_job[row.job_id] == 1
        ):
            picked.add(index)
    return picked


def write_done(
    ledger: Ledger,
    conn: Connection,
    prices: PriceTable,
    run: Sequence[tuple[ProviderResult, int, Found]],
) -> None:
    """Record a run of common-path results (each with its dropped-highlight count): each
    request answered, each job ``done``, one ``job.done`` event each, in the run's order."""
    update_by_id(conn, "requests", REQUEST_COLUMNS,
                 [(*request_values(ledger, prices, r, d, live=f.tier == "live"), f.request_id)
                  for r, d, f in run])  # fmt: skip
    update_by_id(conn, "jobs", (("result_request_id", "int"), ("updated_at", "text")),
                 [(f.request_id, ledger.now(), f.job_id) for _, _, f in run],
                 also="state = 'done', error = NULL, ")  # fmt: skip
    ledger.events(conn, [
        ("job.done", f"job:{f.job_id}", {"custom_id": r.custom_id, "dropped_highlights": d})
        for r, d, f in run
    ])  # fmt: skip


REQUEST_COLUMNS = (  # what recording a result sets in its request, with the SQL types
    ("state", "text"), ("summary", "text"), ("highlights", "text"),
    ("dropped_highlights", "int"), ("model", "text"), ("stop_reason", "text"),
    ("input_tokens", "int"), ("output_tokens", "int"), ("cache_creation_input_tokens", "int"),
    ("cache_read_input_tokens", "int"), ("error_type", "text"), ("error", "text"),
    ("completed_at", "text"), ("cost_usd", "real"),
)  # fmt: skip
UPDATE_REQUEST = (  # one request: the values of request_values, then the request's id
    f"UPDATE requests SET {', '.join(f'{name} = ?' for name, _ in REQUEST_COLUMNS)}"  # noqa: S608
    " WHERE id = ?"
)


def request_values(
    ledger: Ledger, prices: PriceTable, result: ProviderResult, dropped: int, *, live: bool
) -> tuple[Any, ...]:
    """The values of :data:`REQUEST_COLUMNS` that record ``result`` in its request."""
    usage = result.usage
    cost = prices.cost(result.model, usage, batch=not live) if result.model else None
    return (
        result.kind.value, result.summary or None,
        highlights_json(result.highlights) if result.highlights else None,
        dropped, result.model or None, result.stop_reason or None,
        usage.input_tokens, usage.output_tokens, usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens, result.error_type or None,
        result.error_message or None, ledger.now(), cost,
    )  # fmt: skip


def highlights_json(highlights: Sequence[Highlight]) -> str:
    """Highlights as stored in a request row (what ``asdict`` gives, at a quarter of its cost:
    measured, it was 40% of applying a result)."""
    return json.dumps(
        [{"quote": h.quote, "why": h.why, "start": h.start, "end": h.end} for h in highlights]
    )
