"""Which extractor reads a file: by its name first, by its bytes when the name says nothing.

:func:`route` looks only at the file-name suffix (case-insensitive), so a
file we can never read (audio, video, a format without a reader) is refused
before it is opened. A suffix it does not know, or no suffix, routes to
:data:`SNIFF`: the worker reads the bytes and :mod:`docproc.extract.sniff`
decides (a PDF named ``scan``, source code, YAML, logs...). Every refusal is
a :class:`PermanentExtractionError` whose reason tells a person what would
be needed to read the file.

Extractor names are recorded per version in the ledger: ``native:<kind>``
for our own readers, ``pdfium`` for PDFs, ``calamine:xls`` for legacy
workbooks, ``ocr:tesseract`` for images, ``soffice:<ext>`` for legacy Office
files converted by LibreOffice, ``unstructured:<ext>`` for the long tail.
A reader that needed OCR for part of a document appends ``+ocr:tesseract``.
"""

from __future__ import annotations

import importlib.util
import shutil
from functools import cache
from pathlib import PurePath

from docproc.errors import PermanentExtractionError

TEXT = "native:text"
HTML = "native:html"
XML = "native:xml"
CSV = "native:csv"
JSON = "native:json"
NOTEBOOK = "native:ipynb"
PDF = "pdfium"
DOCX = "native:docx"
PPTX = "native:pptx"
XLSX = "native:xlsx"
ODT = "native:odt"
ODS = "native:ods"
ODP = "native:odp"
EPUB = "native:epub"
RTF = "native:rtf"
EML = "native:eml"
MSG = "native:msg"
XLS = "calamine:xls"
ZIP = "native:zip"
TAR = "native:tar"
GZIP = "native:gz"
OCR = "ocr:tesseract"
SOFFICE_PREFIX = "soffice:"
UNSTRUCTURED_PREFIX = "unstructured:"
SNIFF = "sniff"  # not an extractor: the bytes decide (see sniff.py)

_NATIVE: dict[str, str] = {
    **dict.fromkeys((".txt", ".text", ".md", ".markdown", ".log"), TEXT),
    **dict.fromkeys((".html", ".htm", ".xhtml"), HTML),
    **dict.fromkeys((".xml", ".xsl", ".xslt", ".rss", ".atom", ".svg"), XML),
    **dict.fromkeys((".csv", ".tsv", ".tab"), CSV),
    **dict.fromkeys((".json", ".ndjson", ".jsonl", ".geojson"), JSON),
    ".ipynb": NOTEBOOK,
    ".pdf": PDF,
    **dict.fromkeys((".docx", ".docm", ".dotx"), DOCX),
    **dict.fromkeys((".pptx", ".pptm", ".ppsx", ".potx"), PPTX),
    **dict.fromkeys((".xlsx", ".xlsm", ".xltx"), XLSX),
    **dict.fromkeys((".odt", ".ott"), ODT),
    **dict.fromkeys((".ods", ".ots"), ODS),
    **dict.fromkeys((".odp", ".otp"), ODP),
    ".epub": EPUB,
    ".rtf": RTF,
    **dict.fromkeys((".eml", ".mht", ".mhtml"), EML),  # .p7s and .p7m: sniffed (MIME or DER)
    ".msg": MSG,
    **dict.fromkeys((".xls", ".xlsb", ".xla"), XLS),
    **dict.fromkeys((".zip",), ZIP),
    **dict.fromkeys((".tar", ".tgz", ".tbz2", ".txz"), TAR),
}
# Plain-text markups: richer through unstructured + pandoc, still readable as text without it.
_TEXT_MARKUP = frozenset((".rst", ".org"))
# Legacy binary Office formats: converted by LibreOffice.
_SOFFICE = frozenset((".doc", ".dot", ".ppt", ".pps", ".pot", ".wpd", ".sxw"))

IMAGES: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
    ".pbm": "image/x-portable-bitmap",
    ".pgm": "image/x-portable-graymap",
    ".ppm": "image/x-portable-pixmap",
}
_UNREADABLE_IMAGES: dict[str, str] = {
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".avif": "image/avif",
}
_MEDIA: dict[str, str] = {
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".flac": "audio/flac",
    ".aac": "audio/aac",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
}
_UNREAD_ARCHIVES = frozenset((".7z", ".rar", ".zst", ".jar", ".iso", ".cab"))
_COMPRESSED_TARS = (".tar.gz", ".tar.bz2", ".tar.xz")

TESSERACT_HINT = "install Debian's tesseract-ocr (make system-deps)"
SOFFICE_HINT = "install Debian's libreoffice-writer-nogui and libreoffice-impress-nogui"


@cache
def pandoc_available() -> bool:
    """True when pypandoc (unstructured's route to pandoc) can be imported."""
    return importlib.util.find_spec("pypandoc") is not None


@cache
def soffice_available() -> bool:
    """True when LibreOffice's ``soffice`` is on PATH."""
    return shutil.which("soffice") is not None


@cache
def tesseract_available() -> bool:
    """True when the ``tesseract`` command is on PATH."""
    return shutil.which("tesseract") is not None


def route(path: PurePath) -> str:
    """Name the extractor for ``path`` from its name alone.

    Args:
        path: the document's path; only its suffix is looked at.

    Returns:
        An extractor name such as ``"native:text"`` or ``"pdfium"``, or
        :data:`SNIFF` when only the bytes can tell.

    Raises:
        PermanentExtractionError: the type cannot be read with what is installed;
            the reason says what would be needed.
    """
    name = path.name.lower()
    if name.endswith(_COMPRESSED_TARS):
        return TAR
    suffix = path.suffix.lower()
    if suffix in _NATIVE:
        return _NATIVE[suffix]
    if suffix == ".gz":
        return GZIP
    if suffix in _TEXT_MARKUP:
        return UNSTRUCTURED_PREFIX + suffix[1:] if pandoc_available() else TEXT
    if suffix in IMAGES:
        return image_route(IMAGES[suffix])
    if suffix in _SOFFICE:
        if soffice_available():
            return SOFFICE_PREFIX + suffix[1:]
        raise PermanentExtractionError(f"{suffix[1:]} needs LibreOffice: {SOFFICE_HINT}")
    refusal = _refusal(suffix)
    if refusal is not None:
        raise PermanentExtractionError(refusal)
    return SNIFF


def image_route(mime: str) -> str:
    """The OCR route, or a refusal naming the package when Tesseract is missing."""
    if tesseract_available():
        return OCR
    raise PermanentExtractionError(f"{mime} needs OCR: {TESSERACT_HINT}")


def _refusal(suffix: str) -> str | None:
    """The reason a suffix no extractor can ever handle is refused; None to sniff."""
    if suffix in _UNREADABLE_IMAGES:
        return f"{_UNREADABLE_IMAGES[suffix]} is not supported (no permissively licensed decoder)"
    if suffix in _MEDIA:
        return f"{_MEDIA[suffix]} needs speech recognition, which is not supported"
    if suffix in _UNREAD_ARCHIVES:
        return f"archives of type '{suffix}' are not expanded (zip and tar are)"
    return None


# Reasons an older docproc (before OCR, LibreOffice and the native readers of
# OpenDocument, RTF, EPUB and archives) recorded for files it can read now.
_OUTDATED_REASONS = (
    "%needs OCR, which is not installed%",
    "%need OCR, which is not installed%",
    "%needs LibreOffice (soffice), which is not installed%",
    "%needs the optional 'pandoc' extra%",
    "archives are not expanded%",
    "unsupported file type '%'",
    "unsupported file type (the name has no extension)",
)


def readable_again() -> tuple[str, ...]:
    """SQL LIKE patterns of failure reasons that what is installed now can overcome.

    Reasons naming Tesseract or LibreOffice as missing, once installed, and
    the reasons older versions gave for formats read natively now. Matching
    versions are extracted again (once: their new reason no longer matches).
    """
    patterns = list(_OUTDATED_REASONS)
    if tesseract_available():
        patterns.append(f"%{TESSERACT_HINT}%")
    if soffice_available():
        patterns.append(f"%{SOFFICE_HINT}%")
    return tuple(patterns)
