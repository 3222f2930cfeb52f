"""The reader for each extractor name, and the reading of archive members.

:func:`read` runs the reader that :mod:`docproc.extract.route` (or, for
names that say nothing, :mod:`docproc.extract.sniff`) chose. It is also the
callback archives use for their members (:func:`read_member`), so a .docx
inside a .zip is read exactly like a .docx on its own.

unstructured (1.3 s and 200 MB to import) is imported by
:mod:`docproc.extract.partition` on the first document that needs it only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from docproc.errors import PermanentExtractionError
from docproc.extract import (
    archives,
    epub,
    html,
    mail,
    msg,
    ocr,
    ooxml,
    opendoc,
    partition,
    pdf,
    route,
    rtf,
    sheets,
    sniff,
    soffice,
    structured,
    text,
    xmltext,
)
from docproc.extract.reading import Reading

Reader = Callable[[bytes, Reading], str]
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a Compound File: legacy Office, or encrypted OOXML

_EMPTY: dict[str, str] = {
    route.HTML: "page contains no visible text",
    route.PPTX: "presentation contains no text",
    route.DOCX: "document contains no text",
    route.XLSX: "workbook contains no cell values",
    route.XLS: "workbook contains no cell values",
    route.ODS: "workbook contains no cell values",
    route.OCR: "OCR found no text in the image",
}


def _docx(data: bytes, reading: Reading) -> str:
    if data.startswith(_OLE):  # a legacy .doc under a new name
        return _legacy(data, ".docx", reading)
    return ooxml.docx(data, reading.limits) or ocr.pictures(data, "word/media/", reading)


def _pptx(data: bytes, reading: Reading) -> str:
    if data.startswith(_OLE):
        return _legacy(data, ".pptx", reading)
    return ooxml.pptx(data, reading.limits) or ocr.pictures(data, "ppt/media/", reading)


def _legacy(data: bytes, suffix: str, reading: Reading) -> str:
    """A legacy Office file (or an encrypted one) named like OOXML: read as what it is."""
    kind = sniff.ole_kind(data, suffix)
    reading.used(kind)
    return read(kind, data, reading)


def _xlsx(data: bytes, reading: Reading) -> str:
    if data.startswith(_OLE):
        return _legacy(data, ".xlsx", reading)
    return ooxml.xlsx(data, reading.limits)


def _xls(data: bytes, reading: Reading) -> str:
    """A workbook; many ".xls" exports are really HTML or CSV, read as what they are."""
    try:
        return sheets.extract(data, reading)
    except PermanentExtractionError:
        if data.startswith((b"\xd0\xcf\x11\xe0", b"PK\x03\x04")):
            raise  # a real workbook (OLE or zip) that is damaged or encrypted
        kind = sniff.route_bytes(data, ".xls")
        if kind not in (route.HTML, route.XML, route.TEXT):
            raise
    content = _READERS[kind](data, reading)
    return structured.delimited(data, reading) if kind == route.TEXT else content


def _odp(data: bytes, reading: Reading) -> str:
    return opendoc.odp(data, reading) or ocr.pictures(data, "Pictures/", reading)


_READERS: dict[str, Reader] = {
    route.TEXT: lambda data, _reading: text.extract(data),
    route.HTML: lambda data, _reading: html.extract(data),
    route.XML: xmltext.extract,
    route.CSV: structured.delimited,
    route.JSON: structured.json_text,
    route.NOTEBOOK: structured.notebook,
    route.PDF: pdf.extract,
    route.DOCX: _docx,
    route.PPTX: _pptx,
    route.XLSX: _xlsx,
    route.ODT: opendoc.odt,
    route.ODS: opendoc.ods,
    route.ODP: _odp,
    route.EPUB: epub.extract,
    route.RTF: rtf.extract,
    route.EML: lambda data, _reading: mail.extract(data),
    route.MSG: msg.extract,
    route.XLS: _xls,
    route.ZIP: archives.zip_archive,
    route.TAR: archives.tar_archive,
    route.GZIP: archives.gzip_file,
    route.OCR: ocr.image,
}


def resolve(name: str, data: bytes, suffix: str) -> str:
    """The final extractor name: :data:`route.SNIFF` becomes what the bytes say."""
    return sniff.route_bytes(data, suffix) if name == route.SNIFF else name


def read(name: str, data: bytes, reading: Reading) -> str:
    """Run extractor ``name`` on ``data``.

    Raises:
        PermanentExtractionError: the reader refused the document, or its text is
            empty (the reason says which kind of empty).
    """
    reading.member = read_member
    if name.startswith(route.UNSTRUCTURED_PREFIX):
        kind = name.removeprefix(route.UNSTRUCTURED_PREFIX)
        return partition.extract(data, kind, reading.limits)  # imports unstructured on first use
    if name.startswith(route.SOFFICE_PREFIX):
        return soffice.extract(data, name.removeprefix(route.SOFFICE_PREFIX), reading)
    return _READERS[name](data, reading)


def empty_reason(name: str) -> str:
    """Why a document that gave no text is refused, for people."""
    return _EMPTY.get(name, "document contains no text")


def read_member(member: str, data: bytes, reading: Reading) -> str:
    """An archive member's text, routed by its name (and bytes, when the name says nothing)."""
    path = PurePosixPath(member)
    name = resolve(route.route(path), data, path.suffix.lower())
    return read(name, data, reading)
