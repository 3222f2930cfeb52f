"""A batch of extraction outcomes in a few statements: the common path written in bulk.

Recording one extracted version took three statements (its lookup, its
update, its event), each a round trip on PostgreSQL. :func:`record_batch`
looks the whole batch's versions up at once and writes runs of successful
extractions (each the only outcome for its version in the batch) with one
update and one append of their events; every other outcome (a failure, a
version seen twice, one the ledger does not know) goes through the
per-outcome path it is handed, in the batch's order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from docproc.ledger.bulk import select_in, update_by_id
from docproc.ledger.connection import Ledger
from docproc.ledger.engine import Connection
from docproc.models import Extraction, ExtractOutcome

Run = list[tuple[Extraction, int, int]]  # the extraction, its version's id, attempts so far

_COLUMNS = (
    ("extractor", "text"), ("text_sha256", "text"), ("chars", "int"), ("truncated_from", "int"),
    ("attempts", "int"), ("extracted_at", "text"), ("extract_seconds", "real"),
    ("json_bytes", "int"), ("ocr_pages", "int"),
)  # fmt: skip
_CLEARED = "state = 'extracted', failure_kind = NULL, error = NULL, retry_at = NULL, "


def record_batch(
    ledger: Ledger,
    conn: Connection,
    outcomes: Sequence[ExtractOutcome],
    alone: Callable[[ExtractOutcome], None],
) -> None:
    """Record ``outcomes`` in their order: common-path runs in bulk, the rest by ``alone``."""
    found = {
        sha: (int(version_id), int(attempts))
        for sha, version_id, attempts in select_in(
            conn, "SELECT sha256, id, attempts FROM versions WHERE sha256 IN ({keys})",
            sorted({outcome.sha256 for outcome in outcomes}),
        )
    }  # fmt: skip
    per_sha = Counter(outcome.sha256 for outcome in outcomes)
    run: Run = []
    for outcome in outcomes:
        if (
            isinstance(outcome, Extraction)
            and outcome.sha256 in found
            and per_sha[outcome.sha256] == 1
        ):
            run.append((outcome, *found[outcome.sha256]))
            continue
        _write(ledger, conn, run)
        run = []
        alone(outcome)
    _write(ledger, conn, run)


def _write(ledger: Ledger, conn: Connection, run: Run) -> None:
    """Each version of ``run`` extracted, with its ``extraction.succeeded`` event."""
    if not run:
        return
    update_by_id(conn, "versions", _COLUMNS,
                 [(done.extractor, done.text_sha256, done.chars, done.truncated_from,
                   attempts + 1, ledger.now(), done.seconds, done.json_bytes, done.ocr_pages,
                   version_id)
                  for done, version_id, attempts in run],
                 also=_CLEARED)  # fmt: skip
    ledger.events(conn, [("extraction.succeeded", f"version:{version_id}", _detail(done))
                         for done, version_id, _ in run])  # fmt: skip


def _detail(done: Extraction) -> dict[str, Any]:
    detail: dict[str, Any] = {"extractor": done.extractor, "chars": done.chars,
                              "text_sha256": done.text_sha256,
                              "truncated_from": done.truncated_from}  # fmt: skip
    if done.ocr_pages:
        detail["ocr_pages"] = done.ocr_pages
    return detail
