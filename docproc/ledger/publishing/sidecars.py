"""The publishing stage's room: sidecars, recorded before and after they are written.

Sidecars are recorded ``writing`` (with the sha256 of the bytes about to be
written) before the write and ``written`` after it, so after a crash a file
at the target whose bytes match is known to be docproc's own. A sidecar
whose source is gone is ``removed`` (or ``kept``, when someone changed it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from docproc.ledger.connection import Ledger
from docproc.ledger.engine import Row
from docproc.ledger.publishing.retries import cleared
from docproc.models import Highlight


class SidecarLedger:
    """What the publishing stage reads (answered jobs) and records (its sidecars)."""

    def __init__(self, ledger: Ledger, *, clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.conn = ledger.conn
        self._clock = clock

    def clock(self) -> float:
        """Wall-clock seconds, the time base of ``sidecar_retries``."""
        return self._clock()

    def to_publish(self, task: str, limit: int, after_file_id: int = 0) -> list[Row]:
        """Live files (id above ``after_file_id``) whose current job is done and whose
        sidecars are not yet written (nor waiting for a later try), in file id order."""
        return list(
            self.conn.query(
                "SELECT f.id AS file_id, f.uri, f.path, r.uri AS root_uri, v.id AS version_id,"
                " v.sha256, j.id AS job_id, j.task, q.summary, q.highlights, q.dropped_highlights,"
                " q.model, q.custom_id, q.completed_at, q.input_tokens, q.output_tokens,"
                " q.cache_creation_input_tokens, q.cache_read_input_tokens, q.cost_usd,"
                " b.provider, b.provider_batch_id,"
                " EXISTS (SELECT 1 FROM sidecars s1 WHERE s1.file_id = f.id AND s1.job_id = j.id"
                "   AND s1.state = 'writing') AS interrupted"
                " FROM files f JOIN roots r ON r.id = f.root_id"
                " JOIN versions v ON v.id = f.version_id"
                " JOIN jobs j ON j.version_id = v.id AND j.task = ? AND j.state = 'done'"
                " JOIN requests q ON q.id = j.result_request_id"
                " JOIN batches b ON b.id = q.batch_id"
                " WHERE f.id > ? AND f.state = 'present' AND NOT EXISTS (SELECT 1 FROM sidecars s"
                "   WHERE s.file_id = f.id AND s.job_id = j.id"
                "   AND s.state IN ('written', 'conflict'))"
                " AND NOT EXISTS (SELECT 1 FROM sidecar_retries t WHERE t.file_id = f.id"
                "   AND t.job_id = j.id AND t.retry_at > ?)"
                " ORDER BY f.id LIMIT ?",
                [task, after_file_id, self._clock(), limit],
            )
        )

    def orphaned_sidecars(self, limit: int) -> list[Row]:
        """Sidecars written for files that have since been deleted."""
        return list(
            self.conn.query(
                "SELECT s.id, s.uri, s.sha256, s.file_id, r.uri AS root_uri FROM sidecars s"
                " JOIN files f ON f.id = s.file_id JOIN roots r ON r.id = f.root_id"
                " WHERE f.state = 'deleted' AND s.state = 'written' ORDER BY s.id LIMIT ?",
                [limit],
            )
        )

    def sidecar_removed(self, sidecar_id: int, file_id: int, *, kept: bool) -> None:
        """The source is gone: its sidecar was removed, or kept because someone changed it."""
        state = "kept" if kept else "removed"
        with self.ledger.transaction() as conn:
            conn.execute("UPDATE sidecars SET state = ? WHERE id = ?", (state, sidecar_id))
            self.ledger.event(conn, f"sidecar.{state}", f"file:{file_id}", sidecar_id=sidecar_id)

    def written_elsewhere(self, job_id: int, file_id: int) -> bool:
        """Whether this job's result was already written for another file (same bytes)."""
        row = self.conn.execute(
            "SELECT 1 FROM sidecars WHERE job_id = ? AND file_id != ? AND state = 'written'",
            (job_id, file_id),
        ).fetchone()
        return row is not None

    def source_etags(self, file_ids: Sequence[int]) -> dict[int, str]:
        """The ETag last listed for each of these files that is an S3 object."""
        found: dict[int, str] = {}
        for chunk in chunks(list(file_ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT file_id, etag FROM s3_objects WHERE file_id IN ({marks})",  # noqa: S608
                chunk,
            )
            found.update((int(file_id), str(etag)) for file_id, etag in rows)
        return found

    def sidecar_hashes(self, uri: str) -> set[str]:
        """sha256 of every sidecar docproc wrote (or tried to write) at ``uri``."""
        rows = self.conn.execute(
            "SELECT sha256 FROM sidecars WHERE uri = ? AND sha256 IS NOT NULL"
            " AND state IN ('writing', 'written', 'superseded', 'error')",
            (uri,),
        )
        return {sha for (sha,) in rows if sha}

    def sidecars_intent(
        self, intents: Sequence[tuple[int, int, Sequence[tuple[str, str]]]]
    ) -> None:
        """Before writing: for each (file, job), the (uri, sha256) of the sidecars to write."""
        now = self.ledger.now()
        rows = [
            (file_id, job_id, uri, sha, now)
            for file_id, job_id, targets in intents
            for uri, sha in targets
        ]
        with self.ledger.transaction() as conn:
            conn.executemany(
                "INSERT INTO sidecars (file_id, job_id, uri, sha256, state, created_at)"
                " VALUES (?, ?, ?, ?, 'writing', ?)",
                rows,
            )

    def sidecars_written(self, written: Sequence[tuple[int, int, bool]]) -> None:
        """After the writes: each (file, job, reused) has its sidecars in place."""
        with self.ledger.transaction() as conn:
            for file_id, job_id, reused in written:
                # The newest intent per target: older ones (of a try that crashed or
                # failed) stay ``writing``, so each target is written once (written_once).
                conn.execute(
                    "UPDATE sidecars SET state = 'written', written_at = ? WHERE id IN"
                    " (SELECT MAX(id) FROM sidecars WHERE file_id = ? AND job_id = ?"
                    " AND state = 'writing' GROUP BY uri)",
                    (self.ledger.now(), file_id, job_id),
                )
                cleared(conn, file_id, job_id)
                self.ledger.event(conn, "sidecars.written", f"file:{file_id}", job_id=job_id,
                                  reused=reused)  # fmt: skip

    def sidecar_problem(self, file_id: int, job_id: int, uri: str, state: str, reason: str) -> None:
        """A sidecar could not be written: ``state`` is ``conflict`` (someone else's file: a
        person resolves it) or ``error``. Intents stay: whatever was written is docproc's.
        (A write that failed for a storage reason waits in ``sidecar_retries`` instead.)"""
        with self.ledger.transaction() as conn:
            cleared(conn, file_id, job_id)
            conn.execute(
                "INSERT INTO sidecars (file_id, job_id, uri, state, detail, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (file_id, job_id, uri, state, reason, self.ledger.now()),
            )
            self.ledger.event(conn, f"sidecars.{state}", f"file:{file_id}", job_id=job_id,
                              reason=reason)  # fmt: skip


def stored_highlights(text: str | None) -> tuple[Highlight, ...]:
    """Highlights as stored in a request row."""
    return tuple(Highlight(**item) for item in json.loads(text)) if text else ()


def chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
