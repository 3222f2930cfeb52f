"""Which extractor reads a file, decided from its name alone.

Routing looks only at the file-name suffix (case-insensitive), never at the
bytes, so a file we cannot read is refused before it is even opened. Every
refusal is a :class:`PermanentExtractionError` whose reason tells a person
what would be needed to read the file.

Extractor names are recorded per version in the ledger: ``native:<kind>`` for
our own stdlib/lxml readers, ``pdfium`` for PDFs and ``unstructured:<ext>``
for the long tail handled by unstructured.
"""

from __future__ import annotations

import importlib.util
import shutil
from functools import cache
from pathlib import PurePath

from docproc.errors import PermanentExtractionError

TEXT = "native:text"
HTML = "native:html"
PDF = "pdfium"
DOCX = "native:docx"
PPTX = "native:pptx"
XLSX = "native:xlsx"
EML = "native:eml"
UNSTRUCTURED_PREFIX = "unstructured:"

_NATIVE: dict[str, str] = {
    **dict.fromkeys((".txt", ".text", ".md", ".markdown", ".log"), TEXT),
    **dict.fromkeys((".html", ".htm", ".xhtml"), HTML),
    ".pdf": PDF,
    **dict.fromkeys((".docx", ".docm"), DOCX),
    **dict.fromkeys((".pptx", ".pptm"), PPTX),
    **dict.fromkeys((".xlsx", ".xlsm"), XLSX),
    ".eml": EML,
}

# Formats unstructured reads with the extras we install (no pandoc needed).
_UNSTRUCTURED = frozenset(
    (".xls", ".csv", ".tsv", ".msg", ".json", ".ndjson", ".xml"),
)
# Formats unstructured reads only through pypandoc (the optional 'pandoc' extra).
_PANDOC = frozenset((".epub", ".odt", ".rtf"))
# Plain-text markups: richer through pandoc, still readable as text without it.
_TEXT_MARKUP = frozenset((".rst", ".org"))
# Legacy binary Office formats: unstructured converts them with LibreOffice.
_SOFFICE = frozenset((".doc", ".ppt", ".dot", ".pps"))

_IMAGES: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
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
_ARCHIVES = frozenset(
    (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".jar"),
)

PANDOC_HINT = "needs the optional 'pandoc' extra: pip install 'docproc[pandoc]'"


@cache
def pandoc_available() -> bool:
    """True when pypandoc (unstructured's route to pandoc) can be imported."""
    return importlib.util.find_spec("pypandoc") is not None


@cache
def soffice_available() -> bool:
    """True when LibreOffice's ``soffice`` is on PATH (unstructured shells out to it)."""
    return shutil.which("soffice") is not None


def route(path: PurePath) -> str:
    """Name the extractor for ``path``.

    Args:
        path: the document's path; only its suffix is looked at.

    Returns:
        An extractor name such as ``"native:text"``, ``"pdfium"`` or
        ``"unstructured:csv"``.

    Raises:
        PermanentExtractionError: the type cannot be read with what is installed;
            the reason says what would be needed.
    """
    suffix = path.suffix.lower()
    if suffix in _NATIVE:
        return _NATIVE[suffix]
    if suffix in _UNSTRUCTURED:
        return UNSTRUCTURED_PREFIX + suffix[1:]
    if suffix in _TEXT_MARKUP:
        return UNSTRUCTURED_PREFIX + suffix[1:] if pandoc_available() else TEXT
    if suffix in _PANDOC:
        if pandoc_available():
            return UNSTRUCTURED_PREFIX + suffix[1:]
        raise PermanentExtractionError(f"{suffix[1:]} {PANDOC_HINT}")
    if suffix in _SOFFICE:
        if soffice_available():
            return UNSTRUCTURED_PREFIX + suffix[1:]
        raise PermanentExtractionError(
            f"{suffix[1:]} needs LibreOffice (soffice), which is not installed"
        )
    raise PermanentExtractionError(_refusal(suffix))


def _refusal(suffix: str) -> str:
    """The reason a suffix that no extractor handles is refused."""
    if suffix in _IMAGES:
        return f"{_IMAGES[suffix]} needs OCR, which is not installed"
    if suffix in _MEDIA:
        return f"{_MEDIA[suffix]} needs speech recognition, which is not installed"
    if suffix in _ARCHIVES:
        return f"archives are not expanded ('{suffix}')"
    if not suffix:
        return "unsupported file type (the name has no extension)"
    return f"unsupported file type '{suffix}'"
