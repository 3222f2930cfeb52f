"""The seams of a staged batch platform: an object store, a job API, a record codec.

:class:`~docproc.providers.staged.StagedBatchProvider` runs the flow; a
platform supplies these three (Bedrock: :mod:`docproc.aws.bedrock` and
:mod:`docproc.providers.bedrock`; Vertex AI: a GCS store, the
batchPredictionJobs API and its JSONL shapes). Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from docproc.errors import ProviderRejected
from docproc.models import ProviderResult
from docproc.providers.base import is_valid_custom_id

# Metadata on every object docproc stages: the batch token it belongs to.
TOKEN_METADATA = "docproc-token"  # noqa: S105 - a metadata key, not a secret
# A failed job whose message says its input is malformed: retrying the same records
# cannot help. Messages about access, quotas or the service are not the records' fault.
_INPUT_INVALID = re.compile(
    r"malformed|invalid|not valid|parse|schema|format|unsupported|not supported", re.I
)
_NOT_THE_INPUT = re.compile(
    r"access|denied|permission|role|kms|quota|limit|minimum|maximum|exceed|throttl"
    r"|internal|service|timeout|timed out|capacity|unavailable",
    re.I,
)


class ObjectStore(Protocol):
    """Objects under one staging prefix (``s3://bucket/prefix/``, ``gs://...``).

    Keys are relative to that prefix. Errors are
    :class:`~docproc.errors.ObjectStoreError` (``code`` says what to do).
    """

    def uri(self, key: str) -> str:
        """The store URI of a key (``s3://bucket/prefix/key``), as a job API takes it."""
        ...

    def key(self, uri: str) -> str:
        """The key a store URI under the prefix names (the inverse of :meth:`uri`).

        Raises:
            ObjectStoreError: the URI is not under the staging prefix.
        """
        ...

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``, in any order."""
        ...

    def write_new(self, key: str, chunks: Iterable[bytes], *, metadata: Mapping[str, str]) -> int:
        """Create ``key`` from a stream of bytes (memory flat); its size.

        Never replaces an object: ``precondition`` if one exists.
        """
        ...

    def metadata(self, key: str) -> dict[str, str] | None:
        """The object's metadata (docproc's objects carry :data:`TOKEN_METADATA`), or None
        when there is no such object."""
        ...

    def lines(self, key: str) -> Iterator[bytes]:
        """The object's lines, streamed, without their newlines."""
        ...

    def read(self, key: str, *, max_bytes: int) -> bytes | None:
        """A small object whole, or None if there is none."""
        ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a batch's objects go in its folder (``<staging><token>/``).

    Bedrock reads every object under an input prefix (``input/part-00001.jsonl``);
    Vertex AI is given the list of input objects (``input-00001.jsonl``).
    ``input_prefix`` holds every input file and nothing else of the batch.
    """

    input_file: str = "input/part-{:05d}.jsonl"  # formatted with the file's number, from 1
    input_prefix: str = "input/"
    output_prefix: str = "output/"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job to create: ``name`` is the ledger's token (and the idempotency key).

    ``input_uri`` is the prefix holding the input files, ``input_files`` each
    of them; ``attempt`` is the ledger's number of this create attempt (a
    platform without an idempotent create labels its job with it).
    """

    name: str
    input_uri: str
    output_uri: str
    records: int
    input_files: tuple[str, ...] = ()
    attempt: int = 0


class Phase(StrEnum):
    """Where a job is, whatever the platform calls it."""

    RUNNING = "running"  # submitted, validating, scheduled, in progress, stopping
    COMPLETED = "completed"  # every record processed
    PARTIAL = "partial"  # ended with records unprocessed (out of time)
    FAILED = "failed"  # the job failed; ``message`` says why
    STOPPED = "stopped"  # stopped on request
    EXPIRED = "expired"  # never started before its timeout


@dataclass(frozen=True, slots=True)
class JobView:
    """What the platform says of a job.

    ``name`` is the ledger's token the job was created for; ``inputs`` are the
    URIs of its input objects, or of prefixes holding them (ending in ``/``);
    ``output_uri`` is the folder holding this job's output files, at any
    depth (Bedrock: the output prefix it was given, where it adds a folder
    named after the job id); ``input_invalid``: the
    platform's message says the input itself is invalid (retrying cannot help).
    """

    job_id: str
    name: str
    state: str
    phase: Phase
    inputs: tuple[str, ...]
    output_uri: str
    message: str = ""
    counts: tuple[tuple[str, int], ...] = ()
    input_invalid: bool = False


class JobApi(Protocol):
    """A platform's batch jobs. Errors are :class:`~docproc.errors.ProviderError` s:
    ``ProviderRetryable`` (throttled, over the jobs quota, 5xx, network: try later),
    ``ProviderRejected`` (invalid, unknown job), ``ProviderAccountRefused``
    (denied, no credentials); a create that may have been made raises a plain
    ``ProviderError`` (the caller reconciles with :meth:`find`)."""

    def create(self, spec: JobSpec) -> str:
        """Create the job (idempotent by ``spec.name`` where the platform can); its id."""
        ...

    def get(self, job_id: str) -> JobView: ...

    def find(self, name: str) -> str | None:
        """The id of the job named ``name``, if there is one."""
        ...

    def stop(self, job_id: str) -> None: ...


class RecordCodec(Protocol):
    """A platform's JSONL shapes."""

    def record(self, custom_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The input line of one request (its body is ``params``)."""
        ...

    def custom_id(self, line: Mapping[str, Any]) -> str | None:
        """The custom_id an input or output line carries, if it is one of docproc's."""
        ...

    def result(self, line: Mapping[str, Any]) -> ProviderResult:
        """What one output line says. Raises ShapeError for a line it cannot read."""
        ...

    def answer(self, custom_id: str, body: Mapping[str, Any]) -> ProviderResult:
        """What a live call's answer (or its recorded error) says."""
        ...

    def is_output(self, key: str) -> bool:
        """Whether a key in a job's output folder holds result lines."""
        ...

    def is_manifest(self, key: str) -> bool:
        """Whether a key in a job's output folder is the job's manifest of counts."""
        ...


@dataclass(frozen=True, slots=True)
class FileLimits:
    """Where the input of one job is split into several files (the per-file quotas)."""

    max_records: int = 50_000
    max_bytes: int = 1_000_000_000


def input_invalid(message: str, *, flagged: bool = False) -> bool:
    """Whether a failed job's message blames the input records themselves; ``flagged``:
    the platform's error code already says the input is invalid (Vertex: INVALID_ARGUMENT)."""
    blamed = flagged or bool(_INPUT_INVALID.search(message))
    return blamed and not _NOT_THE_INPUT.search(message)


def split_files(lines: Iterable[bytes], limits: FileLimits) -> Iterator[Iterator[bytes]]:
    """Split a stream of JSONL lines into files within ``limits``, lazily.

    Each file is an iterator that must be consumed before the next is asked
    for; a line longer than ``limits.max_bytes`` still gets a file of its own.
    """
    stream = iter(lines)
    pending = next(stream, None)
    while pending is not None:
        box: list[bytes | None] = [pending]
        yield _one_file(box, stream, limits)
        pending = box[0]


def _one_file(
    box: list[bytes | None], stream: Iterator[bytes], limits: FileLimits
) -> Iterator[bytes]:
    """Lines of one file; leaves the first line of the next file in ``box[0]``."""
    count = size = 0
    line = box[0]
    while line is not None:
        if count and (count >= limits.max_records or size + len(line) > limits.max_bytes):
            break
        yield line
        count, size = count + 1, size + len(line)
        line = next(stream, None)
    box[0] = line


def checked(requests: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The requests, refusing a bad or duplicate custom_id as it passes."""
    seen: set[str] = set()
    for request in requests:
        custom_id = request.get("custom_id")
        if not is_valid_custom_id(custom_id) or custom_id in seen:
            raise ProviderRejected(f"invalid or duplicate custom_id {str(custom_id)[:80]!r}")
        seen.add(str(custom_id))
        yield request


class Counted:
    """The JSONL lines of one file, counted as they pass to the store."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = lines
        self.lines = self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self._lines:
            self.lines, self.bytes = self.lines + 1, self.bytes + len(line)
            yield line
