"""Sidecars: the summary and highlights docproc writes next to each source.

For a source ``x.pdf`` docproc writes two files (suffixes configurable):

* ``x.pdf.summary.md`` for people: provenance front matter, the summary, the
  highlights as quotes with their offsets;
* ``x.pdf.docproc.json`` for programs, in the schema below.

Each concern has its module:

* **Rendering** (:mod:`.render`) (:func:`render_markdown`, :func:`render_json`) is pure and
  deterministic: the same :class:`SidecarContent` always gives the same bytes.
  The time is passed in, never read from the clock, so a sidecar rendered again
  after a crash is byte-identical and its write is a no-op.
* **Planning** (:mod:`.paths`, :func:`plan_paths`) maps a source to its two sidecar paths, next
  to it or mirrored under an output directory, and refuses any path that would
  lead a write out of its root: ``..``, a source outside the root, a directory
  symlink pointing elsewhere, a name the filesystem cannot hold.
* **Writing** (:mod:`.write`, :mod:`.cleanup`, over :mod:`.fs`) touches the disk
  through a descriptor of the target's directory: a hidden temp file
  (``.<name>.<8 hex>.tmp``, skipped by the watcher's ignore rules), fsync,
  rename, fsync of the directory. A crash leaves the old file or the new one,
  never half of one. A file docproc did not write (its sha256 is not among the
  hashes the ledger recorded for that path) is never overwritten or removed.

Errors: :class:`~docproc.errors.SidecarError` when a path is refused,
:class:`~docproc.errors.SidecarConflict` when something docproc did not write is
at the target (the ledger records a conflict); I/O failures (disk full, a
read-only filesystem) propagate as :class:`OSError` from :func:`write_atomic`
and :func:`stage`, leaving no temp file behind, and come back per sidecar from
:func:`commit`; :func:`sweep_temps` removes what a write the disk would not
even let clean up left (at start-up, after the next good write there).

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

from docproc.sidecars.cleanup import Removal, remove_sidecars, remove_stale_temps, sweep_temps
from docproc.sidecars.digest import is_own, markdown_intact
from docproc.sidecars.fs import temp_name
from docproc.sidecars.paths import NAME_MAX, PATH_MAX, SidecarPaths, plan_paths
from docproc.sidecars.reading import read_result
from docproc.sidecars.render import (
    GENERATOR,
    SCHEMA,
    SidecarContent,
    render_json,
    render_markdown,
)
from docproc.sidecars.write import Staged, commit, discard, stage, write_atomic

__all__ = [
    "GENERATOR",
    "NAME_MAX",
    "PATH_MAX",
    "SCHEMA",
    "Removal",
    "SidecarContent",
    "SidecarPaths",
    "Staged",
    "commit",
    "discard",
    "is_own",
    "markdown_intact",
    "plan_paths",
    "read_result",
    "remove_sidecars",
    "remove_stale_temps",
    "render_json",
    "render_markdown",
    "stage",
    "sweep_temps",
    "temp_name",
    "write_atomic",
]
