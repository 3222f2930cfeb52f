"""Route by content: files whose name says nothing (no suffix, or one we do not know).

Signatures first (PDF, images, zip-based documents, OLE, RTF, gzip, tar,
e-mail headers, markup), then text: bytes that decode as text and hold few
control characters are read as text (source code, YAML, TOML, logs, a
README without a suffix). Anything else is binary and refused with a reason.
"""

from __future__ import annotations

import re
import zipfile
from io import BytesIO

from docproc.errors import PermanentExtractionError
from docproc.extract import route, text

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", route.PDF),
    (b"{\\rtf", route.RTF),
    (b"\x1f\x8b", route.GZIP),
)
_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
)
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED = "encrypted"
_OLE_STREAMS = (
    ("EncryptedPackage", _ENCRYPTED),  # an encrypted .docx/.xlsx/.pptx
    ("__substg1.0_", route.MSG),
    ("WordDocument", route.SOFFICE_PREFIX + "doc"),
    ("PowerPoint Document", route.SOFFICE_PREFIX + "ppt"),
    ("Workbook", route.XLS),
    ("Book", route.XLS),
)
_ODF_MIMETYPES = {
    b"application/vnd.oasis.opendocument.text": route.ODT,
    b"application/vnd.oasis.opendocument.spreadsheet": route.ODS,
    b"application/vnd.oasis.opendocument.presentation": route.ODP,
    b"application/epub+zip": route.EPUB,
}
_OOXML_PARTS = (
    ("word/document.xml", route.DOCX),
    ("ppt/presentation.xml", route.PPTX),
    ("xl/workbook.xml", route.XLSX),
)
_MAIL_HEADER = re.compile(
    rb"^(?:Received|Return-Path|From|To|Subject|Date|Message-ID|MIME-Version|Content-Type|"
    rb"Delivered-To|X-[\w-]+):[ \t]",
    re.I,
)
_MARKUP = re.compile(rb"^\s*<(!doctype html|html|\?xml|[a-zA-Z][\w:.-]*[\s>/])", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_SAMPLE = 64 * 1024
_MAX_CONTROL_SHARE = 0.01


def route_bytes(data: bytes, suffix: str) -> str:
    """The extractor for ``data``, whose name (``suffix``) did not decide.

    Raises:
        PermanentExtractionError: binary content no reader understands.
    """
    head = data[:_SAMPLE]
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    for magic, mime in _IMAGE_SIGNATURES:
        if head.startswith(magic):
            return route.image_route(mime)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return route.image_route("image/webp")
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if head.startswith(_OLE):
        return ole_kind(data, suffix)
    if len(head) > 262 and head[257:262] == b"ustar":
        return route.TAR
    return _textual(head, suffix)


def ole_kind(data: bytes, suffix: str) -> str:
    """Which legacy Office file an OLE compound file is, by the streams it names.

    The directory's entries hold stream names in UTF-16-LE; a search for them
    is cheap and needs no OLE parser.
    """
    for name, kind in _OLE_STREAMS:
        if name.encode("utf-16-le") in data:
            if kind == _ENCRYPTED:
                what = suffix[1:] or "Office document"
                raise PermanentExtractionError(f"{what} is password protected")
            if kind.startswith(route.SOFFICE_PREFIX) and not route.soffice_available():
                what = kind.removeprefix(route.SOFFICE_PREFIX)
                raise PermanentExtractionError(f"{what} needs LibreOffice: {route.SOFFICE_HINT}")
            return kind
    raise PermanentExtractionError(_unknown(suffix, "an OLE compound file"))


def _zip_kind(data: bytes) -> str:
    """Which zip-based format: ODF/EPUB by their ``mimetype``, OOXML by their main part."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "mimetype" in names and archive.getinfo("mimetype").file_size < 200:
                kind = _ODF_MIMETYPES.get(archive.read("mimetype").strip())
                if kind is not None:
                    return kind
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError):
        return route.ZIP  # the zip reader says what is wrong with it
    for part, kind in _OOXML_PARTS:
        if part in names:
            return kind
    return route.ZIP


def _textual(head: bytes, suffix: str) -> str:
    if _MAIL_HEADER.match(head):
        return route.EML
    if head.lstrip()[:1] in (b"{", b"[") and suffix in ("", ".txt"):
        return route.JSON
    try:
        sample = text.decode(head)
    except PermanentExtractionError:
        raise PermanentExtractionError(_unknown(suffix, "binary content")) from None
    if len(_CONTROL.findall(sample)) > _MAX_CONTROL_SHARE * max(len(sample), 1):
        raise PermanentExtractionError(_unknown(suffix, "binary content"))
    if _MARKUP.match(head):
        return route.HTML if b"<html" in head[:4096].lower() else route.XML
    return route.TEXT


def _unknown(suffix: str, what: str) -> str:
    named = f"'{suffix}'" if suffix else "with no extension"
    return f"unsupported file type {named} ({what})"
