"""Sidecars: the summary and highlights docproc writes next to each source.

For a source ``x.pdf`` docproc writes two files (suffixes configurable):

* ``x.pdf.summary.md`` for people: provenance front matter, the summary, the
  highlights as quotes with their offsets;
* ``x.pdf.docproc.json`` for programs, in the schema below.

Three separate concerns live here:

* **Rendering** (:func:`render_markdown`, :func:`render_json`) is pure and
  deterministic: the same :class:`SidecarContent` always gives the same bytes.
  The time is passed in, never read from the clock, so a sidecar rendered again
  after a crash is byte-identical and its write is a no-op.
* **Planning** (:func:`plan_paths`) maps a source to its two sidecar paths, next
  to it or mirrored under an output directory, and refuses any path that would
  lead a write out of its root: ``..``, a source outside the root, a directory
  symlink pointing elsewhere, a name the filesystem cannot hold.
* **Writing** (:func:`write_atomic`, :func:`remove_sidecars`) touches the disk
  through a descriptor of the target's directory: a hidden temp file
  (``.<name>.<8 hex>.tmp``, skipped by the watcher's ignore rules), fsync,
  rename, fsync of the directory. A crash leaves the old file or the new one,
  never half of one. A file docproc did not write (its sha256 is not among the
  hashes the ledger recorded for that path) is never overwritten or removed.

Errors: :class:`~docproc.errors.SidecarError` when a path is refused,
:class:`~docproc.errors.SidecarConflict` when something docproc did not write is
at the target (the ledger records a conflict); I/O failures (disk full, a
read-only filesystem) propagate as :class:`OSError`.

JSON schema ``docproc.sidecar/1``
---------------------------------

One UTF-8 object, keys in this order, two-space indent, a trailing newline::

    {
      "schema": "docproc.sidecar/1",
      "source": {
        "path": "/data/inbox/x.pdf",   the source as docproc saw it
        "sha256": "<64 hex>"           the bytes that were summarised
      },
      "summary": "...",
      "highlights": [
        {"quote": "...", "why": "...", "start": 120, "end": 245}
      ],
      "dropped_highlights": 0,
      "reused": false,
      "provider": {"name": "local", "model": "local-extractive-1",
                   "batch_id": "...", "custom_id": "..."},
      "usage": {"input_tokens": 0, "output_tokens": 0,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
      "cost_usd": 0.0,
      "ledger": {"file_id": 1, "version_id": 1, "job_id": 1},
      "generated_at": "2025-01-31T12:00:00Z",
      "generator": "docproc 0.1.0"
    }

* ``highlights[].start`` / ``end``: character (code point) offsets of the quote
  in the text docproc extracted from the source, ``end`` exclusive; ``null``
  when the quote was not located. ``why`` is ``""`` when the provider gave none.
* ``dropped_highlights``: quotes the provider returned that were not found
  verbatim in the text and were left out.
* ``reused``: the result was computed for the same bytes at another path; no
  provider request was made for this one.
* ``cost_usd``: ``null`` when unknown. ``ledger`` ids: ``null`` when unknown.
* ``generated_at``: ISO 8601, the time the result was applied.
* Strings are Unicode; bytes of a file name that are not UTF-8 appear as U+FFFD.
* Readers should ignore keys they do not know: keys may be added within
  ``docproc.sidecar/1``; a change that breaks readers gets ``/2``.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from docproc import __version__
from docproc.errors import SidecarConflict, SidecarError
from docproc.models import SIDECAR_SUFFIXES, Highlight, Usage

SCHEMA = "docproc.sidecar/1"
GENERATOR = f"docproc {__version__}"
NAME_MAX = 255  # bytes in one file name: ext4, xfs, btrfs, APFS, NTFS (in UTF-16 units)
PATH_MAX = 4096  # bytes in a whole path handed to the kernel (Linux)
TEMP_SUFFIX = ".tmp"
_TOKEN_HEX = 8  # hex digits of the random part of a temp name
_TEMP_OVERHEAD = len(".") + len(".") + _TOKEN_HEX + len(TEMP_SUFFIX)
_WRITE_ATTEMPTS = 3  # re-inspections when the target changes under a write
_CHUNK = 1024 * 1024

_SURROGATE = re.compile("[\ud800-\udfff]")
# Outside YAML's printable set (or line breaks in YAML 1.1): escaped in front matter.
_YAML_UNSAFE = re.compile("[\x7f-\x84\x86-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_MD_INLINE = re.compile(r"([\\`*<\[])")
_MD_BLOCK_START = re.compile(r"^(?:[#>+\-=_~|]|\d{1,9}[.)])")


# -- what goes in ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SidecarContent:
    """Everything a pair of sidecars says about one source; nothing is looked up later.

    Attributes:
        source: the source as shown to people (a path or URI).
        sha256: hex sha256 of the source bytes that were summarised.
        summary: the summary text.
        highlights: quotes with their offsets in the extracted text.
        provider: provider name, e.g. ``"local"``.
        model: the model that answered.
        batch_id: the provider's batch id.
        custom_id: the request's custom_id within the batch.
        usage: token counts reported by the provider.
        cost_usd: the request's cost, ``None`` when unknown.
        file_id: ledger id of the file (the location).
        version_id: ledger id of the version (the bytes).
        job_id: ledger id of the job (version and task).
        written_at: ISO 8601 time, passed in so rendering is deterministic.
        reused: the result was made for the same bytes at another path.
        dropped_highlights: quotes left out because they were not found verbatim.
        generator: the program that wrote the sidecar.
    """

    source: str
    sha256: str
    summary: str
    highlights: tuple[Highlight, ...]
    provider: str
    model: str
    batch_id: str
    custom_id: str
    usage: Usage
    cost_usd: float | None
    file_id: int | None
    version_id: int | None
    job_id: int | None
    written_at: str
    reused: bool = False
    dropped_highlights: int = 0
    generator: str = GENERATOR


# -- rendering (pure) -----------------------------------------------------------


def render_json(content: SidecarContent) -> bytes:
    """The ``.docproc.json`` sidecar: schema ``docproc.sidecar/1`` (see the module docstring).

    Args:
        content: what the sidecar says.

    Returns:
        UTF-8 JSON with a trailing newline; the same content gives the same bytes.
    """
    text = json.dumps(_json_document(content), ensure_ascii=False, indent=2, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _json_document(c: SidecarContent) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "source": {"path": _text(c.source), "sha256": c.sha256},
        "summary": _text(c.summary),
        "highlights": [_json_highlight(h) for h in c.highlights],
        "dropped_highlights": c.dropped_highlights,
        "reused": c.reused,
        "provider": {
            "name": _text(c.provider),
            "model": _text(c.model),
            "batch_id": _text(c.batch_id),
            "custom_id": _text(c.custom_id),
        },
        "usage": {
            "input_tokens": c.usage.input_tokens,
            "output_tokens": c.usage.output_tokens,
            "cache_creation_input_tokens": c.usage.cache_creation_input_tokens,
            "cache_read_input_tokens": c.usage.cache_read_input_tokens,
        },
        "cost_usd": c.cost_usd,
        "ledger": {"file_id": c.file_id, "version_id": c.version_id, "job_id": c.job_id},
        "generated_at": c.written_at,
        "generator": c.generator,
    }


def _json_highlight(h: Highlight) -> dict[str, Any]:
    return {"quote": _text(h.quote), "why": _text(h.why), "start": h.start, "end": h.end}


def render_markdown(content: SidecarContent) -> bytes:
    """The ``.summary.md`` sidecar: front matter, summary and highlights for people.

    Front matter values are JSON strings (valid YAML double-quoted scalars), one
    ``key: value`` per line. Document text is escaped so that it cannot open
    Markdown structure (headings, lists, HTML, links) of its own.

    Args:
        content: what the sidecar says.

    Returns:
        UTF-8 Markdown with a trailing newline; the same content gives the same bytes.
    """
    parts = [
        _front_matter(content),
        f"# Summary of {_md_inline(_display_name(content.source))}",
        _md_block(content.summary) or "_No summary._",
        "## Highlights",
        *_md_highlights(content.highlights),
    ]
    if content.dropped_highlights:
        parts.append(_dropped_note(content.dropped_highlights))
    return ("\n\n".join(parts) + "\n").encode("utf-8")


def _front_matter(c: SidecarContent) -> str:
    fields = [
        ("source", _yaml_str(c.source)),
        ("sha256", _yaml_str(c.sha256)),
        ("provider", _yaml_str(c.provider)),
        ("model", _yaml_str(c.model)),
        ("batch", _yaml_str(c.batch_id)),
        ("custom_id", _yaml_str(c.custom_id)),
        ("generated_at", _yaml_str(c.written_at)),
        ("generator", _yaml_str(c.generator)),
        ("reused", "true" if c.reused else "false"),
    ]
    return "\n".join(["---", *(f"{key}: {value}" for key, value in fields), "---"])


def _md_highlights(highlights: tuple[Highlight, ...]) -> list[str]:
    if not highlights:
        return ["_No highlights._"]
    return [_md_highlight(h) for h in highlights]


def _md_highlight(h: Highlight) -> str:
    quote = _md_block(h.quote) or "…"
    lines = [("- > " if i == 0 else "  > ") + line if line else "  >"
             for i, line in enumerate(quote.split("\n"))]  # fmt: skip
    where = f"chars {h.start}\u2013{h.end}" if h.start is not None and h.end is not None else ""
    why = _md_inline(" ".join(_text(h.why).split()))
    note = " · ".join(part for part in (where, why) if part)
    if note:
        lines += ["", f"  {note}"]
    return "\n".join(lines)


def _dropped_note(count: int) -> str:
    noun = "highlight was" if count == 1 else "highlights were"
    return f"_{count} {noun} left out: not found verbatim in the source._"


def _text(value: str) -> str:
    """``value`` with lone surrogates (undecodable file-name bytes) as U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


def _yaml_str(value: str) -> str:
    """A one-line double-quoted scalar that YAML and JSON parsers both read back."""
    quoted = json.dumps(_text(value), ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _display_name(source: str) -> str:
    name = source.rstrip("/").rpartition("/")[2]
    return name or source


def _md_inline(text: str) -> str:
    """Backslash-escape what could start code, emphasis, HTML or a link."""
    return _MD_INLINE.sub(r"\\\1", _text(text))


def _md_block(text: str) -> str:
    """Paragraphs of plain text: lines stripped, line-leading Markdown neutralised."""
    lines = [_md_line(line.strip()) for line in _text(text).strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n")


def _md_line(line: str) -> str:
    """One line of text that cannot start a heading, list, quote, rule or table."""
    line = _md_inline(line)
    match = _MD_BLOCK_START.match(line)
    if match is None:
        return line
    cut = match.end() - 1  # escape the marker: "#" -> "\#", "1." -> "1\."
    return line[:cut] + "\\" + line[cut:]


# -- planning -------------------------------------------------------------------


class SidecarPaths(NamedTuple):
    """Where the two sidecars of one source go."""

    markdown: Path
    json: Path


def plan_paths(
    source: Path,
    root: Path,
    *,
    summary_suffix: str = SIDECAR_SUFFIXES[0],
    json_suffix: str = SIDECAR_SUFFIXES[1],
    output_dir: Path | None = None,
) -> SidecarPaths:
    """The sidecar paths of ``source``, proven to stay inside their base directory.

    The base is ``root`` (sidecars next to the source) or ``output_dir`` (the
    source's root-relative path mirrored there, for read-only sources). Pass the
    same base as ``within`` to :func:`write_atomic`.

    Args:
        source: the source file: absolute and under ``root``, or relative to it.
        root: the watched root the source belongs to.
        summary_suffix: appended to the source's name for the Markdown sidecar.
        json_suffix: appended to the source's name for the JSON sidecar.
        output_dir: mirror sidecars under this directory instead of the root.

    Returns:
        The Markdown and JSON sidecar paths (a named 2-tuple).

    Raises:
        SidecarError: ``..`` in the source, a source outside the root, a bad
            suffix, a directory symlink leading out of the base, or a name or
            path too long for the filesystem.
    """
    _check_suffixes(summary_suffix, json_suffix)
    root_abs = _absolute(root)
    base = _absolute(output_dir) if output_dir is not None else root_abs
    rel = _relative_to_root(source, root_abs)
    parent = base.joinpath(*rel.parts[:-1])
    paths = SidecarPaths(parent / (rel.name + summary_suffix), parent / (rel.name + json_suffix))
    for path in paths:
        _check_length(path)
    _check_inside(parent, base)
    return paths


def _absolute(path: Path) -> Path:
    """``path`` made absolute and normalised, symlinks not resolved (they are checked)."""
    return Path(os.path.abspath(path))  # noqa: PTH100 - resolve() would follow links


def _check_suffixes(*suffixes: str) -> None:
    for suffix in suffixes:
        if not suffix or "/" in suffix or os.sep in suffix or "\0" in suffix:
            raise SidecarError(f"invalid sidecar suffix {suffix!r}: empty or has a separator")
    if len(set(suffixes)) != len(suffixes):
        raise SidecarError(f"sidecar suffixes must differ: {suffixes!r}")


def _relative_to_root(source: Path, root: Path) -> Path:
    """``source`` relative to ``root``, refusing anything that could climb out."""
    if "\0" in str(source):
        raise SidecarError(f"refusing a source path with a NUL byte: {source!r}")
    if ".." in source.parts:
        raise SidecarError(f"refusing a source path with '..': {source}")
    if not source.is_absolute():
        rel = source
    elif source.is_relative_to(root):
        rel = source.relative_to(root)
    else:
        raise SidecarError(f"source {source} is outside its root {root}")
    if not rel.parts:
        raise SidecarError(f"source {source} is the root itself, not a file in it")
    return rel


def _check_length(path: Path) -> None:
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise SidecarError(
            f"sidecar name too long for the filesystem: {len(os.fsencode(path.name))} bytes"
            f" (limit {NAME_MAX}) for {path}"
        )
    if len(os.fsencode(path)) >= PATH_MAX:
        raise SidecarError(f"sidecar path too long for the filesystem (limit {PATH_MAX}): {path}")


def _check_inside(directory: Path, base: Path) -> None:
    """Refuse ``directory`` if, symlinks resolved, it is not inside ``base``."""
    real_base = os.path.realpath(base)
    real_dir = os.path.realpath(directory)
    if not _inside(real_dir, real_base):
        raise SidecarError(
            f"refusing to write outside {base}: {directory} leads to {real_dir}"
            " (a symbolic link points out of it)"
        )


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


# -- writing --------------------------------------------------------------------


class _Found(NamedTuple):
    """A regular file at the target: its hash and identity when inspected."""

    sha256: str
    identity: tuple[int, int, int, int]  # device, inode, size, mtime_ns


def write_atomic(
    target: Path,
    data: bytes,
    *,
    expected_existing: Collection[str],
    within: Path | None = None,
    make_parents: bool = False,
) -> str:
    """Write ``data`` at ``target`` atomically, never over a file docproc did not write.

    If ``target`` already holds ``data``, nothing is written (a rewrite after a
    crash is a no-op). Otherwise a temp file in the same directory is written,
    fsynced and renamed onto ``target``, and the directory is fsynced. A new file
    is linked into place (no-clobber), so a file a user creates meanwhile is not
    replaced either.

    Args:
        target: the sidecar path, as planned by :func:`plan_paths`.
        data: the rendered sidecar.
        expected_existing: sha256 hashes of what docproc wrote at ``target``
            before (from the ledger); only such a file may be replaced.
        within: the base directory (root or output directory); when given, the
            directory actually opened is checked to lie inside it.
        make_parents: create missing parent directories (the output-directory
            mirror); requires ``within``.

    Returns:
        The sha256 hex digest of ``data``, to record in the ledger.

    Raises:
        SidecarConflict: the target is a file docproc did not write, a symlink,
            or something other than a regular file.
        SidecarError: the directory is outside ``within`` or a name is too long.
        OSError: the write failed (disk full, permissions, read-only filesystem).
    """
    digest = hashlib.sha256(data).hexdigest()
    try:
        if make_parents:
            _make_parents(target.parent, within)
        with _open_dir(target.parent, within) as dir_fd:
            for _ in range(_WRITE_ATTEMPTS):
                found = _inspect(dir_fd, target)
                if found is not None and found.sha256 == digest:
                    return digest
                if found is not None and found.sha256 not in expected_existing:
                    raise SidecarConflict(str(target), found.sha256, _NOT_OURS)
                if _install(dir_fd, target.name, data, found):
                    _fsync_dir(dir_fd)
                    return digest
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise SidecarError(f"sidecar name too long for the filesystem: {target}") from exc
        raise
    raise SidecarConflict(str(target), None, "the file kept changing while docproc wrote it")


_NOT_OURS = "a file docproc did not write is there; it is left untouched"


# -- batched writing: the same guarantees, one filesystem sync per chunk -------------


@dataclass(frozen=True, slots=True)
class Staged:
    """A sidecar written to its temp file, not yet durable nor in place."""

    target: Path
    tmp: str
    found: _Found | None
    digest: str
    within: Path | None


def stage(
    target: Path,
    data: bytes,
    *,
    expected_existing: Collection[str],
    within: Path | None = None,
    make_parents: bool = False,
) -> Staged | None:
    """First half of a batched :func:`write_atomic`: the same checks, then the temp file.

    Returns ``None`` when ``target`` already holds ``data``. Nothing is synced
    and nothing is in place until :func:`commit`.

    Raises:
        SidecarConflict, SidecarError, OSError: as :func:`write_atomic`.
    """
    digest = hashlib.sha256(data).hexdigest()
    try:
        if make_parents:
            _make_parents(target.parent, within)
        with _open_dir(target.parent, within) as dir_fd:
            found = _inspect(dir_fd, target)
            if found is not None and found.sha256 == digest:
                return None
            if found is not None and found.sha256 not in expected_existing:
                raise SidecarConflict(str(target), found.sha256, _NOT_OURS)
            tmp = temp_name(target.name)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o666, dir_fd=dir_fd)
            try:
                try:
                    _write_all(fd, data)
                finally:
                    os.close(fd)
            except OSError:  # disk full, I/O error: no temp file is left behind
                _unlink_quietly(dir_fd, tmp)
                raise
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise SidecarError(f"sidecar name too long for the filesystem: {target}") from exc
        raise
    return Staged(target, tmp, found, digest, within)


def commit(staged: Sequence[Staged]) -> list[SidecarError | OSError | None]:
    """Second half: make every temp file durable with one sync per filesystem, put
    each in place (no clobber; over docproc's own file only if it is unchanged),
    then sync the directory entries. Temp files are always removed (when the
    directory can still be written). Never raises.

    Returns:
        For each staged sidecar: ``None`` (in place and durable); the
        :class:`SidecarConflict` (or :class:`SidecarError`) that stopped it; or
        the ``OSError`` of a failed sync or rename (disk full, read-only, I/O
        error): not in place, or not known to be durable (a retry finds its
        own bytes and only records them).
    """
    outcome: list[SidecarError | OSError | None] = [None] * len(staged)
    groups = _by_directory(staged)
    unsynced = _sync_filesystems([directory for directory, _ in groups])
    for (directory, within), members in groups.items():
        error: OSError | SidecarError | None = unsynced.get(directory)
        if error is None:
            try:
                with _open_dir(directory, within) as dir_fd:
                    for index, item in members:
                        outcome[index] = _placed(dir_fd, item)
                continue
            except (OSError, SidecarError) as exc:
                error = exc
        discard([item for _, item in members])
        for index, _ in members:
            outcome[index] = outcome[index] or error
    unsynced = _sync_filesystems([directory for directory, _ in groups])  # the new entries
    for (directory, _), members in groups.items():
        for index, _ in members:
            outcome[index] = outcome[index] or unsynced.get(directory)
    return outcome


def _placed(dir_fd: int, item: Staged) -> SidecarError | OSError | None:
    try:
        if _place(dir_fd, item):
            return None
    except OSError as exc:
        return exc
    return SidecarConflict(str(item.target), None, "the file changed while docproc wrote it")


def _by_directory(
    staged: Sequence[Staged],
) -> dict[tuple[Path, Path | None], list[tuple[int, Staged]]]:
    groups: dict[tuple[Path, Path | None], list[tuple[int, Staged]]] = {}
    for index, item in enumerate(staged):
        groups.setdefault((item.target.parent, item.within), []).append((index, item))
    return groups


def _place(dir_fd: int, item: Staged) -> bool:
    """Link or rename one staged temp file into place; the temp file is always removed."""
    try:
        if item.found is None:
            return _link_new(dir_fd, item.tmp, item.target.name)
        return _replace_ours(dir_fd, item.tmp, item.target.name, item.found)
    finally:
        _unlink_quietly(dir_fd, item.tmp)


def discard(staged: Sequence[Staged]) -> None:
    """Drop staged temp files that will not be committed (quietly: the disk may be failing)."""
    for item in staged:
        with suppress(OSError):
            (item.target.parent / item.tmp).unlink()


def _sync_filesystems(directories: Sequence[Path]) -> dict[Path, OSError]:
    """One syncfs(2) per filesystem holding these directories (os.sync() where absent).

    Returns:
        The directories whose filesystem could not be synced (or that could
        not be opened), with the error.
    """
    synced: dict[int, OSError | None] = {}
    failed: dict[Path, OSError] = {}
    for directory in dict.fromkeys(directories):
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            failed[directory] = exc
            continue
        try:
            device = os.fstat(fd).st_dev
            if device not in synced:
                synced[device] = _try_syncfs(fd)
        finally:
            os.close(fd)
        if (error := synced[device]) is not None:
            failed[directory] = error
    return failed


def _try_syncfs(fd: int) -> OSError | None:
    try:
        _syncfs(fd)
    except OSError as exc:
        return exc
    return None


def _syncfs(fd: int) -> None:
    if _LIBC_SYNCFS is None:
        os.sync()
        return
    if _LIBC_SYNCFS(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    except OSError:
        return None


_LIBC_SYNCFS = _load_syncfs()


def _make_parents(directory: Path, within: Path | None) -> None:
    if within is None:
        raise SidecarError("make_parents needs the base directory (within)")
    _check_inside(directory, within)
    directory.mkdir(parents=True, exist_ok=True)


@contextmanager
def _open_dir(directory: Path, within: Path | None) -> Iterator[int]:
    """A descriptor of ``directory``; every later step works relative to it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if within is not None:
            real = _fd_path(fd) or os.path.realpath(directory)
            if not _inside(real, _realpath(str(within))):
                raise SidecarError(f"refusing to write outside {within}: {directory} is {real}")
        yield fd
    finally:
        os.close(fd)


@lru_cache(maxsize=256)
def _realpath(base: str) -> str:
    """The real path of a base directory (a watched root), resolved once.

    Safe to cache: a root swapped for a symlink afterwards makes the opened
    directory's real path differ from this one, and the write is refused.
    """
    return os.path.realpath(base)


def _fd_path(fd: int) -> str | None:
    """Where an open directory really is (Linux ``/proc``), closing the check/use race."""
    try:
        return str(Path(f"/proc/self/fd/{fd}").readlink())
    except OSError:
        return None


def _inspect(dir_fd: int, target: Path) -> _Found | None:
    """What is at ``target`` now: nothing, or a regular file's hash and identity."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(target.name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise SidecarConflict(str(target), None, "a symbolic link is there") from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SidecarConflict(str(target), None, "something other than a regular file is there")
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        return _Found(_hash_fd(fd), identity)
    finally:
        os.close(fd)


def _hash_fd(fd: int) -> str:
    digest = hashlib.sha256()
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _install(dir_fd: int, name: str, data: bytes, found: _Found | None) -> bool:
    """Put ``data`` at ``name`` through a temp file; False if the target changed meanwhile."""
    tmp = temp_name(name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o666, dir_fd=dir_fd)  # fmt: skip
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if found is None:
            return _link_new(dir_fd, tmp, name)
        return _replace_ours(dir_fd, tmp, name, found)
    finally:
        _unlink_quietly(dir_fd, tmp)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _link_new(dir_fd: int, tmp: str, name: str) -> bool:
    """Link the temp file in as ``name`` only if nothing is there (no clobber)."""
    try:
        os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:  # no hard links here (FAT, some FUSE and SMB mounts)
        if exc.errno not in _NO_LINKS:
            raise
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return True


_NO_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}
)


def _replace_ours(dir_fd: int, tmp: str, name: str, found: _Found) -> bool:
    """Rename over ``name`` if it is still the file inspected (docproc's own)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns) != found.identity:
        return False
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return True


def _unlink_quietly(dir_fd: int, name: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def _fsync_dir(dir_fd: int) -> None:
    try:
        os.fsync(dir_fd)
    except OSError as exc:  # some filesystems cannot fsync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def temp_name(name: str) -> str:
    """A fresh temp name for ``name``: ``.<name>.<8 hex>.tmp``, within ``NAME_MAX``.

    Hidden and ending in ``.tmp``, so the watcher's ignore rules skip it. A long
    ``name`` is cut (by bytes) so the temp name always fits where ``name`` does.
    """
    return _temp_prefix(name) + secrets.token_hex(_TOKEN_HEX // 2) + TEMP_SUFFIX


def _temp_prefix(name: str) -> str:
    raw = os.fsencode(name)[: NAME_MAX - _TEMP_OVERHEAD]
    return "." + os.fsdecode(raw) + "."


def _is_temp_of(entry: str, name: str) -> bool:
    prefix = _temp_prefix(name)
    token = entry[len(prefix) : -len(TEMP_SUFFIX)]
    return (
        entry.startswith(prefix)
        and entry.endswith(TEMP_SUFFIX)
        and len(entry) == len(prefix) + _TOKEN_HEX + len(TEMP_SUFFIX)
        and all(ch in "0123456789abcdef" for ch in token)
    )


def remove_stale_temps(target: Path) -> int:
    """Remove temp files an interrupted write of ``target`` left; run at recovery.

    Only regular files named like :func:`temp_name` of ``target`` are removed.

    Returns:
        How many were removed.
    """
    removed = 0
    try:
        entries = list(os.scandir(target.parent))
    except OSError:  # gone, or not readable: nothing can be removed there now
        return 0
    for entry in entries:
        if _is_temp_of(entry.name, target.name) and entry.is_file(follow_symlinks=False):
            try:
                Path(entry.path).unlink()
            except OSError:  # gone, or a read-only folder: swept after the next good write
                continue
            removed += 1
    return removed


def sweep_temps(directory: Path, suffixes: Collection[str]) -> int:
    """Remove the temp files failed or interrupted sidecar writes left in ``directory``.

    For when a write failed and its temp file could not be removed at once
    (the disk went read-only, an I/O error): run at start-up and after the next
    successful write in that folder. Only regular files named like
    :func:`temp_name` of a sidecar (a name ending in one of ``suffixes``, or cut
    to fit ``NAME_MAX``) are removed.

    Returns:
        How many were removed.
    """
    removed = 0
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if e.is_file(follow_symlinks=False)]
    except OSError:
        return 0
    for name in names:
        if _is_sidecar_temp(name, suffixes):
            try:
                (directory / name).unlink()
            except OSError:
                continue
            removed += 1
    return removed


def _is_sidecar_temp(entry: str, suffixes: Collection[str]) -> bool:
    if not (entry.startswith(".") and entry.endswith(TEMP_SUFFIX)):
        return False
    stem = entry[1 : -len(TEMP_SUFFIX)]
    name, dot, token = stem.rpartition(".")
    if not dot or len(token) != _TOKEN_HEX or any(c not in "0123456789abcdef" for c in token):
        return False
    cut = len(os.fsencode(name)) >= NAME_MAX - _TEMP_OVERHEAD - 3  # cut to fit: suffix may be gone
    return cut or any(name.endswith(suffix) for suffix in suffixes)


# -- removing -------------------------------------------------------------------


class Removal(NamedTuple):
    """What :func:`remove_sidecars` did; absent paths are in neither list."""

    removed: list[Path]
    kept: list[Path]  # changed by someone, or not a regular file: left alone


def remove_sidecars(
    paths: Iterable[Path], expected: Collection[str], *, within: Path | None = None
) -> Removal:
    """Delete sidecars whose content is still what docproc wrote.

    For the "delete sidecars with the source" option: a sidecar a person edited
    (its hash is no longer one docproc recorded) is kept.

    Args:
        paths: the sidecar paths, as planned by :func:`plan_paths`.
        expected: sha256 hashes of what docproc wrote at those paths.
        within: the base directory; when given, each directory is checked to lie in it.

    Returns:
        Which paths were removed and which were kept.
    """
    result = Removal([], [])
    for path in paths:
        try:
            with _open_dir(path.parent, within) as dir_fd:
                if _remove_if_ours(dir_fd, path, expected):
                    result.removed.append(path)
        except FileNotFoundError:
            continue
        except SidecarError:
            result.kept.append(path)
    return result


def _remove_if_ours(dir_fd: int, path: Path, expected: Collection[str]) -> bool:
    found = _inspect(dir_fd, path)
    if found is None:
        return False
    if found.sha256 not in expected:
        raise SidecarConflict(str(path), found.sha256, "changed since docproc wrote it; kept")
    os.unlink(path.name, dir_fd=dir_fd)
    return True
