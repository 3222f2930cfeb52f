"""OpenDocument text, spreadsheets and presentations (.odt, .ods, .odp): ``content.xml``.

The part is read through :class:`~docproc.extract.zipguard.GuardedZip` (a
zip bomb is refused before and while inflating) and parsed with ElementTree
(expat: no external entities, entity-expansion bombs refused). Elements are
matched by local name, the way :mod:`docproc.extract.ooxml` does it:

* paragraphs and headings (``text:p``, ``text:h``), with ``text:s`` runs of
  spaces, tabs and line breaks; lists, frames, text boxes and notes inside;
* tables (and spreadsheet sheets, named first) one row per line, cells
  separated by tabs; repeated empty rows and columns are not multiplied out;
* presentation pages in order, each page's notes after it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

from docproc.errors import PermanentExtractionError
from docproc.extract.reading import Reading
from docproc.extract.zipguard import GuardedZip, local_name

_TABLE_NS = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_DRAW_NS = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
_SHEET_NAME = f"{{{_TABLE_NS}}}name"
_SPACES = f"{{{_TEXT_NS}}}c"
_PAGE_NAME = f"{{{_DRAW_NS}}}name"
_REPEAT_LIMIT = 1000  # a repeated non-empty cell is written at most this many times
# Not content: change-tracking history, field declarations, the hidden sequence decls.
_SKIP = frozenset(("tracked-changes", "sequence-decls", "variable-decls", "user-field-decls"))


def odt(data: bytes, reading: Reading) -> str:
    return "\n".join(_blocks(_content(data, reading, "odt")))


def ods(data: bytes, reading: Reading) -> str:
    return "\n".join(_blocks(_content(data, reading, "ods")))


def odp(data: bytes, reading: Reading) -> str:
    return "\n".join(_blocks(_content(data, reading, "odp")))


def _content(data: bytes, reading: Reading, kind: str) -> ET.Element:
    with GuardedZip(data, reading.limits, kind) as archive:
        root = archive.xml("content.xml")
    if root is None:
        raise PermanentExtractionError(f"{kind} is damaged or not a {kind} (no content.xml)")
    return root


def _blocks(element: ET.Element) -> Iterator[str]:
    """Paragraph, table and page texts under ``element`` in document order."""
    for child in element:
        name = _local(child.tag)
        if name in ("p", "h"):
            line = "".join(_inline(child)).strip()
            if line:
                yield line
        elif name == "table":
            if child.get(_SHEET_NAME) and _local(element.tag) == "spreadsheet":
                yield child.get(_SHEET_NAME, "")
            yield from _rows(child)
        elif name == "page" and child.get(_PAGE_NAME):
            yield ""  # a blank line between slides
            yield from _blocks(child)
        elif name not in _SKIP:
            yield from _blocks(child)


def _inline(element: ET.Element) -> Iterator[str]:
    """The characters of a paragraph: spans, links, spaces, tabs, line breaks, notes."""
    if element.text:
        yield element.text
    for child in element:
        name = _local(child.tag)
        if name == "s":
            count = child.get(_SPACES, "1")
            yield " " * min(int(count) if count.isdigit() else 1, 100)
        elif name == "tab":
            yield "\t"
        elif name == "line-break":
            yield "\n"
        elif name in ("p", "h"):  # inside a note or a frame anchored in the paragraph
            yield " "
            yield from _inline(child)
        elif name not in ("annotation",) and name not in _SKIP:
            yield from _inline(child)
        if child.tail:
            yield child.tail


def _rows(table: ET.Element) -> Iterator[str]:
    for row in table.iter():
        if _local(row.tag) != "table-row":
            continue
        cells = []
        for cell in row:
            if _local(cell.tag) not in ("table-cell", "covered-table-cell"):
                continue
            value = " ".join(_blocks(cell)).strip()
            repeat = cell.get(f"{{{_TABLE_NS}}}number-columns-repeated", "1")
            times = min(int(repeat), _REPEAT_LIMIT) if repeat.isdigit() and value else 1
            cells.extend([value] * times)
        line = "\t".join(cells).strip()
        if line:
            yield line


_local = local_name
