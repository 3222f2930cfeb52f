"""Adopt: docproc's own sidecars already next to a document, found by a ledger that
has no record of them (a new or rebuilt state directory).

Runs before jobs are made for newly extracted versions. For a version no job
was ever made for, each live file holding it is checked for sidecars at the
planned places (next to a local file, or the sidecar objects of an S3
object): a JSON sidecar whose digest still matches and that summarised
exactly these bytes is recorded as the job's result (nothing is sent to the
provider again); its Markdown sibling is recorded too when it is untouched.
A sidecar a person edited is not adopted and is never overwritten: the
version then goes the normal way, and the edited file is a conflict. When an
S3 root's sidecar objects cannot be read for now (throttled, unavailable,
the network), no jobs are made under that root until a later look (every
``RETRY_S``) succeeds: a document is not paid for again because its sidecar
was out of reach for a moment. A read refused for good (access denied) is
taken as no sidecar, with a warning: the document is summarised again.

The same reading serves ``docproc ledger import-sidecars``
(:func:`read_sidecars`), which rebuilds the record from sidecars found anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog

from docproc.errors import ObjectStoreError, SidecarError
from docproc.ledger.imports import Adoption, ImportLedger, Unclaimed
from docproc.ledger.uris import file_uri, uri_path
from docproc.models import ImportedResult, SidecarSettings, object_key
from docproc.sidecar_objects import ObjectSidecars
from docproc.sidecars import markdown_intact, plan_paths, read_result
from docproc.sidecars.digest import MAX_SIDECAR_BYTES

log = structlog.get_logger()
PER_PAGE = 1000  # unclaimed versions looked at per query
OBJECT_READERS = 8  # concurrent sidecar GETs from S3
RETRY_S = 10.0  # a root whose sidecar objects could not be read is looked at again after


@dataclass(frozen=True, slots=True)
class FoundSidecars:
    """What the sidecars of one source say, and which of them are untouched."""

    result: ImportedResult
    files: tuple[tuple[str, str], ...]  # (URI, sha256) of each untouched sidecar


def read_sidecars(json_path: Path, markdown_path: Path) -> FoundSidecars | None:
    """The result in an untouched JSON sidecar file, with every untouched sidecar of the
    pair; None when the JSON sidecar is missing, unreadable, edited or not docproc's."""
    return _judge(file_uri(json_path), _read(json_path), file_uri(markdown_path),
                  lambda: _read(markdown_path))  # fmt: skip


def _judge(
    json_uri: str, data: bytes | None, markdown_uri: str, markdown: Callable[[], bytes | None]
) -> FoundSidecars | None:
    """Judge a JSON sidecar's bytes, then (only if it is docproc's) its Markdown sibling's."""
    result = read_result(data) if data is not None else None
    if data is None or result is None:
        return None
    files = [(json_uri, hashlib.sha256(data).hexdigest())]
    text = markdown()
    if text is not None and markdown_intact(text):
        files.append((markdown_uri, hashlib.sha256(text).hexdigest()))
    return FoundSidecars(result, tuple(files))


def _read(path: Path) -> bytes | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SIDECAR_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_SIDECAR_BYTES else None


# One live file of an unclaimed version: (version, file id, file URI, root id, root URI).
_Holder = tuple[Unclaimed, int, str, int, str]


class Adopter:
    """Records docproc's own sidecars found next to new versions as their results."""

    def __init__(self, imports: ImportLedger, *, settings: SidecarSettings) -> None:
        self.imports, self.settings = imports, settings
        self._object_roots: dict[str, ObjectSidecars] = {}
        self._retry_at: dict[int, float] = {}  # root id -> when to read its sidecars again

    def add_object_root(self, root_uri: str, sink: ObjectSidecars) -> None:
        """Sidecar objects of sources under the S3 root ``root_uri`` are read through ``sink``."""
        self._object_roots[root_uri] = sink

    def remove_object_root(self, root_uri: str) -> None:
        self._object_roots.pop(root_uri, None)

    def tick(self, root_ids: Sequence[int], now: float) -> set[int]:
        """Look at every unclaimed version under ``root_ids`` and adopt what its files'
        sidecars show; returns the roots whose sidecars could not be read for now
        (``now``: a monotonic reading), under which no job should be made yet."""
        waiting = {root for root in root_ids if now < self._retry_at.get(root, 0.0)}
        looked = [root for root in root_ids if root not in waiting]
        held: set[int] = set()
        adopted, after = 0, 0
        while page := self.imports.unclaimed(looked, PER_PAGE, after=after):
            adoptions, failed = self._adoptions(page)
            held |= failed
            if adoptions:
                adopted += self.imports.adopt(adoptions)
            after = page[-1].version_id
        if adopted:
            log.info("sidecars.adopted", files=adopted)
        for root in looked:
            if root in held:
                self._retry_at[root] = now + RETRY_S
            else:
                self._retry_at.pop(root, None)
        return held | waiting

    def _adoptions(self, page: list[Unclaimed]) -> tuple[list[Adoption], set[int]]:
        holders = [(v, *f) for v in page for f in v.files]
        local = [h for h in holders if h[2].startswith("file://")]
        remote = [h for h in holders if h[2].startswith("s3://")]
        found = [(h, self._found_file(h[2], h[4])) for h in local]
        held: set[int] = set()
        if remote:
            with ThreadPoolExecutor(OBJECT_READERS, thread_name_prefix="docproc-get") as pool:
                for holder, outcome in zip(remote, pool.map(self._found_object, remote),
                                           strict=True):  # fmt: skip
                    if isinstance(outcome, ObjectStoreError):
                        log.warning("sidecars.unreadable", uri=holder[2], error=str(outcome))
                        held.add(holder[3])
                    else:
                        found.append((holder, outcome))
        adoptions = [
            Adoption(file_id, version.version_id, sidecars.result, sidecars.files)
            for (version, file_id, *_), sidecars in found
            if sidecars is not None and sidecars.result.sha256 == version.sha256
        ]
        return adoptions, held

    def _found_file(self, uri: str, root_uri: str) -> FoundSidecars | None:
        try:
            paths = plan_paths(
                uri_path(uri), uri_path(root_uri), summary_suffix=self.settings.summary_suffix,
                json_suffix=self.settings.json_suffix, output_dir=self.settings.output_dir,
            )  # fmt: skip
        except SidecarError:
            return None
        return read_sidecars(paths.json, paths.markdown)

    def _found_object(self, holder: _Holder) -> FoundSidecars | ObjectStoreError | None:
        """The sidecar objects of one S3 object (on a reader thread: no ledger here)."""
        _, _, uri, _, root_uri = holder
        sink = self._object_roots.get(root_uri)
        if sink is None:
            return None  # the root is not watched now
        try:
            keys = sink.plan(object_key(uri)[1])
            return _judge(sink.uri(keys.json), sink.read(keys.json), sink.uri(keys.markdown),
                          lambda: sink.read(keys.markdown))  # fmt: skip
        except SidecarError:
            return None
        except ObjectStoreError as exc:
            if exc.retryable:
                return exc
            log.warning("sidecars.unreadable", uri=uri, error=str(exc), adopted=False)
            return None


# -- docproc ledger import-sidecars ----------------------------------------------


@dataclass
class ImportReport:
    """What an import found and recorded."""

    sidecars: int = 0  # JSON sidecars looked at
    recorded: int = 0  # files whose result was recorded
    known: int = 0  # already in the ledger
    refused: int = 0  # edited, unreadable or not docproc's: left alone
    cost_usd: float = 0.0  # of the requests recorded


def import_sidecars(
    imports: ImportLedger,
    paths: Sequence[Path],
    *,
    settings: SidecarSettings,
    watched: Sequence[Path] = (),
) -> ImportReport:
    """Record the results held by docproc's own sidecars under ``paths``.

    Each source is looked for where its sidecar says it was, then next to the
    sidecar; a source that still holds the summarised bytes is recorded
    present (its text is extracted again by the daemon, nothing is sent),
    one that is gone is recorded deleted, with its history. A source is
    filed under the watched folder holding it, else under the PATH given.
    """
    report = ImportReport()
    for top in paths:
        top = Path(top).absolute()
        for json_path in _sidecar_files(top, settings.json_suffix):
            report.sidecars += 1
            _import_one(imports, json_path, top, settings, watched, report)
    return report


def _sidecar_files(top: Path, suffix: str) -> list[Path]:
    if top.is_file():
        return [top] if top.name.endswith(suffix) else []
    return sorted(p for p in top.rglob(f"*{suffix}") if p.is_file() and not p.is_symlink())


def _import_one(
    imports: ImportLedger,
    json_path: Path,
    top: Path,
    settings: SidecarSettings,
    watched: Sequence[Path],
    report: ImportReport,
) -> None:
    stem = json_path.name[: -len(settings.json_suffix)]
    found = read_sidecars(json_path, json_path.with_name(stem + settings.summary_suffix))
    if found is None:
        report.refused += 1
        return
    if imports.known_request(found.result.custom_id):
        report.known += 1
        return
    source = _source(Path(found.result.source), json_path.with_name(stem))
    held = _hash(source) if source is not None else None
    root = next((w for w in watched if (source or json_path).is_relative_to(w)), None)
    root_id = imports.files.ensure_root(file_uri(root or (top if top.is_dir() else top.parent)),
                                         kind="local", mode="import")  # fmt: skip
    path = source or Path(found.result.source)
    info = source.stat() if source is not None and held == found.result.sha256 else None
    file_id, version_id = imports.record_source(  # size 0: the daemon hashes it again
        root_id, path, found.result.sha256, size=info.st_size if info else 0,
        mtime_ns=info.st_mtime_ns if info else 0, present=source is not None,
    )  # fmt: skip
    if imports.adopt([Adoption(file_id, version_id, found.result, found.files)], how="imported"):
        report.recorded += 1
        report.cost_usd += found.result.cost_usd or 0.0
    else:
        report.known += 1


def _source(recorded: Path, beside: Path) -> Path | None:
    for candidate in (recorded, beside):
        if candidate.is_absolute() and candidate.is_file():
            return candidate
    return None


def _hash(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()
