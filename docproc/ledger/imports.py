"""Results recorded from sidecars instead of a provider: a ledger rebuilt or adopting.

A ledger that lost its history (a new state directory, a lost disk) meets
sidecars docproc wrote before. Those still untouched carry everything a
request row holds (:class:`~docproc.models.ImportedResult`), so they are
recorded as done work: the task (by fingerprint), the batch (by the
provider's id, state ``imported``), the request (by custom_id, with its
usage and cost), the job (``done``) and the sidecars (``written``). Nothing
is sent again for them, and ``docproc ledger costs`` counts what they cost.

A custom_id already in the ledger for another version is never taken over:
that sidecar is left to the normal path (a new request; its file stays).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from docproc.ledger.connection import Ledger
from docproc.ledger.engine import Connection, inserted_id
from docproc.ledger.intake import FileLedger
from docproc.ledger.uris import file_uri
from docproc.models import ImportedResult, custom_id_attempt


@dataclass(frozen=True, slots=True)
class Unclaimed:
    """A version no job was ever made for, and its live files."""

    version_id: int
    sha256: str
    files: list[tuple[int, str, int, str]]  # (file id, file URI, root id, root URI)


@dataclass(frozen=True, slots=True)
class Adoption:
    """One file's sidecars to record: the file, the bytes it holds, what they say."""

    file_id: int
    version_id: int
    result: ImportedResult
    sidecars: Sequence[tuple[str, str]]  # (uri, sha256) of each untouched sidecar file


class ImportLedger:
    """The adopt stage's part: results read from sidecars, recorded as done work."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.conn = ledger.conn
        self.files = FileLedger(ledger)  # roots, as the intake stage records them

    def unclaimed(
        self, root_ids: Sequence[int], limit: int = 1000, *, after: int = 0
    ) -> list[Unclaimed]:
        """Up to ``limit`` extracted versions (ids above ``after``, in order) no job has
        ever been made for, each with its live files under ``root_ids``: where a
        sidecar of a lost ledger may be waiting."""
        if not root_ids:
            return []
        marks = ",".join("?" * len(root_ids))
        under = f"f.state = 'present' AND f.root_id IN ({marks})"
        sql = (
            "SELECT v.id, v.sha256, f.id, f.uri, r.id, r.uri FROM versions v"  # noqa: S608
            f" JOIN files f ON f.version_id = v.id AND {under}"
            " JOIN roots r ON r.id = f.root_id"
            " WHERE v.id IN (SELECT v.id FROM versions v WHERE v.state = 'extracted'"
            "   AND v.id > ? AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.version_id = v.id)"
            f"   AND EXISTS (SELECT 1 FROM files f WHERE f.version_id = v.id AND {under})"
            "   ORDER BY v.id LIMIT ?)"
            " ORDER BY v.id, f.id"
        )
        found: dict[int, Unclaimed] = {}
        args = (*root_ids, after, *root_ids, limit)
        for version_id, sha256, file_id, uri, root_id, root_uri in self.conn.execute(sql, args):
            entry = found.setdefault(version_id, Unclaimed(version_id, sha256, []))
            entry.files.append((file_id, uri, root_id, root_uri))
        return list(found.values())

    def adopt(self, adoptions: Sequence[Adoption], *, how: str = "adopted") -> int:
        """Record each file's result as done, in one transaction; returns how many were."""
        done = 0
        with self.ledger.transaction() as conn:
            for item in adoptions:
                done += self._adopt(conn, item, how)
        return done

    def known_request(self, custom_id: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM requests WHERE custom_id = ?", (custom_id,))
        return row.fetchone() is not None

    def record_source(
        self, root_id: int, path: Path, sha256: str, *, size: int, mtime_ns: int, present: bool
    ) -> tuple[int, int]:
        """The file at ``path`` and the version ``sha256`` (created if new), for an import.

        A file the ledger does not know is recorded holding those bytes (deleted
        when ``present`` is false); a known file keeps its state and content.
        Returns (file id, version id).
        """
        uri, now = file_uri(path), self.ledger.now()
        with self.ledger.transaction() as conn:
            version_id = self._version(conn, sha256, size)
            row = conn.execute("SELECT id FROM files WHERE uri = ?", (uri,)).fetchone()
            if row is not None:
                return int(row[0]), version_id
            file_id = inserted_id(conn.execute(
                "INSERT INTO files (root_id, uri, path, version_id, size, mtime_ns, state,"
                " first_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (root_id, uri, str(path), version_id, size, mtime_ns,
                 "present" if present else "deleted", now, now),
            ))  # fmt: skip
            self.ledger.event(conn, "file.imported", f"file:{file_id}", path=str(path),
                              sha256=sha256, present=present)  # fmt: skip
            return file_id, version_id

    def _version(self, conn: Connection, sha256: str, size: int) -> int:
        row = conn.execute("SELECT id FROM versions WHERE sha256 = ?", (sha256,)).fetchone()
        if row is not None:
            return int(row[0])
        version_id = inserted_id(
            conn.execute(
                "INSERT INTO versions (sha256, size, created_at) VALUES (?, ?, ?) RETURNING id",
                (sha256, size, self.ledger.now()),
            )
        )
        self.ledger.event(conn, "version.recorded", f"version:{version_id}", sha256=sha256,
                          size=size)  # fmt: skip
        return version_id

    # -- one adoption -------------------------------------------------------

    def _adopt(self, conn: Connection, item: Adoption, how: str) -> int:
        result = item.result
        known = conn.execute(
            "SELECT r.job_id, j.version_id FROM requests r JOIN jobs j ON j.id = r.job_id"
            " WHERE r.custom_id = ?",
            (result.custom_id,),
        ).fetchone()
        if known is not None and known[1] != item.version_id:
            return 0  # another version's request: never taken over
        self._task(conn, result)
        job_id = known[0] if known is not None else self._job(conn, item.version_id, result)
        if job_id is None:
            return 0  # the version has a job under this task already: the ledger knows better
        now = self.ledger.now()
        conn.executemany(
            "INSERT INTO sidecars (file_id, job_id, uri, sha256, state, detail, created_at,"
            " written_at) VALUES (?, ?, ?, ?, 'written', ?, ?, ?)",
            [(item.file_id, job_id, uri, sha, how, now, now) for uri, sha in item.sidecars],
        )
        self.ledger.event(conn, f"sidecars.{how}", f"file:{item.file_id}", job_id=job_id,
                          custom_id=result.custom_id, task=result.task,
                          sidecars=len(item.sidecars))  # fmt: skip
        return 1

    def _task(self, conn: Connection, result: ImportedResult) -> None:
        spec = {"imported": True, "provider": result.provider, "model": result.model}
        conn.execute(
            "INSERT INTO tasks (fingerprint, spec, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (fingerprint) DO NOTHING",
            (result.task, json.dumps(spec, sort_keys=True), self.ledger.now()),
        )

    def _job(self, conn: Connection, version_id: int, result: ImportedResult) -> int | None:
        """A done job for the version and task, with the imported request as its result."""
        exists = conn.execute(
            "SELECT 1 FROM jobs WHERE version_id = ? AND task = ?", (version_id, result.task)
        ).fetchone()
        if exists:
            return None
        attempt, now = custom_id_attempt(result.custom_id), self.ledger.now()
        job_id = inserted_id(
            conn.execute(
                "INSERT INTO jobs (version_id, task, state, created_at, updated_at, attempts)"
                " VALUES (?, ?, 'done', ?, ?, ?) RETURNING id",
                (version_id, result.task, now, now, attempt),
            )
        )
        request_id = self._request(conn, job_id, attempt, result)
        conn.execute("UPDATE jobs SET result_request_id = ? WHERE id = ?", (request_id, job_id))
        self.ledger.event(conn, "job.imported", f"job:{job_id}", version_id=version_id,
                          custom_id=result.custom_id, cost_usd=result.cost_usd)  # fmt: skip
        return job_id

    def _request(self, conn: Connection, job_id: int, attempt: int, result: ImportedResult) -> int:
        usage = result.usage
        highlights = [asdict(h) for h in result.highlights]
        return inserted_id(conn.execute(
            "INSERT INTO requests (batch_id, job_id, custom_id, attempt, state, summary,"
            " highlights, dropped_highlights, model, input_tokens, output_tokens,"
            " cache_creation_input_tokens, cache_read_input_tokens, completed_at, cost_usd)"
            " VALUES (?, ?, ?, ?, 'succeeded', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                self._batch(conn, result), job_id, result.custom_id, attempt,
                result.summary or None, json.dumps(highlights) if highlights else None,
                result.dropped_highlights, result.model or None, usage.input_tokens,
                usage.output_tokens, usage.cache_creation_input_tokens,
                usage.cache_read_input_tokens, result.completed_at, result.cost_usd,
            ),
        ))  # fmt: skip

    def _batch(self, conn: Connection, result: ImportedResult) -> int:
        """The provider's batch (recorded ``imported`` the first time one of its
        results is), one more request counted in it."""
        row = None
        if result.batch_id:
            row = conn.execute(
                "SELECT id FROM batches WHERE provider_batch_id = ?", (result.batch_id,)
            ).fetchone()
        if row is not None:
            conn.execute(
                "UPDATE batches SET request_count = request_count + 1 WHERE id = ?"
                " AND state = 'imported'",
                (row[0],),
            )
            return int(row[0])
        batch_id = inserted_id(conn.execute(
            "INSERT INTO batches (provider, provider_batch_id, state, request_count,"
            " request_bytes, created_at, model, estimated_cost_usd, applied_at)"
            " VALUES (?, ?, 'imported', 1, 0, ?, ?, 0, ?) RETURNING id",
            (result.provider, result.batch_id or None, result.completed_at,
             result.model or None, self.ledger.now()),
        ))  # fmt: skip
        self.ledger.event(conn, "batch.imported", f"batch:{batch_id}",
                          provider_batch_id=result.batch_id)  # fmt: skip
        return batch_id
