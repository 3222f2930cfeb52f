"""Data files as people read them: CSV/TSV, JSON/NDJSON and Jupyter notebooks.

* CSV and TSV: the dialect is sniffed (delimiter, quoting), rows may be
  ragged. With a header row, each row is rendered as ``header: value`` pairs
  so a value keeps its label; without one, as tab-separated values.
* JSON: every scalar as ``dotted.key.path: value``, in document order, with
  every character as written (no ``\\u00e7`` escapes), numbers as written
  (``1.10`` stays ``1.10``) and repeated keys all kept. NDJSON (one value per
  line) is read line by line; a ``.json`` file that is neither is read as text.
* Notebooks: the cells in order (markdown and code), each followed by its
  text outputs.

Text is decoded by :mod:`docproc.extract.text` (BOM, UTF-16, charset guess),
so a cp1252 or Shift-JIS CSV reads as well as a UTF-8 one.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from docproc.errors import PermanentExtractionError
from docproc.extract import text as plain
from docproc.extract.reading import Reading

_SNIFF_BYTES = 16 * 1024
_DELIMITERS = ",\t;|"  # ties go to the earlier one
_SNIFF_LINES = 20
_PAIR = "; "
csv.field_size_limit(64 * 1024 * 1024)  # one cell may hold a long text; the file limit applies


class _Number(str):
    """A JSON number kept as written."""


class _Object(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, repeated keys included."""


def delimited(data: bytes, _reading: Reading) -> str:
    """CSV or TSV: one line per row, labelled by the header row when there is one."""
    content = plain.normalise_newlines(plain.decode(data))
    dialect = _dialect(content[:_SNIFF_BYTES])
    try:
        reader = csv.reader(io.StringIO(content), dialect)
        rows = [row for row in reader if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise PermanentExtractionError(f"csv could not be parsed: {exc}") from exc
    if not rows:
        return ""
    if len(rows) > 1 and _has_header(rows):
        header = [h.strip() for h in rows[0]]
        return "\n".join([_PAIR.join(header), *(_labelled(header, row) for row in rows[1:])])
    return "\n".join("\t".join(c.strip() for c in row).strip() for row in rows)


def _dialect(sample: str) -> type[csv.Dialect]:
    """The delimiter that splits the first lines most consistently into several fields.

    Each candidate is tried with the C csv reader on up to 20 lines (so quoted
    delimiters do not count); the score is how many lines share the modal
    field count. csv.Sniffer does the same in pure Python, 50x slower.
    """
    lines = sample.split("\n")[:_SNIFF_LINES]
    if len(lines) > 1:
        lines = lines[:-1]  # the sample may cut the last line short
    best: type[csv.Dialect] = csv.excel
    best_score = (0, 0)
    for delimiter in _DELIMITERS:
        dialect = csv.excel_tab if delimiter == "\t" else _with_delimiter(delimiter)
        try:
            widths = [len(row) for row in csv.reader(lines, dialect) if row]
        except csv.Error:
            continue
        modal = max(set(widths), key=widths.count, default=1)
        score = (widths.count(modal), modal) if modal > 1 else (0, 0)
        if score > best_score:
            best, best_score = dialect, score
    return best


def _with_delimiter(delimiter: str) -> type[csv.Dialect]:
    return type(f"excel_{ord(delimiter)}", (csv.excel,), {"delimiter": delimiter})


def _has_header(rows: list[list[str]]) -> bool:
    """A first row of distinct, non-numeric labels, as wide as the rows below it."""
    first = [c.strip() for c in rows[0]]
    if not all(first) or len(set(first)) != len(first):
        return False
    if any(_numeric(c) for c in first):
        return False
    widths = [len(r) for r in rows[1:50]]
    return max(widths) <= len(first) + 1 and len(first) > 1


def _numeric(cell: str) -> bool:
    try:
        float(cell.replace(",", ""))
    except ValueError:
        return False
    return True


def _labelled(header: list[str], row: list[str]) -> str:
    cells = []
    for index, value in enumerate(row):
        value = value.strip()
        if not value:
            continue
        label = header[index] if index < len(header) else ""
        cells.append(f"{label}: {value}" if label else value)
    return _PAIR.join(cells)


# -- JSON ----------------------------------------------------------------------------------


def json_text(data: bytes, _reading: Reading) -> str:
    """JSON or NDJSON as labelled values; text that is neither is returned as text."""
    content = plain.normalise_newlines(plain.decode(data)).lstrip("\ufeff")
    try:
        return "\n".join(_flatten(_loads(content)))
    except ValueError:
        pass
    lines = [line for line in content.split("\n") if line.strip()]
    try:
        values = [_loads(line) for line in lines]
    except ValueError:
        return content  # JSON with comments, a fragment...: still text people wrote
    return "\n\n".join("\n".join(_flatten(value)) for value in values)


def _loads(content: str) -> Any:
    return json.loads(
        content,
        object_pairs_hook=_Object,  # repeated keys are all kept, in order
        parse_float=_Number,
        parse_int=_Number,
        parse_constant=_Number,
    )


def _flatten(value: Any) -> Iterator[str]:
    """``path: value`` lines, depth first in document order, without recursion."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, _Object):
            if not item:
                yield f"{path}: {{}}" if path else "{}"
            children = [(f"{path}.{k}" if path else str(k), v) for k, v in item]
            stack.extend(reversed(children))
        elif isinstance(item, list):
            if not item:
                yield f"{path}: []" if path else "[]"
            stack.extend((path, v) for v in reversed(item))
        else:
            yield f"{path}: {_scalar(item)}" if path else _scalar(item)


def _scalar(item: Any) -> str:
    if isinstance(item, str):
        return item  # _Number included: as written
    if item is None:
        return "null"
    return "true" if item is True else "false" if item is False else str(item)


# -- notebooks -----------------------------------------------------------------------------


def notebook(data: bytes, _reading: Reading) -> str:
    """A Jupyter notebook: every cell's source in order, then its text outputs."""
    try:
        document = json.loads(plain.decode(data))
    except ValueError as exc:
        raise PermanentExtractionError(f"ipynb is not valid JSON ({exc})") from exc
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, list):
        raise PermanentExtractionError("ipynb has no cells (not a Jupyter notebook)")
    parts = []
    for cell in cells:
        if isinstance(cell, dict):
            parts.append("\n".join(t for t in (_joined(cell.get("source")), _outputs(cell)) if t))
    return "\n\n".join(p for p in parts if p.strip())


def _outputs(cell: dict[str, Any]) -> str:
    texts = []
    for output in cell.get("outputs") or []:
        if not isinstance(output, dict):
            continue
        texts.append(_joined(output.get("text")))
        data = output.get("data")
        if isinstance(data, dict):
            texts.append(_joined(data.get("text/plain")))
    return "\n".join(t for t in texts if t)


def _joined(source: Any) -> str:
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str)).strip()
    return source.strip() if isinstance(source, str) else ""
