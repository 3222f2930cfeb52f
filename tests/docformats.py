"""Writers for the formats docgen's libraries cannot make: OpenDocument, RTF, EPUB,
notebooks, archives, scans (text rendered to pixels), mixed PDFs, and hostile files.

Each ``write_*`` takes ``(path, said)`` (the sentences to put inside) and
returns the sentences extraction must recover, like docgen's writers. Only
the stdlib, Pillow and fpdf2 are used; the files are built by hand from the
formats' specifications, so they are small and deterministic.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path
from xml.sax.saxutils import escape

from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

# Words only (no digits): Tesseract reads these reliably from rendered pixels.
SCAN_LINES = [
    "Quarterly harbor inspection report",
    "The northern pier needs new timber before winter",
    "Approved by the harbor master",
]
_ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
    'office:version="1.3"'
)
_ODF_TYPES = {
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
}


# -- OpenDocument --------------------------------------------------------------------------


def _odf(path: Path, kind: str, body: str) -> None:
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-content {_ODF_NS}>'
        f"<office:body>{body}</office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{_ODF_TYPES[kind]}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", _ODF_TYPES[kind], compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", content)
        archive.writestr("META-INF/manifest.xml", manifest)


def write_odt(path: Path, said: list[str]) -> list[str]:
    """Heading, paragraphs with spans and spaces, a list and a table."""
    first, second, third, *rest = (escape(s) for s in said)
    body = (
        "<office:text>"
        f'<text:h text:outline-level="1">Report heading</text:h>'
        f"<text:p>{first.replace(' ', '<text:s/>', 1)}</text:p>"
        f"<text:list><text:list-item><text:p>{second}</text:p></text:list-item></text:list>"
        "<table:table table:name='T'><table:table-row>"
        f"<table:table-cell><text:p>{third}</text:p></table:table-cell>"
        "<table:table-cell><text:p>cell b1</text:p></table:table-cell>"
        "</table:table-row></table:table>"
        + "".join(f"<text:p><text:span>{s}</text:span></text:p>" for s in rest)
        + "</office:text>"
    )
    _odf(path, "odt", body)
    return [*said, "Report heading", "cell b1"]


def write_ods(path: Path, said: list[str]) -> list[str]:
    rows = "".join(
        "<table:table-row>"
        f'<table:table-cell office:value-type="float" office:value="{i}"><text:p>{i}</text:p>'
        f"</table:table-cell><table:table-cell><text:p>{escape(s)}</text:p></table:table-cell>"
        '<table:table-cell table:number-columns-repeated="1000"/>'
        "</table:table-row>"
        for i, s in enumerate(said)
    )
    body = (
        "<office:spreadsheet>"
        f'<table:table table:name="Figures">{rows}'
        '<table:table-row table:number-rows-repeated="1048000">'
        "<table:table-cell/></table:table-row>"
        "</table:table></office:spreadsheet>"
    )
    _odf(path, "ods", body)
    return [*said, "Figures"]


def write_odp(path: Path, said: list[str]) -> list[str]:
    pages = "".join(
        f'<draw:page draw:name="page{i}"><draw:frame><draw:text-box>'
        f"<text:p>{escape(s)}</text:p></draw:text-box></draw:frame></draw:page>"
        for i, s in enumerate(said)
    )
    _odf(path, "odp", f"<office:presentation>{pages}</office:presentation>")
    return said


# -- RTF -----------------------------------------------------------------------------------


def _rtf_escape(sentence: str) -> str:
    out = []
    for char in sentence:
        if char in "\\{}":
            out.append("\\" + char)
        elif ord(char) > 127:
            out.append(f"\\u{ord(char) if ord(char) < 32768 else ord(char) - 65536}?")
        else:
            out.append(char)
    return "".join(out)


def write_rtf(path: Path, said: list[str], *, picture: bool = True) -> list[str]:
    """Paragraphs, a non-ASCII line, and (by default) an embedded PNG picture group."""
    said = [*said, "Crème brûlée for the café in Zürich."]
    pict = ""
    if picture:
        png = render_lines(["PICTURE TEXT MUST NOT APPEAR"], width=600).getvalue()
        pict = "{\\*\\shppict{\\pict\\pngblip\\picw600\\pich100 " + png.hex() + "}}"
    paragraphs = "".join(f"{{\\pard {_rtf_escape(s)}\\par}}\n" for s in said)
    document = (
        "{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fswiss Helvetica;}}\n"
        f"{paragraphs[: len(paragraphs) // 2]}{pict}{paragraphs[len(paragraphs) // 2 :]}}}"
    )
    path.write_bytes(document.encode("ascii"))
    return said


def write_deep_rtf(path: Path, depth: int = 200_000) -> Path:
    """An RTF whose groups nest ``depth`` deep around a little text."""
    path.write_bytes(b"{\\rtf1\\ansi " + b"{" * depth + b"deep words" + b"}" * depth + b"}")
    return path


# -- EPUB and notebooks -----------------------------------------------------------------------


def write_epub(path: Path, said: list[str]) -> list[str]:
    """Chapters in nested folders; the spine order differs from the archive order."""
    chapters = {
        "OEBPS/text/part2/ch2.xhtml": said[len(said) // 2 :],
        "OEBPS/text/part1/ch1.xhtml": said[: len(said) // 2],
    }
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        "<manifest>"
        '<item id="c2" href="text/part2/ch2.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="c1" href="text/part1/ch1.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="css" href="style.css" media-type="text/css"/>'
        '</manifest><spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>'
    )
    container = (
        '<?xml version="1.0"?><container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", container)
        archive.writestr("OEBPS/content.opf", opf)
        archive.writestr("OEBPS/style.css", "p { color: black }")
        for name, lines in chapters.items():
            paragraphs = "".join(f"<p>{escape(s)}</p>" for s in lines)
            archive.writestr(
                name,
                '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
                f"<title>HEADNOISE</title></head><body>{paragraphs}</body></html>",
            )
    return said


def write_ipynb(path: Path, said: list[str]) -> list[str]:
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Notes\n", said[0]]},
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": 1,
            "source": [f"print({json.dumps(said[1])})"],
            "outputs": [{"output_type": "stream", "name": "stdout", "text": [said[1] + "\n"]}],
        },
        *({"cell_type": "markdown", "metadata": {}, "source": s} for s in said[2:]),
    ]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(notebook))
    return said


# -- archives ------------------------------------------------------------------------------


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


# -- scans ---------------------------------------------------------------------------------


def render_lines(lines: list[str], *, width: int = 1700, fmt: str = "PNG") -> io.BytesIO:
    """Text drawn in black on white at a size Tesseract reads well."""
    image = page_image(lines, width)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer


def page_image(lines: list[str], width: int = 1700) -> Image.Image:
    font = ImageFont.load_default(size=42)
    image = Image.new("L", (width, 120 + 90 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((60, 60 + 90 * index), line, fill=0, font=font)
    return image


def write_scan(path: Path, lines: list[str] = SCAN_LINES) -> list[str]:
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
    kind = fmt.get(path.suffix, path.suffix[1:].upper())
    path.write_bytes(render_lines(lines, fmt=kind).getvalue())
    return lines


def write_multipage_tiff(path: Path, pages: list[list[str]]) -> Path:
    images = [page_image(lines) for lines in pages]
    images[0].save(path, format="TIFF", save_all=True, append_images=images[1:])
    return path


def write_mixed_pdf(path: Path, said: list[str], scanned: list[str] = SCAN_LINES) -> Path:
    """Page 1 has a text layer; page 2 is only a picture of text (a scan)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    for sentence in said:
        pdf.multi_cell(0, 10, sentence, new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()
    pdf.image(page_image(scanned), x=0, y=20, w=210)
    path.write_bytes(bytes(pdf.output()))
    return path


# -- hostile -------------------------------------------------------------------------------


def write_pixel_bomb(path: Path, width: int = 60_000, height: int = 60_000) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1), 255).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    path.write_bytes(bytes(data))
    return path


def write_truncated_tiff(path: Path) -> Path:
    whole = render_lines(SCAN_LINES, fmt="TIFF").getvalue()
    path.write_bytes(whole[: len(whole) // 3])
    return path


def write_odt_bomb(path: Path, megabytes: int = 200) -> Path:
    """An .odt whose content.xml inflates to ``megabytes`` of spaces."""
    chunk = b" " * (1024 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", _ODF_TYPES["odt"], compress_type=zipfile.ZIP_STORED)
        with archive.open("content.xml", "w", force_zip64=True) as member:
            for _ in range(megabytes):
                member.write(chunk)
    return path
