"""Rendering rows for people and programs: aligned tables, JSON, CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

Row = dict[str, Any]


def table(rows: Sequence[Row], columns: Sequence[str], *, width: int = 60) -> str:
    """A plain aligned text table; cells longer than ``width`` are shortened, and dollar
    amounts (columns ending in ``_usd``) rounded for people (JSON and CSV keep them raw)."""
    cells = [
        [_cell(usd(row.get(col)) if col.endswith("_usd") else row.get(col), width, col == "path")
         for col in columns]
        for row in rows
    ]  # fmt: skip
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: object, width: int, keep_end: bool) -> str:
    """The value on one line; too long, it loses its middle-to-end (or, for paths, its start)."""
    text = "" if value is None else str(value).replace("\n", " ")
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1) :] if keep_end else text[: width - 1] + "…"


def usd(value: object) -> object:
    """A dollar amount as people read it: ``0.0029`` (not ``0.0029265000000000003``),
    ``12.35``, ``<0.0001``; anything that is not a number is returned as it is."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return value
    if value == 0:
        return "0"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    if abs(value) >= 0.0001:
        return f"{value:.4f}"
    return "<0.0001" if value > 0 else "-<0.0001"


def as_json(rows: Sequence[Row] | Row) -> str:
    return json.dumps(rows, indent=2, ensure_ascii=False, default=str)


def as_csv(rows: Sequence[Row], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def render(rows: Sequence[Row], columns: Sequence[str], fmt: str) -> str:
    """``fmt`` is table, json or csv."""
    if fmt == "json":
        return as_json([{k: row.get(k) for k in row} for row in rows])
    if fmt == "csv":
        return as_csv(rows, columns)
    return table(rows, columns)
