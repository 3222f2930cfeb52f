"""PDF text layer through pypdfium2 (PDFium, the engine of Chrome's viewer).

PDFium is about 30x faster than unstructured's pdfminer route and needs no
torch stack (see reference/DEPENDENCIES.md, section 3). Pages are joined with
form feeds (``\\f``), the conventional page separator of text tools. There is
no OCR: a PDF without a text layer is refused with a reason saying so.
"""

from __future__ import annotations

import pypdfium2

from docproc.errors import PermanentExtractionError

# PDFium load error codes (FPDF_ERR_PASSWORD, FPDF_ERR_SECURITY in fpdfview.h).
_ERR_PASSWORD = 4
_ERR_SECURITY = 5


def extract(data: bytes) -> str:
    """Return the text of every page, joined with ``\\f``.

    The document is loaded from ``data`` rather than from its path, so the
    bytes read are the bytes whose sha256 was verified.

    Raises:
        PermanentExtractionError: encrypted, damaged, not a PDF, or no text layer.
    """
    pdf = _open(data)
    try:
        pages = [_page_text(pdf, index) for index in range(len(pdf))]
    finally:
        pdf.close()
    if not any(page.strip() for page in pages):
        raise PermanentExtractionError(
            "pdf has no text layer; scanned pages need OCR, which is not installed"
        )
    return "\f".join(pages)


def _open(data: bytes) -> pypdfium2.PdfDocument:
    try:
        return pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        if exc.err_code == _ERR_PASSWORD:
            raise PermanentExtractionError("pdf is encrypted (password required)") from exc
        if exc.err_code == _ERR_SECURITY:
            raise PermanentExtractionError(
                "pdf uses an unsupported security (encryption) scheme"
            ) from exc
        raise PermanentExtractionError(f"pdf is damaged or not a pdf ({exc})") from exc


def _page_text(pdf: pypdfium2.PdfDocument, index: int) -> str:
    """Text of one page; a page PDFium cannot parse contributes nothing."""
    try:
        page = pdf[index]
    except pypdfium2.PdfiumError:
        return ""  # one broken page must not cost the text of the others
    try:
        textpage = page.get_textpage()
        try:
            text: str = textpage.get_text_range()
        finally:
            textpage.close()
    finally:
        page.close()
    return text.replace("\r\n", "\n").replace("\r", "\n")
