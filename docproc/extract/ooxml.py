"""Native DOCX, PPTX and XLSX readers: zipfile and ElementTree only.

unstructured spends 80+ ms on a small .docx (python-docx object model plus
spaCy classification); reading the XML parts directly takes a few ms and
yields the same words. Elements are matched by *local* name, so Transitional
and Strict OOXML namespaces both work, and WordprocessingML and DrawingML
share one walker (:func:`_blocks`): both spell paragraphs ``p``, tables
``tbl``/``tr``/``tc`` and text runs ``t``.

All parts are read through :class:`~docproc.extract.zipguard.GuardedZip`,
which refuses bombs before and while decompressing. ElementTree never fetches
external entities, and the bundled expat (>= 2.4) refuses entity-expansion
("billion laughs") documents.
"""

from __future__ import annotations

import io
import posixpath
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from docproc.errors import PermanentExtractionError
from docproc.extract.zipguard import GuardedZip, local_name
from docproc.models import ExtractLimits

_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_STRICT_REL_ID = "{http://purl.oclc.org/ooxml/officeDocument/relationships}id"
# Formatting and alternatives whose text is not part of the visible content:
# tab *stops* live in pPr, deleted revisions in del, field codes in instrText,
# and mc:Fallback repeats the mc:Choice content for old readers.
_SKIP = frozenset(("pPr", "rPr", "del", "delText", "instrText", "Fallback", "rPh"))
_SLIDE_NUMBER = re.compile(r"slide(\d+)\.xml$")


def docx(data: bytes, limits: ExtractLimits) -> str:
    """Headers, body (paragraphs and tables in document order), then footers."""
    with GuardedZip(data, limits, "docx") as archive:
        main = _main_part(archive, "word/document.xml", "docx")
        root = _require(archive, main, "docx")
        rels = _relationships(archive, main, "docx")
        headers = [_part_text(archive, p, "docx") for p in _targets(rels, "/header")]
        footers = [_part_text(archive, p, "docx") for p in _targets(rels, "/footer")]
    body = "\n".join(_blocks(root))
    return "\n".join(_unique([*headers, body, *footers]))


def pptx(data: bytes, limits: ExtractLimits) -> str:
    """Slides in presentation order: shapes, tables, then the speaker notes."""
    with GuardedZip(data, limits, "pptx") as archive:
        main = _main_part(archive, "ppt/presentation.xml", "pptx")
        slides: list[str] = []
        for slide in _slide_parts(archive, main):
            root = _require(archive, slide, "pptx")
            notes = _targets(_relationships(archive, slide, "pptx"), "/notesSlide")
            texts = [*_blocks(root), *(_notes_text(archive, n) for n in notes)]
            slides.append("\n".join(t for t in texts if t.strip()))
    return "\n\n".join(s for s in slides if s)


def xlsx(data: bytes, limits: ExtractLimits) -> str:
    """Sheets in workbook order: the sheet name, then one tab-separated line per row."""
    with GuardedZip(data, limits, "xlsx") as archive:
        main = _main_part(archive, "xl/workbook.xml", "xlsx")
        workbook = _require(archive, main, "xlsx")
        rels = _relationships(archive, main, "xlsx")
        shared = _shared_strings(archive, _targets(rels, "/sharedStrings"))
        sheets: list[str] = []
        for name, part in _sheet_parts(workbook, rels):
            raw = archive.read(part)
            if raw is None:
                continue
            rows = _sheet_rows(raw, shared)
            sheets.append("\n".join([name, *rows]) if rows else "")
    return "\n\n".join(s for s in sheets if s)


# -- shared walkers ------------------------------------------------------------------------


def _blocks(element: ET.Element) -> Iterator[str]:
    """Paragraph and table texts under ``element``, in document order."""
    for child in element:
        name = _local(child.tag)
        if name == "p":
            yield "".join(_run_text(child))
        elif name == "tbl":
            yield _table_text(child)
        elif name not in _SKIP:
            yield from _blocks(child)


def _run_text(element: ET.Element) -> Iterator[str]:
    """The characters of a paragraph: text runs, tabs and line breaks."""
    for child in element:
        name = _local(child.tag)
        if name == "t":
            yield child.text or ""
        elif name == "tab":
            yield "\t"
        elif name in ("br", "cr"):
            yield "\n"
        elif name == "p":  # a text box anchored inside the paragraph
            yield "\n"
            yield from _run_text(child)
        elif name not in _SKIP:
            yield from _run_text(child)


def _table_text(table: ET.Element) -> str:
    """One line per row, cells separated by tabs, a cell's paragraphs by spaces."""
    rows = []
    for row in table:
        if _local(row.tag) != "tr":
            continue
        cells = [" ".join(_blocks(cell)) for cell in row if _local(cell.tag) == "tc"]
        rows.append("\t".join(c.strip() for c in cells).rstrip("\t"))
    return "\n".join(rows)


def _notes_text(archive: GuardedZip, part: str) -> str:
    """The body placeholder of a notes slide (not its slide image or number)."""
    root = _xml(archive, part, "pptx")
    if root is None:
        return ""
    bodies = [
        shape
        for shape in root.iter()
        if _local(shape.tag) == "sp"
        and any(_local(ph.tag) == "ph" and ph.get("type") == "body" for ph in shape.iter())
    ]
    return "\n".join(text for shape in bodies for text in _blocks(shape))


# -- xlsx ----------------------------------------------------------------------------------


def _shared_strings(archive: GuardedZip, parts: list[str]) -> list[str]:
    root = _xml(archive, parts[0], "xlsx") if parts else None
    if root is None:
        return []
    return ["".join(_run_text(si)) for si in root if _local(si.tag) == "si"]


def _sheet_parts(workbook: ET.Element, rels: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    sheets = []
    for sheet in workbook.iter():
        if _local(sheet.tag) == "sheet":
            rel_id = sheet.get(_REL_ID) or sheet.get(_STRICT_REL_ID) or ""
            if rel_id in rels:
                sheets.append((sheet.get("name", ""), rels[rel_id][1]))
    return sheets


def _sheet_rows(raw: bytes, shared: list[str]) -> list[str]:
    """Stream a worksheet: rows are cleared once read, so big sheets stay cheap."""
    rows: list[str] = []
    try:
        # expat refuses entity-expansion bombs and never fetches external entities.
        for _event, element in ET.iterparse(io.BytesIO(raw), events=("end",)):  # noqa: S314
            if _local(element.tag) != "row":
                continue
            values = [_cell_value(c, shared) for c in element if _local(c.tag) == "c"]
            line = "\t".join(values).strip()
            if line:
                rows.append(line)
            element.clear()
    except ET.ParseError as exc:
        raise PermanentExtractionError(f"xlsx is damaged or not a xlsx ({exc})") from exc
    return rows


def _cell_value(cell: ET.Element, shared: list[str]) -> str:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        return "".join(_run_text(cell))
    value = next((c.text or "" for c in cell if _local(c.tag) == "v"), "")
    if kind == "s":
        index = int(value) if value.isdigit() else -1
        return shared[index] if 0 <= index < len(shared) else ""
    if kind == "b":
        return "TRUE" if value == "1" else "FALSE"
    if kind == "n" and value:
        return _number(value)
    return value


def _number(value: str) -> str:
    """Shortest faithful form: 3.0 as "3", binary noise like 0.30000000000000004 dropped."""
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else f"{number:.15g}"


# -- package structure ---------------------------------------------------------------------


def _main_part(archive: GuardedZip, default: str, kind: str) -> str:
    """The officeDocument target named by ``_rels/.rels``, else the usual name."""
    for rel_type, target in _relationships(archive, "", kind).values():
        if rel_type.endswith("/officeDocument"):
            return target
    return default


def _relationships(archive: GuardedZip, part: str, kind: str) -> dict[str, tuple[str, str]]:
    """Map relationship id -> (type, resolved part name) for ``part``."""
    folder, name = posixpath.split(part)
    root = _xml(archive, posixpath.join(folder, "_rels", f"{name}.rels"), kind)
    rels: dict[str, tuple[str, str]] = {}
    for rel in root if root is not None else ():
        target = rel.get("Target", "")
        if rel.get("TargetMode") == "External" or not target:
            continue
        resolved = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
        rels[rel.get("Id", "")] = (rel.get("Type", ""), posixpath.normpath(resolved))
    return rels


def _targets(rels: dict[str, tuple[str, str]], type_suffix: str) -> list[str]:
    return [target for rel_type, target in rels.values() if rel_type.endswith(type_suffix)]


def _slide_parts(archive: GuardedZip, main: str) -> list[str]:
    """Slides in the order of ``sldIdLst``; numeric file order if that is missing."""
    rels = _relationships(archive, main, "pptx")
    root = _xml(archive, main, "pptx")
    ordered = []
    for element in root.iter() if root is not None else ():
        rel_id = element.get(_REL_ID) or element.get(_STRICT_REL_ID)
        if _local(element.tag) == "sldId" and rel_id in rels:
            ordered.append(rels[rel_id][1])
    if ordered:
        return ordered
    found = [(int(m.group(1)), n) for n in archive.names if (m := _SLIDE_NUMBER.search(n))]
    return [name for _number, name in sorted(found) if name.startswith("ppt/slides/")]


def _part_text(archive: GuardedZip, part: str, kind: str) -> str:
    root = _xml(archive, part, kind)
    return "" if root is None else "\n".join(_blocks(root))


def _require(archive: GuardedZip, part: str, kind: str) -> ET.Element:
    root = _xml(archive, part, kind)
    if root is None:
        raise PermanentExtractionError(f"{kind} is damaged or not a {kind} (no {part})")
    return root


def _xml(archive: GuardedZip, part: str, _kind: str) -> ET.Element | None:
    """Parse one XML part; None when the archive lacks it."""
    return archive.xml(part)


_local = local_name


def _unique(texts: list[str]) -> list[str]:
    """Drop empty and repeated parts (first-page and default headers often match)."""
    seen: set[str] = set()
    kept = []
    for text in texts:
        if text.strip() and text not in seen:
            seen.add(text)
            kept.append(text)
    return kept
