"""Reading a result back from docproc's own JSON sidecar (for a ledger that lost it)."""

from __future__ import annotations

import re
from typing import Any

from docproc.models import Highlight, ImportedResult, Usage
from docproc.sidecars.digest import open_json
from docproc.sidecars.render import SCHEMA

_SHA256 = re.compile(r"[0-9a-f]{64}")
_USAGE_KEYS = (
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
)  # fmt: skip


def read_result(data: bytes) -> ImportedResult | None:
    """The result an untouched ``.docproc.json`` sidecar holds; None for anything else
    (edited, another schema, not docproc's, written before sidecars carried their task)."""
    document = open_json(data)
    if document is None or document.get("schema") != SCHEMA:
        return None
    try:
        return _result(document)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _result(doc: dict[str, Any]) -> ImportedResult | None:
    source, provider, usage = doc["source"], doc["provider"], doc["usage"]
    if not _SHA256.fullmatch(source["sha256"]) or not doc.get("task"):
        return None
    cost = doc["cost_usd"]
    return ImportedResult(
        source=_string(source["path"]),
        sha256=source["sha256"],
        task=_string(doc["task"]),
        provider=_string(provider["name"]),
        model=_string(provider["model"]),
        batch_id=_string(provider["batch_id"]),
        custom_id=_string(provider["custom_id"]),
        summary=_string(doc["summary"]),
        highlights=tuple(_highlight(item) for item in doc["highlights"]),
        dropped_highlights=int(doc["dropped_highlights"]),
        usage=Usage(**{key: int(usage[key]) for key in _USAGE_KEYS}),
        cost_usd=None if cost is None else float(cost),
        completed_at=_string(doc["generated_at"]),
    )


def _highlight(item: dict[str, Any]) -> Highlight:
    start, end = item["start"], item["end"]
    return Highlight(
        _string(item["quote"]),
        _string(item["why"]),
        None if start is None else int(start),
        None if end is None else int(end),
    )


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value
