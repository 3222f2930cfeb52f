"""Adopt: docproc's own sidecars already next to a document, found by a ledger that
has no record of them (a new or rebuilt state directory).

Runs before jobs are made for newly extracted versions. For a version no job
was ever made for, each live local file holding it is checked for sidecars at
the planned paths: a JSON sidecar whose digest still matches and that
summarised exactly these bytes is recorded as the job's result (nothing is
sent to the provider again); its Markdown sibling is recorded too when it is
untouched. A sidecar a person edited is not adopted and is never overwritten:
the version then goes the normal way, and the edited file is a conflict.

The same reading serves ``docproc ledger import-sidecars``
(:func:`read_sidecars`), which rebuilds the record from sidecars found anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from docproc.errors import SidecarError
from docproc.ledger import file_uri, uri_path
from docproc.ledger_imports import Adoption, ImportLedger, Unclaimed
from docproc.models import ImportedResult, SidecarSettings
from docproc.sidecars import markdown_intact, plan_paths, read_result
from docproc.sidecars.digest import MAX_SIDECAR_BYTES

log = structlog.get_logger()
PER_TICK = 1000


@dataclass(frozen=True, slots=True)
class FoundSidecars:
    """What the sidecars of one source say, and which of them are untouched."""

    result: ImportedResult
    files: tuple[tuple[Path, str], ...]  # (path, sha256) of each untouched sidecar


def read_sidecars(json_path: Path, markdown_path: Path) -> FoundSidecars | None:
    """The result in an untouched JSON sidecar, with every untouched sidecar of the pair.

    None when the JSON sidecar is missing, unreadable, edited or not docproc's.
    """
    data = _read(json_path)
    result = read_result(data) if data is not None else None
    if data is None or result is None:
        return None
    files = [(json_path, hashlib.sha256(data).hexdigest())]
    markdown = _read(markdown_path)
    if markdown is not None and markdown_intact(markdown):
        files.append((markdown_path, hashlib.sha256(markdown).hexdigest()))
    return FoundSidecars(result, tuple(files))


def _read(path: Path) -> bytes | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SIDECAR_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_SIDECAR_BYTES else None


class Adopter:
    """Records docproc's own sidecars found next to new versions as their results."""

    def __init__(self, imports: ImportLedger, *, settings: SidecarSettings) -> None:
        self.imports, self.settings = imports, settings

    def tick(self, root_ids: Sequence[int]) -> int:
        """Look at up to ``PER_TICK`` unclaimed versions; returns how many were adopted."""
        adoptions = []
        for row in self.imports.unclaimed(root_ids, PER_TICK):
            adoptions += self._adoptions(row)
        if not adoptions:
            return 0
        adopted = self.imports.adopt(adoptions)
        log.info("sidecars.adopted", files=adopted)
        return adopted

    def _adoptions(self, version: Unclaimed) -> list[Adoption]:
        found = []
        for file_id, uri, root_uri in version.files:
            sidecars = self._found(uri, root_uri)
            if sidecars is not None and sidecars.result.sha256 == version.sha256:
                targets = [(file_uri(path), sha) for path, sha in sidecars.files]
                found.append(Adoption(file_id, version.version_id, sidecars.result, targets))
        return found

    def _found(self, uri: str, root_uri: str) -> FoundSidecars | None:
        try:
            paths = plan_paths(
                uri_path(uri), uri_path(root_uri), summary_suffix=self.settings.summary_suffix,
                json_suffix=self.settings.json_suffix, output_dir=self.settings.output_dir,
            )  # fmt: skip
        except SidecarError:
            return None
        return read_sidecars(paths.json, paths.markdown)


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
    root_id = imports.ledger.ensure_root(file_uri(root or (top if top.is_dir() else top.parent)),
                                         kind="local", mode="import")  # fmt: skip
    path = source or Path(found.result.source)
    info = source.stat() if source is not None and held == found.result.sha256 else None
    file_id, version_id = imports.record_source(  # size 0: the daemon hashes it again
        root_id, path, found.result.sha256, size=info.st_size if info else 0,
        mtime_ns=info.st_mtime_ns if info else 0, present=source is not None,
    )  # fmt: skip
    targets = [(file_uri(p), sha) for p, sha in found.files]
    if imports.adopt([Adoption(file_id, version_id, found.result, targets)], how="imported"):
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
