"""OCR through Tesseract, and the images it reads: the only module importing Pillow.

Images are opened with Pillow, which reads only the header first: the pixel
count is checked against ``max_image_pixels`` before anything is decoded, so
a decompression bomb (a tiny file declaring 60,000 x 60,000 pixels) is
refused with a reason. (Pillow's own ``MAX_IMAGE_PIXELS`` check is switched
off: it warns at one limit and raises at twice it; ours is one clear limit.)

Each page is converted to 8-bit grey and handed to the ``tesseract`` command
(Debian's ``tesseract-ocr``) as a PGM on stdin,
one process per page under its own timeout, with ``OMP_THREAD_LIMIT=1`` so
two workers never fight over the cores. Multi-page TIFFs are read page by
page, up to ``ocr.max_pages``.

The worker runs all of this; a hung tesseract costs its timeout, and past the
document's timeout the pool kills the worker's whole session.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from functools import cache

import PIL.Image
import PIL.ImageSequence

from docproc.errors import PermanentExtractionError
from docproc.extract import proc, route
from docproc.extract.reading import Reading
from docproc.extract.zipguard import GuardedZip
from docproc.models import ExtractLimits

ENGINE = route.OCR


class OutOfTime(Exception):  # noqa: N818 - a signal between two functions, not an error
    """The document's time for OCR is used up: keep the pages read so far."""


STOPPED = "[OCR stopped after "
OUT_OF_TIME = "OCR ran out of the document's time limit before reading a page"


def stopped_note(done: int, total: int) -> str:
    """The line that says OCR stopped early, kept in the text for people."""
    return f"{STOPPED}{done} of {total} pages: the document's time limit]"


_OFF = 'OCR is off ([extract] ocr = "off")'
_PICTURES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
_MIN_PICTURE_BYTES = 2048  # icons and bullets carry no text worth a Tesseract run
_MULTI_PAGE = frozenset(("TIFF", "MPO"))


def check_available(limits: ExtractLimits, what: str) -> None:
    """Refuse with one line when OCR is off or Tesseract (or its language data) is missing."""
    if limits.ocr.mode == "off":
        raise PermanentExtractionError(f"{what} needs OCR, and {_OFF}")
    if not route.tesseract_available():
        raise PermanentExtractionError(f"{what} needs OCR: {route.TESSERACT_HINT}")
    missing = [lang for lang in limits.ocr.languages if lang not in installed_languages()]
    if missing:
        package = f"tesseract-ocr-{missing[0]}"
        raise PermanentExtractionError(
            f"{what} needs OCR language data '{missing[0]}': install Debian's {package}"
        )


def available(limits: ExtractLimits) -> bool:
    """Whether OCR can run at all (on, installed, languages present)."""
    try:
        check_available(limits, "")
    except PermanentExtractionError:
        return False
    return True


@cache
def installed_languages() -> frozenset[str]:
    """Language data Tesseract has (``tesseract --list-langs``)."""
    tesseract = shutil.which("tesseract")
    if tesseract is None:
        return frozenset()
    try:
        out = proc.run([tesseract, "--list-langs"], timeout=30, what="tesseract --list-langs")
    except PermanentExtractionError:
        return frozenset()
    lines = out.decode("utf-8", "replace").splitlines()
    return frozenset(line.strip() for line in lines[1:] if line.strip())


def image(data: bytes, reading: Reading) -> str:
    """The text of an image file; every page of a multi-page TIFF."""
    limits = reading.limits
    check_available(limits, "image")
    picture = open_image(data, limits)
    pages = []
    try:
        for frame in _frames(picture, limits.ocr.max_pages):
            pages.append(recognise(frame, reading))
    except OutOfTime:
        if not pages:
            raise PermanentExtractionError(f"image: {OUT_OF_TIME}") from None
        pages.append(stopped_note(len(pages), getattr(picture, "n_frames", 1)))
    except (OSError, ValueError, EOFError) as exc:
        if not pages:
            raise PermanentExtractionError(f"image is damaged or truncated ({exc})") from exc
    finally:
        picture.close()
    return "\f".join(pages)


def open_image(data: bytes, limits: ExtractLimits) -> PIL.Image.Image:
    """Open (not decode) an image, refusing unknown formats and pixel bombs."""
    PIL.Image.MAX_IMAGE_PIXELS = None  # checked below, before any pixel is decoded
    try:
        picture = PIL.Image.open(io.BytesIO(data))
    except (OSError, ValueError, SyntaxError) as exc:
        raise PermanentExtractionError(f"image is damaged or not an image ({exc})") from exc
    width, height = picture.size
    if width * height > limits.max_image_pixels:
        picture.close()
        raise PermanentExtractionError(_bomb(limits, f"it declares {width:,} x {height:,}"))
    return picture


def recognise(picture: PIL.Image.Image, reading: Reading) -> str:
    """OCR one decoded page; counts it in ``reading``.

    Raises:
        OutOfTime: the document's time for slow work is used up (before starting).
        PermanentExtractionError: tesseract failed or ran past its timeout.
    """
    if reading.time_left() <= 0:
        raise OutOfTime
    grey = picture.convert("L")
    buffer = io.BytesIO()
    grey.save(buffer, format="PPM")  # 8-bit grey saves as a binary PGM: no compression cost
    options = reading.limits.ocr
    argv = ["tesseract", "stdin", "stdout", "-l", "+".join(options.languages), "--psm", "3"]
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    timeout = max(1.0, min(options.timeout_seconds, reading.time_left()))
    out = proc.run(argv, timeout=timeout, what="tesseract", stdin=buffer.getvalue(), env=env)
    reading.ocr_pages += 1
    reading.used(ENGINE)
    return out.decode("utf-8", "replace").replace("\f", "").strip()


def pictures(data: bytes, media: str, reading: Reading) -> str:
    """OCR the pictures stored under ``media`` in an Office zip (docx ``word/media/``...).

    Used only when the document has no text at all (a slide deck of scans).
    """
    limits = reading.limits
    if not available(limits):
        return ""
    texts = []
    with GuardedZip(data, limits, "document") as archive:
        names = sorted(
            n for n in archive.names if n.startswith(media) and n.lower().endswith(_PICTURES)
        )
        for name in names[: limits.ocr.max_pages]:
            raw = archive.read(name)
            if raw is None or len(raw) < _MIN_PICTURE_BYTES:
                continue
            texts.append(_picture_text(raw, reading))
    return "\n\n".join(t for t in texts if t)


def _picture_text(raw: bytes, reading: Reading) -> str:
    """One embedded picture's text; a broken or oversized picture is skipped."""
    try:
        picture = open_image(raw, reading.limits)
    except PermanentExtractionError:
        return ""
    try:
        return recognise(picture, reading)
    except (OSError, ValueError, EOFError, PermanentExtractionError, OutOfTime):
        return ""  # one unreadable picture must not cost the others
    finally:
        picture.close()


def _frames(picture: PIL.Image.Image, limit: int) -> Iterator[PIL.Image.Image]:
    if picture.format not in _MULTI_PAGE:
        yield picture
        return
    for index, frame in enumerate(PIL.ImageSequence.Iterator(picture)):
        if index >= limit:
            return
        yield frame


def _bomb(limits: ExtractLimits, detail: str) -> str:
    return (
        f"image is over the {limits.max_image_pixels:,} pixel limit ({detail}), "
        "refused as a possible decompression bomb"
    )
