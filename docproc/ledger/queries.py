"""The ledger read for people: what the CLI, ``docproc status`` and ``/metrics`` show.

Read-only: nothing here writes, so a reader's connection (``readonly``) is
enough. The writing parts are :mod:`~docproc.ledger.intake`,
:mod:`~docproc.ledger.dispatch` and :mod:`~docproc.ledger.publishing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from docproc.ledger.connection import Ledger
from docproc.ledger.engine import Row
from docproc.ledger.events import Verification, verify
from docproc.ledger.invariants import Violation, check
from docproc.ledger.uris import file_uri

# The states of the file_status view, in the order a file goes through them.
FILE_STATES = (
    "pending", "extracted", "queued", "submitting", "submitted", "answered", "written",
    "retrying", "failed", "conflict", "deleted",
)  # fmt: skip
COST_GROUPS = ("day", "model", "root", "batch_id", "tier")
LIVE_BATCHES = "('planned', 'submitted', 'ended')"
# Sidecar retries still live: the file is there, the job is its current one (as in
# docproc.ledger.publishing.retries, which this part may not import).
_LIVE_RETRIES = (
    " FROM sidecar_retries t JOIN files f ON f.id = t.file_id AND f.state = 'present'"
    " JOIN jobs j ON j.id = t.job_id AND j.version_id = f.version_id"
)


@dataclass(frozen=True, slots=True)
class Waiting:
    """Files waiting for the same reason (for status lines and metrics)."""

    kind: str
    reason: str
    files: int


class Queries:
    """Read-only queries over files, events, batches, costs and work in progress."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.conn = ledger.conn

    # -- files and events ---------------------------------------------------

    def files(self, state: str | None = None, roots: list[str] | None = None) -> list[Row]:
        """Files as people see them (the ``file_status`` view), by state and root URI."""
        clauses, args = [], []
        if state:
            clauses, args = ["state = ?"], [state]
        if roots:
            clauses.append("root IN (" + ",".join("?" * len(roots)) + ")")
            args.extend(roots)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        path = self.conn.dialect.bytewise("path")
        sql = f"SELECT * FROM file_status{where} ORDER BY {path}"  # noqa: S608 (placeholders only)
        return self.conn.query(sql, args)

    def find_file(self, ref: str) -> Row | None:
        """A file by id, by path (absolute or relative to the working directory) or URI."""
        if ref.isdigit():
            rows = self.conn.query("SELECT * FROM file_status WHERE id = ?", [int(ref)])
        elif ref.startswith("s3://"):  # as shown (key decoded) or as stored (encoded)
            rows = self.conn.query(
                "SELECT * FROM file_status WHERE uri = ? OR path = ? ORDER BY id LIMIT 1",
                [ref, ref],
            )
        else:
            uri = ref if ref.startswith("file://") else file_uri(Path(ref).absolute())
            rows = self.conn.query("SELECT * FROM file_status WHERE uri = ?", [uri])
        return next(iter(rows), None)

    def text_sha256(self, file_id: int) -> str | None:
        row = self.conn.execute(
            "SELECT v.text_sha256 FROM files f JOIN versions v ON v.id = f.version_id"
            " WHERE f.id = ?",
            (file_id,),
        ).fetchone()
        return None if row is None else row[0]

    def events(self, subjects: list[str] | None = None, limit: int | None = None) -> list[Row]:
        sql, args = "SELECT * FROM events", list(subjects or [])
        if subjects:
            sql += " WHERE subject IN (" + ",".join("?" * len(subjects)) + ")"
        sql += " ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return list(reversed(self.conn.query(sql, args)))

    def file_subjects(self, file_id: int) -> list[str]:
        """Event subjects that concern one file: itself and every version it held."""
        sha = self.conn.dialect.json_text("detail", "sha256")
        rows = self.conn.execute(
            f"SELECT DISTINCT {sha} FROM events"  # noqa: S608 - an expression of the dialect
            f" WHERE subject = ? AND {sha} IS NOT NULL",
            (f"file:{file_id}",),
        )
        shas = [r[0] for r in rows]
        marks = ",".join("?" * len(shas))
        sql = f"SELECT id FROM versions WHERE sha256 IN ({marks})"  # noqa: S608 (placeholders only)
        ids = self.conn.execute(sql, shas)
        return [f"file:{file_id}", *(f"version:{r[0]}" for r in ids)]

    def state_counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT state, COUNT(*) FROM file_status GROUP BY state")
        return dict(rows)

    def roots(self) -> list[Row]:
        return self.conn.query("SELECT * FROM roots ORDER BY id")

    def verify(self) -> Verification:
        """Walk the event chain and report the first event that does not fit."""
        return verify(self.conn)

    def violations(self) -> list[Violation]:
        """The invariants the ledger's state breaks (see :mod:`docproc.ledger.invariants`)."""
        return check(self.conn)

    # -- batches, costs and work ----------------------------------------------

    def batches(self, limit: int | None = None) -> list[Row]:
        """Batches, newest first, with counts, estimated and billed cost."""
        sql = "SELECT * FROM batch_status ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self.conn.query(sql)

    def costs(self, by: str) -> list[Row]:
        """Requests, tokens and dollars grouped by ``day``, ``model``, ``root``, ``batch_id``
        or ``tier``; each group is split by tier (``batch`` or ``live`` price).

        Raises:
            ValueError: ``by`` is not one of those.
        """
        if by not in COST_GROUPS:
            raise ValueError(f"cannot group costs by {by!r} (known: {', '.join(COST_GROUPS)})")
        keys = by if by == "tier" else f"{by}, tier"
        cost = self.conn.dialect.round_to("SUM(cost_usd)", 6)
        return list(
            self.conn.query(
                f"SELECT {keys}, COUNT(*) AS requests, SUM(input_tokens) AS input_tokens,"  # noqa: S608
                " SUM(output_tokens) AS output_tokens,"
                " SUM(cache_creation_input_tokens) AS cache_write_tokens,"
                " SUM(cache_read_input_tokens) AS cache_read_tokens,"
                f" {cost} AS cost_usd FROM request_costs GROUP BY {keys}"
                f" ORDER BY {keys}"
            )
        )

    def find_batch(self, ident: str) -> Row | None:
        """A batch by ledger id or provider id."""
        column = "id" if ident.isdigit() else "provider_batch_id"
        rows = self.conn.query(f"SELECT * FROM batches WHERE {column} = ?", [ident])  # noqa: S608
        return rows[0] if rows else None

    def batches_in_flight(self) -> list[Row]:
        """Batches planned, submitted or ended (results not applied yet), oldest first."""
        return self.conn.query(
            f"SELECT * FROM batch_status WHERE state IN {LIVE_BATCHES} ORDER BY id"  # noqa: S608
        )

    def counts(self) -> dict[str, int]:
        """Jobs per state and batches in flight, for status lines."""
        rows = self.conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        jobs: dict[str, int] = dict(rows)
        in_flight = self.conn.execute(
            "SELECT COUNT(*) FROM batches WHERE state IN ('planned', 'submitted', 'ended')"
        ).fetchone()[0]
        return {**{f"jobs_{k}": v for k, v in jobs.items()}, "batches_in_flight": in_flight}

    def job_states(self, task: str) -> dict[str, int]:
        """Jobs of ``task`` per state (an index-only count)."""
        rows = self.conn.execute("SELECT state, COUNT(*) FROM jobs WHERE task = ? GROUP BY state",
                                 (task,))  # fmt: skip
        return dict(rows)

    def written_since(self, since: str, after_event: int) -> tuple[int, int]:
        """Sidecar writes recorded at or after ``since`` (ISO UTC) in events after ``after_event``.

        Returns the count and the last event id looked at: passing it back
        next time counts only new events, so a running total costs a short
        range scan instead of a scan of the whole log.
        """
        last = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
        count = self.conn.execute(
            "SELECT COUNT(*) FROM events WHERE id > ? AND id <= ? AND kind = 'sidecars.written'"
            " AND at >= ?",
            (after_event, last, since),
        ).fetchone()[0]
        return int(count), int(last)

    # Attempts made in the job's current round (``docproc ledger retry`` starts a new

    def sidecars_waiting(self) -> list[Waiting]:
        """Files whose sidecars wait for another try, grouped by kind and reason, the most
        numerous first."""
        rows = self.conn.execute(
            "SELECT t.kind, t.reason, COUNT(*)" + _LIVE_RETRIES + " GROUP BY t.kind, t.reason"
            " ORDER BY COUNT(*) DESC, t.reason"
        )
        return [Waiting(kind, reason, int(count)) for kind, reason, count in rows]
