"""The intake stage's room: roots, files (paths and S3 objects) and the versions they hold.

A *root* is a watched place (a folder, an S3 prefix); a *file* is a location
under it (a ``file://`` URI or an ``s3://`` one); a *version* is a content,
by sha256, that files hold. Files are never forgotten: a deleted one keeps
its history, and one that can never be read is recorded as a problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from docproc.ledger.connection import Ledger
from docproc.ledger.engine import inserted_id
from docproc.ledger.intake.version_rows import record_batch
from docproc.ledger.uris import display_location, file_uri, location_uri, uri_path
from docproc.models import Location, ObjectState


@dataclass(frozen=True, slots=True)
class Seen:
    """A stable file and the sha256 of its bytes, about to be recorded."""

    root_id: int
    path: Path
    size: int
    mtime_ns: int
    sha256: str
    uri: str = ""  # a remote object's identity; ``path`` is then a local copy of its bytes
    etag: str = ""


class FileLedger:
    """Roots, files and versions, as the intake stage (and a scan) record them."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.conn = ledger.conn

    # -- roots ------------------------------------------------------------

    def ensure_root(self, uri: str, *, kind: str, mode: str) -> int:
        """Return the id of the root at ``uri``, recording it (or its new mode)."""
        with self.ledger.transaction() as conn:
            row = conn.execute("SELECT id, mode FROM roots WHERE uri = ?", (uri,)).fetchone()
            if row is None:
                root_id = inserted_id(
                    conn.execute(
                        "INSERT INTO roots (uri, kind, mode, added_at) VALUES (?, ?, ?, ?)"
                        " RETURNING id",
                        (uri, kind, mode, self.ledger.now()),
                    )
                )
                self.ledger.event(conn, "root.added", f"root:{root_id}", uri=uri, mode=mode)
                return root_id
            if row[1] != mode:
                conn.execute("UPDATE roots SET mode = ? WHERE id = ?", (mode, row[0]))
                self.ledger.event(conn, "root.mode", f"root:{row[0]}", mode=mode, was=row[1])
            return int(row[0])

    def root_scanned(self, root_id: int) -> None:
        with self.ledger.transaction() as conn:
            conn.execute(
                "UPDATE roots SET last_scan_at = ? WHERE id = ?", (self.ledger.now(), root_id)
            )

    def known_files(self, root_id: int) -> dict[Path, tuple[int, int]]:
        """Live files of a root with the size and mtime the ledger last saw."""
        rows = self.conn.execute(
            "SELECT uri, size, mtime_ns FROM files"
            " WHERE root_id = ? AND state = 'present' AND version_id IS NOT NULL",
            (root_id,),
        )
        return {uri_path(uri): (size, mtime) for uri, size, mtime in rows}

    def known_objects(self, root_id: int) -> dict[str, ObjectState]:
        """Live objects of an S3 root, by key, with the hints the ledger last saw."""
        rows = self.conn.execute(_OBJECTS_SQL + " WHERE f.root_id = ?", (root_id,))
        return {key: ObjectState(etag, size, mtime, bool(settled))
                for key, etag, size, mtime, settled in rows}  # fmt: skip

    def known_object(self, root_id: int, key: str) -> ObjectState | None:
        """One live object's hints, if the ledger has it."""
        row = self.conn.execute(
            _OBJECTS_SQL + " WHERE f.root_id = ? AND o.key = ?", (root_id, key)
        ).fetchone()
        return None if row is None else ObjectState(row[1], row[2], row[3], bool(row[4]))

    def root_status(self, root_id: int, status: str) -> None:
        """Record a root's health sentence (``ok`` or what is wrong) when it changes."""
        with self.ledger.transaction() as conn:
            row = conn.execute("SELECT status FROM roots WHERE id = ?", (root_id,)).fetchone()
            if row is None or row[0] == status:
                return
            conn.execute("UPDATE roots SET status = ? WHERE id = ?", (status, root_id))
            self.ledger.event(conn, "root.status", f"root:{root_id}", status=status, was=row[0])

    def known_file(self, path: Path) -> tuple[int, int] | None:
        """Size and mtime the ledger last saw for one live file, if any."""
        row = self.conn.execute(
            "SELECT size, mtime_ns FROM files"
            " WHERE uri = ? AND state = 'present' AND version_id IS NOT NULL",
            (file_uri(path),),
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    # -- intake transitions -----------------------------------------------

    def record_version(
        self, root_id: int, path: Path, *, size: int, mtime_ns: int, sha256: str
    ) -> bool:
        """Record that ``path`` holds the bytes ``sha256``; see :meth:`record_versions`."""
        return self.record_versions([Seen(root_id, path, size, mtime_ns, sha256)])[0]

    def record_versions(self, seen: Sequence[Seen]) -> list[bool]:
        """Record what each path holds, in one transaction.

        For each, ``True`` when that content still needs extracting (a version
        never seen, or one recorded but not yet extracted); ``False`` when an
        extraction of the same bytes exists, which the file then reuses.
        """
        with self.ledger.transaction() as conn:
            needs: list[bool] = []
            for run in _distinct_runs(seen):  # a location seen twice: its second after the first
                needs += record_batch(self.ledger, conn, run)
            return needs

    def record_gone(self, path: Location) -> None:
        """The file at ``path`` was deleted (or moved away); its history stays."""
        with self.ledger.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM files WHERE uri = ? AND state != 'deleted'", (location_uri(path),)
            ).fetchone()
            if row is None:
                return
            conn.execute(
                "UPDATE files SET state = 'deleted', updated_at = ? WHERE id = ?",
                (self.ledger.now(), row[0]),
            )
            self.ledger.event(conn, "file.deleted", f"file:{row[0]}", path=display_location(path))

    def record_problem(self, root_id: int, path: Location, reason: str) -> None:
        """An entry that can never be read as it is (a symlink loop, a FIFO...)."""
        uri, shown = location_uri(path), display_location(path)
        with self.ledger.transaction() as conn:
            row = conn.execute("SELECT id, problem FROM files WHERE uri = ?", (uri,)).fetchone()
            if row is not None and row[1] == reason:
                return
            if row is None:
                now = self.ledger.now()
                file_id = inserted_id(
                    conn.execute(
                        "INSERT INTO files (root_id, uri, path, state, problem, first_seen_at,"
                        " updated_at) VALUES (?, ?, ?, 'problem', ?, ?, ?) RETURNING id",
                        (root_id, uri, shown, reason, now, now),
                    )
                )
            else:
                file_id = int(row[0])
                conn.execute(
                    "UPDATE files SET state = 'problem', problem = ?, updated_at = ? WHERE id = ?",
                    (reason, self.ledger.now(), file_id),
                )
            self.ledger.event(conn, "file.problem", f"file:{file_id}", path=shown, reason=reason)


# Live objects of S3 roots with their hints; "settled": nothing left to extract.
_OBJECTS_SQL = (
    "SELECT o.key, o.etag, f.size, f.mtime_ns,"
    " v.state = 'extracted' OR (v.state = 'failed' AND v.failure_kind = 'permanent')"
    " FROM s3_objects o JOIN files f ON f.id = o.file_id JOIN versions v ON v.id = f.version_id"
    " AND f.state = 'present'"
)


def _distinct_runs(seen: Sequence[Seen]) -> list[list[Seen]]:
    """``seen`` in consecutive runs, each holding a location at most once."""
    runs: list[list[Seen]] = [[]]
    locations: set[str] = set()
    for item in seen:
        uri = location_uri(item.uri or item.path)
        if uri in locations:
            runs.append([])
            locations.clear()
        runs[-1].append(item)
        locations.add(uri)
    return [run for run in runs if run]
