"""PDF text layer through pypdfium2 (PDFium, the engine of Chrome's viewer), OCR where it has none.

PDFium is about 30x faster than unstructured's pdfminer route and needs no
torch stack (see reference/DEPENDENCIES.md, section 3). Pages are joined with
form feeds (``\\f``), the conventional page separator of text tools.

A page without a text layer that holds an image (a scan, a photo of a page)
is rendered at 300 dpi and read by Tesseract (:mod:`docproc.extract.ocr`):
a mixed PDF OCRs only the pages that need it. The render scale is lowered
for pages so large that 300 dpi would pass the pixel limit. Without OCR (off
or not installed) such a PDF is refused with the reason.
"""

from __future__ import annotations

import pypdfium2
import pypdfium2.raw

from docproc.errors import PermanentExtractionError
from docproc.extract import ocr
from docproc.extract.reading import Reading

# PDFium load error codes (FPDF_ERR_PASSWORD, FPDF_ERR_SECURITY in fpdfview.h).
_ERR_PASSWORD = 4
_ERR_SECURITY = 5
_DPI = 300
_POINTS_PER_INCH = 72


def extract(data: bytes, reading: Reading) -> str:
    """Return the text of every page (OCR'd where needed), joined with ``\\f``.

    The document is loaded from ``data`` rather than from its path, so the
    bytes read are the bytes whose sha256 was verified.

    Raises:
        PermanentExtractionError: encrypted, damaged, not a PDF, or no text at
            all (with why OCR could not help).
    """
    pdf = _open(data)
    try:
        count = min(len(pdf), reading.limits.max_pages)
        pages = [_page_text(pdf, index) for index in range(count)]
        scanned = [i for i, text in enumerate(pages) if not text.strip() and _has_image(pdf, i)]
        if scanned and ocr.available(reading.limits):
            _ocr_pages(pdf, pages, scanned[: reading.limits.ocr.max_pages], reading)
    finally:
        pdf.close()
    if not any(page.strip() and not page.startswith(ocr.STOPPED) for page in pages):
        if scanned:
            ocr.check_available(reading.limits, "pdf has no text layer; its scanned pages")
            raise PermanentExtractionError(f"pdf has no text layer, and {ocr.OUT_OF_TIME}")
        raise PermanentExtractionError("pdf has no text (no text layer and no scanned pages)")
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


def _has_image(pdf: pypdfium2.PdfDocument, index: int) -> bool:
    """Whether a page draws an image (only such pages are worth OCR)."""
    try:
        page = pdf[index]
    except pypdfium2.PdfiumError:
        return False
    try:
        kinds = (pypdfium2.raw.FPDF_PAGEOBJ_IMAGE,)
        return next(iter(page.get_objects(filter=kinds, max_depth=3)), None) is not None
    finally:
        page.close()


def _ocr_pages(
    pdf: pypdfium2.PdfDocument, pages: list[str], scanned: list[int], reading: Reading
) -> None:
    """OCR the scanned pages in order until done or out of time (a note says so)."""
    for done, index in enumerate(scanned):
        try:
            pages[index] = _ocr_page(pdf, index, reading)
        except ocr.OutOfTime:
            pages[index] = ocr.stopped_note(done, len(scanned))
            return


def _ocr_page(pdf: pypdfium2.PdfDocument, index: int, reading: Reading) -> str:
    """Render one page to grey pixels within the pixel limit and OCR it."""
    page = pdf[index]
    try:
        width, height = page.get_size()
        scale = _DPI / _POINTS_PER_INCH
        pixels = width * height * scale * scale
        if pixels > reading.limits.max_image_pixels:
            scale *= (reading.limits.max_image_pixels / pixels) ** 0.5
        bitmap = page.render(scale=scale, grayscale=True)
        try:
            picture = bitmap.to_pil()
        finally:
            bitmap.close()
    finally:
        page.close()
    return ocr.recognise(picture, reading)
