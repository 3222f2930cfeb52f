"""Publish: answered jobs -> sidecars next to each source -> the ledger.

Sources in local folders get sidecar files (:mod:`docproc.sidecars`);
objects under S3 prefixes get sidecar objects (:mod:`docproc.sidecar_objects`),
with the same ledger bookkeeping and the same no-clobber rule.

For every live file whose current job is done and whose sidecars are not yet
written: render both sidecars, record the sha256 of each (``writing``) in the
ledger, write them atomically, then record them ``written``. A file at a
target path that docproc did not write is never overwritten: the ledger
records a conflict instead. The same bytes at another path are written from
the stored result, with no provider call, and the ledger says ``reused``.

A write that fails for a storage reason (a full disk, a read-only mount, a
folder the daemon may not write, a bucket refusing it) is an outcome, not a
dead end: the file waits in ``sidecar_retries`` (:mod:`docproc.ledger.publishing.retries`,
state ``retrying`` with the reason) and is tried again with backoff. Within a
pass, a place (folder or bucket prefix) that just failed is not tried again
for its other files; a write that works there makes them all due at once.
A failed write leaves no temp file behind; one that could not be removed (the
disk turned read-only under it) goes at start-up (:meth:`Publisher.recover`)
or after the next write that works in that folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from docproc.errors import ObjectStoreError, SidecarConflict, SidecarError
from docproc.ledger.publishing import PublishLedger, Retry
from docproc.ledger.uris import uri_path
from docproc.models import SidecarSettings, object_key
from docproc.publish_items import (
    FileItem,
    ObjectItem,
    failed_uri,
    retry_of,
    sidecar_content,
    write_objects,
)
from docproc.sidecar_objects import ObjectSidecars
from docproc.sidecars import (
    commit,
    discard,
    plan_paths,
    remove_sidecars,
    remove_stale_temps,
    render_json,
    render_markdown,
    stage,
    sweep_temps,
)
from docproc.storage import OWN_KINDS, REFUSED, Fault, fault_cleared, write_fault

log = structlog.get_logger()
PER_TICK = 500
REPASS_S = 60.0
RETRY_GAP_S = 1.0  # a pass for files whose retry is due runs at most this often
LOOK_AGAIN_S, LOOK_AT_MOST = 2.0, 1000  # how often, and at how many places, faults are looked at
OBJECT_WRITERS = 8  # concurrent sidecar PUTs to S3


class Publisher:
    """Writes the sidecars of answered jobs, a bounded number per tick."""

    def __init__(self, ledger: PublishLedger, *, task_id: str, settings: SidecarSettings) -> None:
        self.sidecars, self.retries = ledger.sidecars, ledger.retries
        self.task_id, self.settings = task_id, settings
        # A pass walks the files in id order, ``PER_TICK`` at a time, from a
        # cursor; a new pass starts only when woken (new results or new files),
        # when a waiting file's retry is due, or every REPASS_S, so an idle
        # daemon does not scan its ledger on every tick.
        self._cursor = 0
        self._awake = True
        self._next_pass = 0.0
        self._retry_at: float | None = None  # wall clock: the earliest waiting file is due
        self._again = False  # a place came back during this pass: go round once more
        self._object_roots: dict[str, ObjectSidecars] = {}
        self._failed: dict[str, Fault] = {}  # places a write failed in, this pass
        self._told: dict[str, str] = {}  # the fault last logged per place
        # place -> fault kind files wait on there: released by a write that works there,
        # or when the filesystem says the fault is gone (looked at every LOOK_AGAIN_S)
        self._waiting: dict[str, str] = {}
        self._next_look = 0.0
        self._dirty: set[str] = set()  # folders that may hold temp files of failed writes

    def recover(self) -> int:
        """At start-up: remove temp files from every folder files wait on; how many."""
        places = self.retries.places()
        self._waiting.update(places)
        local = [place for place in places if not place.startswith("s3://")]
        return sum(sweep_temps(Path(place), self.settings.suffixes) for place in local)

    def add_object_root(self, root_uri: str, sink: ObjectSidecars) -> None:
        """Sidecars of sources under the S3 root ``root_uri`` go through ``sink``."""
        self._object_roots[root_uri] = sink
        self.wake()

    def remove_object_root(self, root_uri: str) -> None:
        self._object_roots.pop(root_uri, None)

    def wake(self) -> None:
        """Something may need publishing: results arrived or files were taken."""
        self._awake = True

    def tick(self, now: float, limit: int = PER_TICK) -> int:
        """Publish up to ``limit`` files; returns how many were handled."""
        if now >= self._next_pass or self._retry_due():
            self._awake, self._next_pass = True, now + REPASS_S
        if now >= self._next_look:
            self._next_look = now + LOOK_AGAIN_S
            self._look_again()
        handled = self._step(limit) if self._awake else 0
        if self.settings.delete_with_source:
            self._remove_orphans(limit)
        return handled

    def _look_again(self) -> None:
        """Places whose fault the filesystem says is gone (space freed, remounted
        read-write, permission given back): their files are due now, not after
        their backoff. A cheap look (statvfs, access), no write."""
        looked = list(self._waiting.items())[:LOOK_AT_MOST]
        back = [place for place, kind in looked if fault_cleared(place, kind)]
        if back:
            self._release(back)

    def _release(self, places: Sequence[str]) -> None:
        self.retries.release(places)
        for place in places:
            self._waiting.pop(place, None)
        self._awake = self._again = True

    def _retry_due(self) -> bool:
        return self._retry_at is not None and self.sidecars.clock() >= self._retry_at

    def _step(self, limit: int) -> int:
        started_at = self._cursor
        if started_at == 0:
            self._failed.clear()  # a new pass tries every place again
        rows = self.sidecars.to_publish(self.task_id, limit, after_file_id=started_at)
        self._publish(rows)
        if len(rows) == limit:
            self._cursor = rows[-1]["file_id"]
            return len(rows)
        # End of the files: done, unless this pass began mid-way or a place came back.
        self._cursor, self._awake, self._again = 0, started_at != 0 or self._again, False
        due = self.retries.next_due()
        self._retry_at = None if due is None else max(due, self.sidecars.clock() + RETRY_GAP_S)
        return len(rows)

    @property
    def awake(self) -> bool:
        """A pass is under way: more files may be ready to publish right now."""
        return self._awake

    def has_work(self) -> bool:
        """Files to write now, or waiting for a storage fault to clear (``--once`` waits)."""
        return (
            self._awake
            or bool(self.sidecars.to_publish(self.task_id, 1))
            or self.retries.next_due(faults_only=True) is not None
        )

    def _remove_orphans(self, limit: int) -> None:
        """Sources deleted: remove their sidecars, unless someone changed them since."""
        for row in self.sidecars.orphaned_sidecars(limit):
            try:
                self._remove_orphan(row)
            except Exception:  # this sidecar alone: left in place, not retried
                log.exception("sidecars.remove_failed", path=row["uri"])
                self.sidecars.sidecar_removed(row["id"], row["file_id"], kept=True)

    def _remove_orphan(self, row: dict[str, Any]) -> None:
        if row["uri"].startswith("s3://"):
            self._remove_orphan_object(row)
            return
        path = uri_path(row["uri"])
        within = self.settings.output_dir or uri_path(row["root_uri"])
        try:
            result = remove_sidecars([path], {row["sha256"]}, within=within)
        except (SidecarError, OSError) as exc:  # left in place, and not tried again
            log.warning("sidecars.remove_failed", path=str(path), reason=str(exc))
            self.sidecars.sidecar_removed(row["id"], row["file_id"], kept=True)
            return
        self.sidecars.sidecar_removed(row["id"], row["file_id"], kept=bool(result.kept))

    def _remove_orphan_object(self, row: dict[str, Any]) -> None:
        sink = self._object_roots.get(row["root_uri"])
        if sink is None:
            return  # the root is not watched now: left for when it is
        try:
            removed = sink.remove_if_ours(object_key(row["uri"])[1], {row["sha256"]})
        except (ObjectStoreError, SidecarError) as exc:
            log.warning("sidecars.remove_failed", path=row["uri"], reason=str(exc))
            removed = False
        self.sidecars.sidecar_removed(row["id"], row["file_id"], kept=not removed)

    def _publish(self, rows: Sequence[dict[str, Any]]) -> None:
        """Render, record intents, stage, make durable in one sync, put in place, record.

        Each step covers the whole chunk: one transaction for the intents, one
        filesystem sync for all the temp files, one transaction for the results.
        """
        local = [row for row in rows if not row["uri"].startswith("s3://")]
        if len(local) < len(rows):
            self._publish_objects([row for row in rows if row["uri"].startswith("s3://")])
        retries: list[Retry] = []
        items = self._not_failed(self._prepare(local, retries), retries)
        self.sidecars.sidecars_intent([(i.file_id, i.job_id, i.targets) for i in items])
        staged = [i for i in items if self._staged(i, retries)]
        outcomes = iter(commit([s for i in staged for s in i.staged]))
        written = []
        for item in staged:
            failures = [o for o in (next(outcomes) for _ in item.staged) if o is not None]
            if failures:
                self._failure(item, failed_uri(failures[0], item), failures[0], retries)
            else:
                written.append(item)
        self._record(written, retries)

    def _prepare(self, rows: Sequence[dict[str, Any]], retries: list[Retry]) -> list[FileItem]:
        items: list[FileItem] = []
        jobs_here: set[int] = set()
        for row in rows:
            try:
                paths = plan_paths(
                    uri_path(row["uri"]), uri_path(row["root_uri"]),
                    summary_suffix=self.settings.summary_suffix,
                    json_suffix=self.settings.json_suffix, output_dir=self.settings.output_dir,
                )  # fmt: skip
                reused, markdown, json = self._render(row, jobs_here)
            except Exception as exc:  # noqa: BLE001 - this file alone: retried after a pause
                place = str(self.settings.output_dir or uri_path(row["root_uri"]))
                retries.append(self._own_problem(row, place, exc))
                continue
            writes = [(paths.markdown, markdown), (paths.json, json)]
            items.append(FileItem(row, reused, writes, uri_path(row["root_uri"])))
        return items

    def _render(self, row: dict[str, Any], jobs_here: set[int]) -> tuple[bool, bytes, bytes]:
        """(reused, Markdown, JSON) of one file's sidecars. ``reused``: this job's result
        was already written for another file, earlier or in this chunk (``jobs_here``)."""
        job_id = row["job_id"]
        reused = job_id in jobs_here or self.sidecars.written_elsewhere(job_id, row["file_id"])
        jobs_here.add(job_id)
        content = sidecar_content(row, reused=reused)
        return reused, render_markdown(content), render_json(content)

    def _staged(self, item: FileItem, retries: list[Retry]) -> bool:
        """Stage both sidecars of ``item``; on failure nothing stays staged."""
        if (fault := self._failed.get(item.place)) is not None:  # failed for an earlier file
            retries.append(retry_of(item.row, fault))
            return False
        if item.row["interrupted"]:  # a previous attempt died mid-write: clear its temp files
            for path, _ in item.writes:
                remove_stale_temps(path)
        base = self.settings.output_dir or item.root
        for (path, data), (uri, _) in zip(item.writes, item.targets, strict=True):
            try:
                staged = stage(
                    path, data, expected_existing=self.sidecars.sidecar_hashes(uri),
                    within=base, make_parents=self.settings.output_dir is not None,
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - this file alone (a fault: its folder)
                discard(item.staged)
                item.staged.clear()
                self._failure(item, uri, exc, retries)
                return False
            if staged is not None:
                item.staged.append(staged)
        return True

    def _problem(self, row: dict[str, Any], uri: str, state: str, reason: str) -> None:
        log.warning(f"sidecars.{state}", path=row["path"], reason=reason)
        self.sidecars.sidecar_problem(row["file_id"], row["job_id"], uri, state, reason)

    # -- failures and retries -------------------------------------------------

    def _failure(
        self, item: FileItem | ObjectItem, uri: str, exc: BaseException, retries: list[Retry]
    ) -> None:
        """One file's sidecars were not written: a conflict, or a try again later."""
        if isinstance(exc, SidecarConflict):
            self._problem(item.row, uri, "conflict", str(exc))
            return
        fault = write_fault(exc, item.place)
        if fault.kind in OWN_KINDS:  # a refused path, a bug: this file's own problem
            retries.append(self._own_problem(item.row, item.place, exc))
            return
        self._failed[item.place] = fault  # a fault is the place's: its other files wait
        if isinstance(item, FileItem):
            self._dirty.add(item.place)
        if self._told.get(item.place) != fault.reason:
            self._told[item.place] = fault.reason
            log.warning("sidecars.write_failed", place=item.place, kind=fault.kind,
                        reason=fault.reason, path=item.row["path"])  # fmt: skip
        retries.append(retry_of(item.row, fault))

    def _own_problem(self, row: dict[str, Any], place: str, exc: BaseException) -> Retry:
        """A file whose sidecars cannot be made for a reason of its own: tried again later.

        A refused path is logged as such; anything unexpected with its traceback.
        """
        fault = write_fault(exc, place)
        if fault.kind == REFUSED:
            log.warning("sidecars.refused", path=row["path"], reason=fault.reason)
        else:
            log.error("sidecars.failed", path=row["path"], exc_info=exc)
        return retry_of(row, fault)

    def _not_failed(self, items: list[Any], retries: list[Retry]) -> list[Any]:
        """Items whose place has not failed in this pass; the others wait, untried."""
        kept = []
        for item in items:
            fault = self._failed.get(item.place)
            if fault is None:
                kept.append(item)
            else:
                retries.append(retry_of(item.row, fault))
        return kept

    def _record(self, written: Sequence[FileItem | ObjectItem], retries: Sequence[Retry]) -> None:
        """Record what was written and what waits; a place that works again releases its files."""
        self.sidecars.sidecars_written([(i.file_id, i.job_id, i.reused) for i in written])
        self.retries.record(retries)
        self._waiting.update((retry.place, retry.kind) for retry in retries)
        worked = {item.place for item in written}
        back = sorted(worked & self._waiting.keys())
        if back:
            self._release(back)
        for place in worked:
            if self._told.pop(place, None) is not None:
                log.info("sidecars.place_recovered", place=place)
            if place in self._dirty:
                self._dirty.discard(place)
                sweep_temps(Path(place), self.settings.suffixes)

    # -- S3 sidecar objects -------------------------------------------------

    def _publish_objects(self, rows: Sequence[dict[str, Any]]) -> None:
        """Plan, record intents, PUT (a few at a time, conditionally), record results."""
        retries: list[Retry] = []
        items = self._not_failed(self._prepare_objects(rows, retries), retries)
        if items:
            etags = self.sidecars.source_etags([item.file_id for item in items])
            for item in items:  # before the intents: what earlier attempts may have written
                item.expected = [self.sidecars.sidecar_hashes(uri) for uri, _ in item.targets]
                item.metadata = {
                    "docproc-source-sha256": item.row["sha256"],
                    "docproc-source-etag": etags.get(item.file_id, "").strip('"'),
                }
            self.sidecars.sidecars_intent([(i.file_id, i.job_id, i.targets) for i in items])
        with ThreadPoolExecutor(OBJECT_WRITERS, thread_name_prefix="docproc-put") as pool:
            outcomes = list(pool.map(write_objects, items))
        written = []
        for item, problem in zip(items, outcomes, strict=True):
            if problem is None:
                written.append(item)
            else:
                self._failure(item, *problem, retries)
        self._record(written, retries)

    def _prepare_objects(
        self, rows: Sequence[dict[str, Any]], retries: list[Retry]
    ) -> list[ObjectItem]:
        items: list[ObjectItem] = []
        jobs_here: set[int] = set()
        for row in rows:
            sink = self._object_roots.get(row["root_uri"])
            if sink is None:
                continue  # the root is not watched now: left for when it is
            try:
                keys = sink.plan(object_key(row["uri"])[1])
                reused, markdown, json = self._render(row, jobs_here)
            except Exception as exc:  # noqa: BLE001 - this file alone: retried after a pause
                retries.append(self._own_problem(row, sink.place, exc))
                continue
            writes = [(keys.markdown, markdown, "markdown"), (keys.json, json, "json")]
            items.append(ObjectItem(row, reused, sink, writes))
        return items
