"""The intake stage's room for what extraction made of each version.

A version is ``pending`` until extracted; ``extracted`` (with the text's
sha256, size and how long it took) or ``failed``: transient (retried after a
backoff), storage (docproc's own disk: retried, not counted), or permanent
(quarantined with the reason, until a reader for it exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import Any

from docproc.errors import FailureKind, LedgerError
from docproc.ledger.connection import Ledger
from docproc.ledger.engine import Connection
from docproc.ledger.intake.extraction_rows import record_batch
from docproc.ledger.uris import uri_path
from docproc.models import ExtractFailure, Extraction, ExtractOutcome, ExtractTask

STORAGE_RETRY = timedelta(seconds=30)  # text that could not be stored is extracted again after


class ExtractionLedger:
    """Extraction outcomes of versions, and which versions are due for (re)extraction."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.conn = ledger.conn

    def record_extraction(self, outcome: ExtractOutcome, *, max_attempts: int = 5) -> None:
        """Record what extraction of one version produced."""
        self.record_extractions([outcome], max_attempts=max_attempts)

    def record_extractions(
        self, outcomes: Sequence[ExtractOutcome], *, max_attempts: int = 5
    ) -> None:
        """Record what extraction produced, for several versions in one transaction."""
        with self.ledger.transaction() as conn:
            alone = partial(self._record_extraction, conn, max_attempts=max_attempts)
            record_batch(self.ledger, conn, outcomes, alone)  # common ones in bulk

    def _record_extraction(
        self, conn: Connection, outcome: ExtractOutcome, max_attempts: int
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
        conn: Connection,
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
            retry_at = self.ledger.later(_backoff(attempts))
        elif kind is FailureKind.STORAGE:  # docproc's disk, not the document: not counted
            attempts -= 1
            retry_at = self.ledger.later(STORAGE_RETRY)
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
        self.ledger.event(
            conn, "extraction.failed", f"version:{version_id}",
            kind=kind.value, reason=reason, extractor=failure.extractor, retry_at=retry_at,
        )  # fmt: skip

    def _extracted(
        self, conn: Connection, version_id: int, attempts: int, done: Extraction
    ) -> None:
        conn.execute(
            "UPDATE versions SET state = 'extracted', extractor = ?, text_sha256 = ?, chars = ?,"
            " truncated_from = ?, failure_kind = NULL, error = NULL, retry_at = NULL,"
            " attempts = ?, extracted_at = ?, extract_seconds = ?, json_bytes = ?,"
            " ocr_pages = ? WHERE id = ?",
            (
                done.extractor, done.text_sha256, done.chars, done.truncated_from,
                attempts, self.ledger.now(), done.seconds, done.json_bytes, done.ocr_pages,
                version_id,
            ),
        )  # fmt: skip
        detail: dict[str, Any] = {"ocr_pages": done.ocr_pages} if done.ocr_pages else {}
        self.ledger.event(
            conn, "extraction.succeeded", f"version:{version_id}",
            extractor=done.extractor, chars=done.chars, text_sha256=done.text_sha256,
            truncated_from=done.truncated_from, **detail,
        )  # fmt: skip

    def requeue_failed(self, patterns: Sequence[str]) -> int:
        """Set versions that failed for good with a reason LIKE one of ``patterns``
        (ignoring the case of ASCII letters) back to pending (a reader for them
        exists now); returns how many."""
        if not patterns:
            return 0
        # LOWER on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
        where = " OR ".join("LOWER(error) LIKE LOWER(?)" for _ in patterns)
        with self.ledger.transaction() as conn:
            # Only "?" placeholders are joined into the query; patterns are parameters.
            query = f"{_FAILED_FOR_GOOD} AND ({where})"
            rows = conn.execute(query, tuple(patterns)).fetchall()
            for version_id, error in rows:
                conn.execute(
                    "UPDATE versions SET state = 'pending', failure_kind = NULL, error = NULL,"
                    " retry_at = NULL WHERE id = ?",
                    (version_id,),
                )
                self.ledger.event(conn, "extraction.requeued", f"version:{version_id}", was=error)
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
        uri = self.conn.dialect.bytewise("f.uri")
        rows = self.conn.execute(
            f"SELECT v.sha256, MIN({uri}) FROM versions v JOIN files f ON f.version_id = v.id"  # noqa: S608
            " WHERE f.state = 'present' AND (v.state = 'pending' OR (v.state = 'failed'"
            " AND v.failure_kind IN ('transient', 'storage') AND v.retry_at <= ?))"
            " GROUP BY v.id ORDER BY v.id",
            (self.ledger.now(),),
        )
        return [(str(sha), str(uri)) for sha, uri in rows]

    def settled_versions(self, shas: Sequence[str]) -> set[str]:
        """Which of these versions need no more extraction (extracted, or failed for good)."""
        marks = ",".join("?" * len(shas))
        rows = self.conn.execute(
            f"SELECT sha256 FROM versions WHERE sha256 IN ({marks}) AND"  # noqa: S608
            " (state = 'extracted' OR (state = 'failed' AND failure_kind = 'permanent'))",
            list(shas),
        )
        return {str(sha) for (sha,) in rows}


_FAILED_FOR_GOOD = (
    "SELECT id, error FROM versions WHERE state = 'failed' AND failure_kind = 'permanent'"
)


def _backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min ... capped at one hour."""
    return timedelta(seconds=min(3600, 30 * 2 ** (attempts - 1)))
