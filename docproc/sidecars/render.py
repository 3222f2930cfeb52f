"""Rendering sidecars: pure and deterministic.

The same :class:`SidecarContent` always gives the same bytes. The time is
passed in, never read from the clock, so a sidecar rendered again after a
crash is byte-identical and its write is a no-op.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from docproc import __version__
from docproc.models import Highlight, Usage
from docproc.sidecars.digest import digest_line, seal_json

SCHEMA = "docproc.sidecar/1"
GENERATOR = f"docproc {__version__}"

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
        task: fingerprint of the task (prompt, model, ...) the result answers.
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
    task: str = ""  # the task fingerprint the result answers


# -- rendering (pure) -----------------------------------------------------------


def render_json(content: SidecarContent) -> bytes:
    """The ``.docproc.json`` sidecar: schema ``docproc.sidecar/1`` (see the package docstring).

    Args:
        content: what the sidecar says.

    Returns:
        UTF-8 JSON with a trailing newline, sealed with its digest
        (:mod:`~docproc.sidecars.digest`); the same content gives the same bytes.
    """
    return seal_json(_json_document(content))


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
        "task": c.task,
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
        UTF-8 Markdown with a trailing newline, sealed with its digest (the last
        front-matter line); the same content gives the same bytes.
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
    unsealed = ("\n\n".join(parts) + "\n").encode("utf-8")
    closing = unsealed.index(b"\n---\n") + 1  # the front matter's closing line
    return unsealed[:closing] + digest_line(unsealed) + unsealed[closing:]


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
        ("task", _yaml_str(c.task)),
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
