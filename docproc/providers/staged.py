"""Staged batches: one provider for every platform whose batches live in an object store.

Bedrock (S3) and Vertex AI (GCS) — and OpenAI Batch after them — run batches
the same way, unlike Anthropic's inline body (reference/BATCH_APIS.md §6):
the requests are written as JSONL objects to a store, a job is created that
points at them, and the results come back as JSONL objects in the store.
:class:`StagedBatchProvider` is that flow, once; a platform is three small
parts handed to it (the seams, in :mod:`docproc.providers.staging`):

* an :class:`~docproc.providers.staging.ObjectStore` (S3, GCS): keys under
  the configured staging prefix, streamed writes that never replace an
  object, streamed reads;
* a :class:`~docproc.providers.staging.JobApi`: create a job (idempotently,
  by the ledger's token), get it, find it by name, stop it;
* a :class:`~docproc.providers.staging.RecordCodec`: the JSONL line of a
  request, and the result a line of output (or a live answer) stands for.

The flow of one batch, whose ledger token is ``T`` (``docproc-<ledger>-b<id>``)::

    <staging>T/input/part-00001.jsonl ...   the requests, split at the per-file quotas
                                            (the platform's Layout: Vertex AI's are
                                            <staging>T/input-00001.jsonl ...)
    <staging>T/staged.json                  written last: the input is complete
    create job "T" (token T, attempt n)      -> job id, recorded by the dispatcher
    poll ... terminal status                 -> the job's message and counts
    <output of the job>/*                    streamed line by line, matched by record id
    delete <staging>T/ (unless kept)         once the results are applied

Staging is idempotent: a ``staged.json`` of this token means the input is
complete from an earlier attempt (a crash, a lost answer) and is used as it
is; otherwise leftovers of an interrupted attempt are removed, but only if
they carry this token (anything else under the prefix is refused, never
overwritten). Every object is created with "if none exists".

A batch below the platform's minimum is never staged: its requests go
through the live API (:class:`~docproc.providers.live.LiveBatches`), at the
live price, with ids ``live-T``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import structlog

from docproc.errors import (
    ObjectStoreError,
    ProviderAccountRefused,
    ProviderError,
    ProviderRejected,
    ProviderRetryable,
)
from docproc.models import BatchStatus, JobRequest, ProviderResult, ResultKind, TaskSpec
from docproc.providers.base import ProviderLimits, Ticket, encode_request
from docproc.providers.live import LiveBatches, is_live
from docproc.providers.messages import ShapeError
from docproc.providers.staging import (
    TOKEN_METADATA,
    Counted,
    FileLimits,
    JobApi,
    JobSpec,
    JobView,
    Layout,
    ObjectStore,
    Phase,
    RecordCodec,
    checked,
    split_files,
)

STAGED_MARKER = "staged.json"
MAX_MANIFEST_BYTES = 1 << 20
CLEAN_TRIES, CLEAN_BACKOFF_S = 3, 0.5
INVALID = "invalid_request_error"

log = structlog.get_logger()


class StagedBatchProvider:
    """The Provider protocol over an object store, a job API and a record codec.

    Args:
        name: the provider's name in the ledger (``bedrock``).
        store: the staging store, rooted at the configured prefix.
        jobs: the platform's batch job API.
        codec: the platform's JSONL shapes.
        build: the request body (``params``) of one job, pure.
        limits: caps per job, jobs in flight, the minimum and what happens below it.
        files: where the input is split into several files.
        live: answers batches below the minimum (None: the provider has no live path).
        keep_staging: leave a batch's staging objects in place once it is applied.
        layout: where the input and output objects go in a batch's folder.
        on_close: what to close with the provider (its clients' connections).
    """

    def __init__(
        self,
        name: str,
        *,
        store: ObjectStore,
        jobs: JobApi,
        codec: RecordCodec,
        build: Callable[[JobRequest, TaskSpec], dict[str, Any]],
        limits: ProviderLimits,
        files: FileLimits,
        live: LiveBatches | None = None,
        keep_staging: bool = False,
        layout: Layout = Layout(),  # noqa: B008 - frozen, shared on purpose
        on_close: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.name, self.limits = name, limits
        self.store, self.jobs, self.codec = store, jobs, codec
        self._build, self._files, self._live = build, files, live
        self.keep_staging, self.layout = keep_staging, layout
        self._on_close = tuple(on_close)

    def __repr__(self) -> str:
        return f"StagedBatchProvider({self.name!r}, staging={self.store.uri('')!r})"

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
        for close in self._on_close:
            close()

    # -- the Provider protocol ---------------------------------------------------

    def build_request(self, job: JobRequest, task: TaskSpec) -> dict[str, Any]:
        return {"custom_id": job.custom_id, "params": self._build(job, task)}

    def submit(self, requests: Iterable[dict[str, Any]], ticket: Ticket | None = None) -> str:
        """Stage the requests under the ticket's token, then create the job by that token.

        Raises:
            ProviderRejected: no ticket, no requests, a bad or duplicate custom_id,
                more requests than a job takes, or a foreign object in the way.
            ProviderAccountRefused: the store or the platform refuses the account
                (denied, no bucket, no credentials).
            ProviderRetryable: certainly not created (staging failed, throttled).
            ProviderError: the create may have been made (reconcile first).
        """
        if ticket is None:
            raise ProviderRejected(f"{self.name}: a batch needs the ledger's ticket")
        valid = checked(requests)
        if ticket.live:
            return self._live_batches().start(ticket.token, valid)
        folder, layout = f"{ticket.token}/", self.layout
        with _store_errors("stage the batch input"):
            records, files = self._stage(folder, ticket.token, valid)
        spec = JobSpec(
            name=ticket.token,
            input_uri=self.store.uri(folder + layout.input_prefix),
            output_uri=self.store.uri(folder + layout.output_prefix),
            records=records,
            input_files=tuple(
                self.store.uri(folder + layout.input_file.format(n)) for n in range(1, files + 1)
            ),
            attempt=ticket.attempt,
        )
        job_id = self.jobs.create(spec)
        log.info("staged.job_created", provider=self.name, job_id=job_id, records=records)
        return job_id

    def poll(self, batch_id: str) -> BatchStatus:
        if is_live(batch_id):
            return self._live_batches().poll(batch_id)
        view = self.jobs.get(batch_id)
        if view.phase is Phase.RUNNING:
            return BatchStatus(False, view.state, view.message, view.counts)
        counts = dict(view.counts) | dict(self._manifest(view))  # the manifest's word wins
        return BatchStatus(True, view.state, view.message, tuple(counts.items()))

    def results(self, batch_id: str) -> Iterator[ProviderResult]:
        """Stream one result per output line, then one per record the output lacks
        (a job that failed, stopped or ran out of time), matched by record id."""
        if is_live(batch_id):
            return self._live_batches().results(batch_id)
        view = self.jobs.get(batch_id)
        if view.phase is Phase.RUNNING:
            raise ProviderRejected(f"job {batch_id} has not ended ({view.state})")
        return self._results(view)

    def cancel(self, batch_id: str) -> None:
        if is_live(batch_id):
            self._live_batches().cancel(batch_id)
            return
        self.jobs.stop(batch_id)
        log.info("staged.stop_requested", provider=self.name, job_id=batch_id)

    def delete(self, batch_id: str) -> None:
        """Remove an applied batch's staging objects (its input, the platform's output).

        Tried up to three times (nobody calls it again); a failure is then
        logged, not raised: the results are applied already, and what is left
        costs only storage (a lifecycle rule on the prefix ends it).
        """
        if is_live(batch_id):
            self._live_batches().delete(batch_id)
            return
        for attempt in range(CLEAN_TRIES) if not self.keep_staging else ():
            try:
                view = self.jobs.get(batch_id)
                with _store_errors("remove the staging objects"):
                    keys = list(self.store.keys(f"{view.name}/"))
                    for key in keys:
                        self.store.delete(key)
            except ProviderError as exc:
                if isinstance(exc, ProviderRetryable) and attempt + 1 < CLEAN_TRIES:
                    time.sleep(CLEAN_BACKOFF_S * 2**attempt)
                    continue
                log.warning("staged.clean_failed", provider=self.name, job_id=batch_id,
                            error=str(exc))  # fmt: skip
                return
            log.info("staged.cleaned", provider=self.name, job_id=batch_id, objects=len(keys))
            return

    def find_batch(
        self,
        custom_ids: Sequence[str],
        created_after: datetime,
        exclude: Set[str] = frozenset(),
        ticket: Ticket | None = None,
    ) -> str | None:
        """The job (or live batch) named after the ticket's token, if the platform has it."""
        if ticket is None:
            return None
        if ticket.live:
            found = self._live_batches().find(ticket.token)
        else:
            found = self.jobs.find(ticket.token)
        return found if found is not None and found not in exclude else None

    # -- staging -------------------------------------------------------------------

    def _stage(
        self, prefix: str, token: str, requests: Iterator[dict[str, Any]]
    ) -> tuple[int, int]:
        """Write the input files and the marker; the numbers of records and files staged."""
        marker = self._marker(prefix + STAGED_MARKER, token)
        if marker is not None:
            staged = json.loads(marker)
            log.info("staged.input_found", provider=self.name, token=token, **staged)
            return int(staged["records"]), int(staged["files"])
        self._clear_leftovers(prefix + self.layout.input_prefix, token)
        lines = (
            encode_request(self.codec.record(r["custom_id"], r["params"])) + b"\n" for r in requests
        )
        records = size = parts = 0
        for parts, file_lines in enumerate(split_files(lines, self._files), start=1):
            counted = Counted(file_lines)
            key = prefix + self.layout.input_file.format(parts)
            self.store.write_new(key, counted, metadata={TOKEN_METADATA: token})
            records, size = records + counted.lines, size + counted.bytes
        if not records:
            raise ProviderRejected("a batch needs at least one request")
        summary = {"records": records, "files": parts, "bytes": size}
        self.store.write_new(prefix + STAGED_MARKER, [json.dumps(summary).encode()],
                             metadata={TOKEN_METADATA: token})  # fmt: skip
        log.info("staged.input_written", provider=self.name, token=token, **summary)
        return records, parts

    def _marker(self, key: str, token: str) -> bytes | None:
        """The staged marker of this token, if an earlier attempt completed the input."""
        metadata = self.store.metadata(key)
        if metadata is None:
            return None
        if metadata.get(TOKEN_METADATA) != token:
            raise ProviderRejected(f"{self.store.uri(key)} was not staged for this batch")
        return self.store.read(key, max_bytes=MAX_MANIFEST_BYTES)

    def _clear_leftovers(self, prefix: str, token: str) -> None:
        """Remove what an interrupted staging of this token left; refuse anything else."""
        for key in list(self.store.keys(prefix)):
            metadata = self.store.metadata(key)
            if metadata is None:
                continue  # gone meanwhile
            if metadata.get(TOKEN_METADATA) != token:
                raise ProviderRejected(
                    f"{self.store.uri(key)} was not staged for this batch: not overwriting it"
                )
            self.store.delete(key)

    # -- results ---------------------------------------------------------------------

    def _results(self, view: JobView) -> Iterator[ProviderResult]:
        """Answers first: a record found twice (in a predictions and an errors file) counts
        once, as answered (it was billed); then what the output lacks."""
        seen: set[str] = set()
        with _store_errors(f"read the output of job {view.job_id}"):
            found = self.store.keys(self.store.key(view.output_uri))
            for key in sorted((k for k in found if self.codec.is_output(k)), key=_answers_first):
                for result in self._parsed(self.store.lines(key), view.job_id):
                    if result.custom_id in seen:
                        log.warning("staged.duplicate_output", job_id=view.job_id, key=key,
                                    custom_id=result.custom_id)  # fmt: skip
                        continue
                    seen.add(result.custom_id)
                    yield result
            if view.phase is not Phase.COMPLETED:
                yield from self._absent(view, seen)

    def _parsed(self, lines: Iterable[bytes], job_id: str) -> Iterator[ProviderResult]:
        for raw in lines:
            if not raw.strip():
                continue
            try:
                yield self.codec.result(json.loads(raw))
            except (ValueError, ShapeError) as exc:  # one bad line: its record counts as absent
                log.warning("staged.bad_output_line", job_id=job_id, error=str(exc)[:200])

    def _absent(self, view: JobView, seen: set[str]) -> Iterator[ProviderResult]:
        """A result for each input record the output of an unfinished job lacks."""
        for key in self._input_keys(view):
            for raw in self.store.lines(key):
                custom_id = self.codec.custom_id(json.loads(raw)) if raw.strip() else None
                if custom_id is not None and custom_id not in seen:
                    yield _unanswered(custom_id, view, answered_any=bool(seen))

    def _input_keys(self, view: JobView) -> Iterator[str]:
        """The keys of a job's input files (its inputs name objects or prefixes)."""
        for uri in view.inputs:
            if uri.endswith(".jsonl"):
                yield self.store.key(uri)
                continue
            found = self.store.keys(self.store.key(uri))
            yield from sorted(key for key in found if key.endswith(".jsonl"))

    def _manifest(self, view: JobView) -> tuple[tuple[str, int], ...]:
        """The counts of the job's output manifest, if it wrote one."""
        try:
            for key in self.store.keys(self.store.key(view.output_uri)):
                if self.codec.is_manifest(key):
                    data = json.loads(self.store.read(key, max_bytes=MAX_MANIFEST_BYTES) or b"{}")
                    return tuple((k, v) for k, v in data.items() if isinstance(v, int))
        except (ObjectStoreError, ValueError) as exc:
            log.warning("staged.manifest_unreadable", job_id=view.job_id, error=str(exc)[:200])
        return ()

    def _live_batches(self) -> LiveBatches:
        if self._live is None:
            raise ProviderRejected(f"{self.name}: no live API is configured")
        return self._live


def _answers_first(key: str) -> tuple[bool, str]:
    """Output files of answers before files of errors (``errors_0001.jsonl``)."""
    name = key.rsplit("/", 1)[-1]
    return name.startswith("error") or ".error" in name, key


def _unanswered(custom_id: str, view: JobView, *, answered_any: bool) -> ProviderResult:
    """What a record absent from a job's output stands for. A failed job that answered
    some records did not fail for its input as a whole: the rest is retried, not
    quarantined."""
    if view.phase is Phase.STOPPED:
        return ProviderResult(custom_id, ResultKind.CANCELED)
    if view.phase is not Phase.FAILED:
        return ProviderResult(custom_id, ResultKind.EXPIRED)  # out of time: retried
    message = f"job {view.job_id} failed: {view.message or 'no reason given'}"
    invalid = view.input_invalid and not answered_any
    kind = INVALID if invalid else "job_failed"  # the first is quarantined
    return ProviderResult(custom_id, ResultKind.ERRORED, error_type=kind, error_message=message)


@contextmanager
def _store_errors(doing: str) -> Iterator[None]:
    """Translate an object store's errors into the provider's tree while ``doing``.

    A refused account or a missing bucket pauses submission (nobody's document
    is at fault); a write that would replace an object is refused; the rest
    (throttling, 5xx, the network) is tried again later.
    """
    try:
        yield
    except ObjectStoreError as exc:
        message = f"cannot {doing}: {exc.reason}"
        if exc.code in ("denied", "no_bucket", "no_credentials", "config"):
            raise ProviderAccountRefused(message) from exc
        if exc.code == "precondition":
            raise ProviderRejected(message) from exc
        raise ProviderRetryable(message) from exc
