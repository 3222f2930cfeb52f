"""A batch of scanned files in a few statements: what each holds, and the events it makes.

Recording one file alone took up to nine statements (look its version up,
insert it, its event; look the file up, insert or update it, its event; the
chain's head), each a round trip on PostgreSQL. :func:`record_batch` reads
the versions and files of the whole batch with one lookup each, inserts the
new ones with multi-row ``INSERT``s, updates the others with one
``executemany``, and appends the events in the order recording one file
after the other would have made them (so the same rows, ids and events).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from docproc.ledger.bulk import insert_rows, select_in, update_by_id
from docproc.ledger.connection import Ledger
from docproc.ledger.engine import Connection
from docproc.ledger.uris import display_location, location_uri
from docproc.models import object_key

if TYPE_CHECKING:
    from docproc.ledger.intake.files import Seen


@dataclass
class _Plan:
    """What recording the batch one file after the other would do, worked out in Python."""

    versions: dict[str, tuple[int | None, str]] = field(default_factory=dict)  # sha: id, state
    new_versions: list[tuple[str, int]] = field(default_factory=list)  # sha256, size
    new_files: list[int] = field(default_factory=list)  # indexes into the batch
    files: dict[str, tuple[int, int | None, str]] = field(default_factory=dict)  # uri: row


def record_batch(ledger: Ledger, conn: Connection, seen: Sequence[Seen]) -> list[bool]:
    """Record what each of ``seen`` holds (their locations distinct); for each, whether
    its content still needs extracting (see ``FileLedger.record_versions``)."""
    uris = [location_uri(item.uri or item.path) for item in seen]
    plan = _Plan()
    for sha, version_id, state in select_in(
        conn, "SELECT sha256, id, state FROM versions WHERE sha256 IN ({keys})",
        sorted({item.sha256 for item in seen}),
    ):  # fmt: skip
        plan.versions[sha] = (int(version_id), str(state))
    for uri, file_id, version_id, state in select_in(
        conn, "SELECT uri, id, version_id, state FROM files WHERE uri IN ({keys})", uris
    ):
        plan.files[uri] = (int(file_id), version_id, str(state))
    for item in seen:
        if item.sha256 not in plan.versions:
            plan.versions[item.sha256] = (None, "pending")
            plan.new_versions.append((item.sha256, item.size))
    _insert_versions(ledger, conn, plan)
    _insert_files(ledger, conn, plan, seen, uris)
    _update_files(ledger, conn, plan, seen, uris)
    _upsert_objects(conn, plan, seen, uris)
    ledger.events(conn, _events(plan, seen, uris))
    return [plan.versions[item.sha256][1] == "pending" for item in seen]


def _insert_versions(ledger: Ledger, conn: Connection, plan: _Plan) -> None:
    rows = [(sha, size, ledger.now()) for sha, size in plan.new_versions]
    columns = (("sha256", "text"), ("size", "int"), ("created_at", "text"))
    ids = insert_rows(conn, "versions", columns, rows, "id, sha256")
    for version_id, sha in ids:
        plan.versions[sha] = (int(version_id), "pending")


def _insert_files(
    ledger: Ledger, conn: Connection, plan: _Plan, seen: Sequence[Seen], uris: list[str]
) -> None:
    rows = []
    for index, (item, uri) in enumerate(zip(seen, uris, strict=True)):
        if uri in plan.files:
            continue
        plan.new_files.append(index)
        now, shown = ledger.now(), display_location(item.uri or item.path)
        version_id = plan.versions[item.sha256][0]
        rows.append((item.root_id, uri, shown, version_id, item.size, item.mtime_ns, now, now))
    columns = (("root_id", "int"), ("uri", "text"), ("path", "text"), ("version_id", "int"),
               ("size", "int"), ("mtime_ns", "int"), ("first_seen_at", "text"),
               ("updated_at", "text"))  # fmt: skip
    for file_id, uri in insert_rows(conn, "files", columns, rows, "id, uri"):
        plan.files[uri] = (int(file_id), None, "new")


def _update_files(
    ledger: Ledger, conn: Connection, plan: _Plan, seen: Sequence[Seen], uris: list[str]
) -> None:
    columns = (("version_id", "int"), ("size", "int"), ("mtime_ns", "int"), ("updated_at", "text"))
    update_by_id(conn, "files", columns,
                 [(plan.versions[item.sha256][0], item.size, item.mtime_ns, ledger.now(),
                   plan.files[uri][0])
                  for item, uri in zip(seen, uris, strict=True) if plan.files[uri][2] != "new"],
                 also="state = 'present', problem = NULL, ")  # fmt: skip


def _upsert_objects(conn: Connection, plan: _Plan, seen: Sequence[Seen], uris: list[str]) -> None:
    conn.executemany(
        "INSERT INTO s3_objects (file_id, root_id, key, etag) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (file_id) DO UPDATE SET etag = excluded.etag",
        [(plan.files[uri][0], item.root_id, object_key(item.uri)[1], item.etag)
         for item, uri in zip(seen, uris, strict=True) if item.uri],
    )  # fmt: skip


def _events(
    plan: _Plan, seen: Sequence[Seen], uris: list[str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """The events of the batch, in the order recording one file after another makes them."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    recorded: set[str] = set()
    new = {sha for sha, _ in plan.new_versions}
    for item, uri in zip(seen, uris, strict=True):
        version_id, state = plan.versions[item.sha256]
        if item.sha256 in new and item.sha256 not in recorded:
            recorded.add(item.sha256)
            events.append(("version.recorded", f"version:{version_id}",
                           {"sha256": item.sha256, "size": item.size}))  # fmt: skip
        detail: dict[str, Any] = {"path": display_location(item.uri or item.path),
                                  "sha256": item.sha256, "size": item.size}  # fmt: skip
        if state == "extracted":
            detail["reused"] = True
        file_id, old_version, old_state = plan.files[uri]
        if old_state == "new":
            events.append(("file.discovered", f"file:{file_id}", detail))
        elif old_state != "present":
            events.append(("file.reappeared", f"file:{file_id}", detail))
        elif old_version != version_id:
            events.append(("file.changed", f"file:{file_id}", detail))
    return events
