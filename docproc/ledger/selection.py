"""Which content versions an operator means, and what the ledger knows of them.

``docproc estimate`` and ``docproc reprocess`` name files (paths, ids,
URIs), folders, watched roots, or everything; this module turns that into
the current version of each live file, once per version (the same bytes at
two paths are one request), with its size and how it stands under a task:
summarised already, on its way (queued or in a batch), or neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from docproc.ledger.connection import Ledger
from docproc.ledger.queries import Queries
from docproc.ledger.uris import file_uri


@dataclass(frozen=True, slots=True)
class Selected:
    """One content version chosen, with what pricing it needs."""

    version_id: int
    sha256: str
    state: str  # the version's extraction state: extracted, pending, failed
    chars: int
    json_bytes: int | None
    text_sha256: str | None
    title: str  # the file name of one file holding it
    summarised: bool  # a done job under the task
    in_flight: bool  # a job under the task is queued, submitting or submitted


class SelectionLedger:
    """Read-only selection queries on top of a :class:`Ledger`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.conn = ledger.conn
        self.queries = Queries(ledger)

    def file_ids(
        self, refs: Sequence[str] = (), folders: Sequence[str] = (), roots: Sequence[str] = ()
    ) -> list[int]:
        """Live files by reference (id, path, URI), under folders (absolute paths), or
        under roots (their URIs); everything live when nothing is named."""
        clauses, args = [], []
        for ref in refs:
            found = self.queries.find_file(ref)
            if found is not None:
                clauses.append("f.id = ?")
                args.append(found["id"])
        for folder in folders:
            prefix = file_uri(Path(folder)).rstrip("/") + "/"
            clauses.append("substr(f.uri, 1, ?) = ?")
            args += [len(prefix), prefix]
        for root in roots:
            clauses.append("r.uri = ?")
            args.append(root)
        if (refs or folders or roots) and not clauses:
            return []
        where = f" AND ({' OR '.join(clauses)})" if clauses else ""
        rows = self.conn.execute(
            "SELECT f.id FROM files f JOIN roots r ON r.id = f.root_id"  # noqa: S608
            f" WHERE f.state = 'present' AND f.version_id IS NOT NULL{where} ORDER BY f.id",
            args,
        )
        return [int(file_id) for (file_id,) in rows]

    def versions(self, file_ids: Sequence[int], task: str) -> list[Selected]:
        """The current version of each file, once per version, in file order."""
        found: dict[int, Selected] = {}
        for chunk in _chunks(list(file_ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                "SELECT v.id, v.sha256, v.state, COALESCE(v.chars, 0), v.json_bytes,"  # noqa: S608
                " v.text_sha256, f.path,"
                " EXISTS (SELECT 1 FROM jobs j WHERE j.version_id = v.id AND j.task = ?"
                "   AND j.state = 'done'),"
                " EXISTS (SELECT 1 FROM jobs j WHERE j.version_id = v.id AND j.task = ?"
                "   AND j.state IN ('queued', 'submitting', 'submitted'))"
                f" FROM files f JOIN versions v ON v.id = f.version_id WHERE f.id IN ({marks})"
                " ORDER BY f.id",
                (task, task, *chunk),
            )
            for vid, sha, state, chars, jbytes, text, path, done, flying in rows:
                title = str(path).rsplit("/", 1)[-1]
                found.setdefault(vid, Selected(vid, sha, state, chars, jbytes, text, title,
                                               bool(done), bool(flying)))  # fmt: skip
        return list(found.values())

    def output_history(self, model: str) -> tuple[int, float]:
        """(answers, mean output tokens) of the requests this model answered."""
        row = self.conn.execute(
            "SELECT COUNT(*), AVG(output_tokens) FROM requests WHERE state = 'succeeded'"
            " AND model = ? AND output_tokens > 0",
            (model,),
        ).fetchone()
        return int(row[0]), float(row[1] or 0.0)


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
