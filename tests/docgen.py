"""Generate test documents of every supported type, with sentences known to be inside.

API (all functions write into ``folder``, which must exist, and are deterministic):

* :func:`make_corpus` -> ``{path: [sentences that extraction must recover]}``,
  one or more files per supported type.
* :func:`make_hostile` -> ``{name: path}`` of inputs that must fail cleanly
  (see :data:`HOSTILE` for the names and the failure each must produce).
* :func:`make_mixed_corpus` -> like :func:`make_corpus`, ``n`` files of the
  common types with distinct contents, for pipeline and benchmark runs.
* :data:`HTML_NOISE`: words inside script/style/noscript/head that must never
  appear in extracted text.

Only test dependencies are used (fpdf2, python-docx, python-pptx, openpyxl).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import zipfile
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import docx
import openpyxl
import pptx
import pptx.util
from fpdf import FPDF

from tests import docformats

HTML_NOISE = ["SCRIPTNOISE", "STYLENOISE", "NOSCRIPTNOISE", "HEADNOISE"]
# A 1x1 transparent PNG: a real binary attachment for the e-mail.
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
HOSTILE: dict[str, str] = {
    "empty": "0-byte .txt: permanent, file is empty",
    "truncated_pdf": "first 300 bytes of a PDF: permanent, damaged",
    "encrypted_pdf": "PDF with a user password: permanent, encrypted",
    "scanned_pdf": "PDF whose page has only a drawing: permanent, no text layer",
    "random_pdf": "random bytes named .pdf: permanent, damaged",
    "random_docx": "random bytes named .docx: permanent, damaged",
    "zip_bomb_docx": ".docx whose member inflates to 200 MB of zeros: permanent, zip bomb",
    "binary_txt": "NUL-riddled bytes named .txt: permanent, binary",
    "image_png": "a PNG: permanent, needs OCR",
    "unknown_suffix": "a .xyz file of binary bytes: permanent, unsupported type",
    "big_text": "a large plain-text file (50 MB by default): succeeds within limits",
    "non_utf8_name": "a .txt whose file name is not valid UTF-8: succeeds",
}

_WORDS = [
    *("amber", "basalt", "cobalt", "delta", "ember", "fjord", "glacier", "harbor", "indigo"),
    *("juniper", "kestrel", "lagoon", "meadow", "nebula", "orchid", "prairie", "quartz"),
    *("riverbank", "saffron", "tundra", "umber", "valley", "willow", "xenon", "yarrow", "zephyr"),
]


def sentences(seed: str, count: int = 3) -> list[str]:
    """Distinct, deterministic English-looking sentences for ``seed``."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        words = rng.sample(_WORDS, 5)
        out.append(f"The {words[0]} {words[1]} sentence {seed}{i} crosses the {words[2]} hills.")
    return out


def make_corpus(folder: Path) -> dict[Path, list[str]]:
    """Write one document per supported type (several for text encodings)."""
    made: dict[Path, list[str]] = {}
    for name, writer in _WRITERS.items():
        path = folder / name
        made[path] = writer(path, sentences(path.stem.replace("_", "")))
    return made


MIXED_KINDS = ("txt", "md", "html", "pdf", "docx", "pptx", "xlsx", "eml", "csv")
BENCH_KINDS = (
    "txt",
    "md",
    "html",
    "csv",
    "json",
    "xml",
    "eml",
    "docx",
    "pptx",
    "xlsx",
    "pdf",
    "odt",
    "rtf",
)
"""The 13 formats of the side-by-side benchmark (issue 12)."""


def make_mixed_corpus(
    folder: Path,
    n: int,
    *,
    kinds: tuple[str, ...] = MIXED_KINDS,
    sentences_per_file: int = 4,
) -> dict[Path, list[str]]:
    """Write ``n`` documents cycling through ``kinds`` (a subset of :data:`MIXED_KINDS`).

    ``sentences_per_file`` (at least 4) makes documents longer: more paragraphs,
    PDF pages, slides and spreadsheet rows.
    """
    writers = {k: _WRITERS[f"plain.{k}" if k in ("txt", "md") else f"sample.{k}"] for k in kinds}
    made: dict[Path, list[str]] = {}
    for i in range(n):
        kind = kinds[i % len(kinds)]
        path = folder / f"doc{i:05d}.{kind}"
        made[path] = writers[kind](path, sentences(f"mix{i}x", max(sentences_per_file, 4)))
    return made


def make_hostile(folder: Path, big_mb: int = 50) -> dict[str, Path]:
    """Write the inputs described in :data:`HOSTILE`; returns name -> path."""
    paths = {
        "empty": _write(folder / "empty.txt", b""),
        "truncated_pdf": _write(folder / "truncated.pdf", _pdf_bytes(sentences("trunc"))[:300]),
        "encrypted_pdf": _write(folder / "encrypted.pdf", _encrypted_pdf()),
        "scanned_pdf": _write(folder / "scanned.pdf", _drawing_only_pdf()),
        "random_pdf": _write(folder / "random.pdf", random.Random(1).randbytes(8192)),
        "random_docx": _write(folder / "random.docx", random.Random(2).randbytes(8192)),
        "zip_bomb_docx": write_zip_bomb(folder / "bomb.docx"),
        "binary_txt": _write(folder / "binary.txt", bytes(range(256)) * 64),
        "image_png": _write(folder / "picture.png", PNG_1PX),
        "unknown_suffix": _write(folder / "data.xyz", bytes(range(1, 32)) * 64),
        "big_text": write_big_text(folder / "big.txt", big_mb),
    }
    odd = folder / os.fsdecode(b"caf\xe9 report.txt")  # latin-1 byte: not UTF-8
    paths["non_utf8_name"] = _write(odd, b"A file whose name is not UTF-8 still has text.\n")
    return paths


def write_zip_bomb(path: Path, megabytes: int = 200) -> Path:
    """A .docx-shaped zip whose document.xml inflates to ``megabytes`` of zeros.

    The member is streamed in 1 MiB chunks, so writing it needs no big buffer;
    deflate packs the zeros about 1000:1 (200 MB -> ~200 KB).
    """
    chunk = bytes(1024 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            for _ in range(megabytes):
                member.write(chunk)
    return path


def write_big_text(path: Path, megabytes: int) -> Path:
    """Plain ASCII text of about ``megabytes`` MiB, written in 1 MiB blocks."""
    line = "Large files are read once, hashed once and extracted within limits.\n"
    block = (line * (1024 * 1024 // len(line) + 1))[: 1024 * 1024].encode("ascii")
    with open(path, "wb") as out:
        for _ in range(megabytes):
            out.write(block)
    return path


# -- writers: each takes (path, sentences) and returns the sentences to look for -------------


def _txt(path: Path, said: list[str]) -> list[str]:
    path.write_bytes("\r\n".join(said).encode("utf-8"))
    return said


def _utf16(path: Path, said: list[str]) -> list[str]:
    said = [*said, "Unicode survives: naïve café, Grüße, 東京."]
    path.write_bytes("\n".join(said).encode("utf-16"))  # with BOM
    return said


def _utf16_nobom(path: Path, said: list[str]) -> list[str]:
    path.write_bytes("\n".join(said).encode("utf-16-le"))
    return said


def _latin1(path: Path, said: list[str]) -> list[str]:
    said = [*said, "Le café est très bon à München, für Jürgen."]
    path.write_bytes("\n".join(said).encode("latin-1"))
    return said


def _md(path: Path, said: list[str]) -> list[str]:
    body = "\n\n".join(said[1:])
    path.write_text(f"# Heading\n\n{said[0]}\n\n- item one\n- item two\n\n{body}\n")
    return said


def _html(path: Path, said: list[str]) -> list[str]:
    cells = "".join(f"<tr><td>{s}</td><td>42</td></tr>" for s in said[2:])
    path.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>HEADNOISE</title>"
        "<style>.x { color: red } /* STYLENOISE */</style>"
        "<script>var noise = 'SCRIPTNOISE';</script></head><body>"
        f"<h1>{said[0]}</h1><div><p>{said[1]}</p>"
        "<noscript>NOSCRIPTNOISE</noscript>"
        f"<table>{cells}</table></div></body></html>",
        encoding="utf-8",
    )
    return said


def _pdf_bytes(said: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for sentence in said:  # one sentence per page: a multi-page document
        pdf.add_page()
        pdf.multi_cell(0, 10, sentence)
    return bytes(pdf.output())


def _pdf(path: Path, said: list[str]) -> list[str]:
    path.write_bytes(_pdf_bytes(said))
    return said


def _encrypted_pdf() -> bytes:
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner-pw", user_password="user-pw")  # noqa: S106
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 10, "This text is locked behind a password.")
    return bytes(pdf.output())


def _drawing_only_pdf() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")  # like a scanned page: marks, no text layer
    return bytes(pdf.output())


def _docx(path: Path, said: list[str]) -> list[str]:
    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = said[0]
    document.add_heading("Report heading", level=1)
    document.add_paragraph(said[1])
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = said[2]
    table.cell(0, 1).text = "cell b1"
    table.cell(1, 0).text = "cell a2"
    table.cell(1, 1).text = "cell b2"
    document.add_paragraph("Closing paragraph after the table.")
    for sentence in said[3:]:
        document.add_paragraph(sentence)
    document.save(str(path))
    return [*said, "Report heading", "cell b2", "Closing paragraph after the table."]


def _pptx(path: Path, said: list[str]) -> list[str]:
    deck = pptx.Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Quarterly deck"
    first.placeholders[1].text = said[0]
    first.notes_slide.notes_text_frame.text = said[1]
    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "Numbers"
    inch = pptx.util.Inches
    frame = second.shapes.add_table(2, 2, inch(1), inch(2), inch(6), inch(2))
    frame.table.cell(0, 0).text = said[2]
    frame.table.cell(1, 1).text = "table corner"
    for sentence in said[3:]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.placeholders[1].text = sentence
    deck.save(str(path))
    return [*said, "Quarterly deck", "Numbers", "table corner"]


def _xlsx(path: Path, said: list[str]) -> list[str]:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Summary"
    sheet.append(["Item", "Amount", "Note"])
    sheet.append(["alpha", 12.5, said[0]])
    sheet.append(["beta", 7, said[1]])
    other = book.create_sheet("Details")
    other["B3"] = said[2]
    for row, sentence in enumerate(said[3:], start=4):
        other.cell(row=row, column=1, value=sentence)
    book.save(str(path))
    return [*said, "Summary", "Details", "12.5"]


def _eml(path: Path, said: list[str]) -> list[str]:
    message = EmailMessage()
    message["Subject"] = "Quarterly figures attached"
    message["From"] = "Alice Example <alice@example.org>"
    message["To"] = "bob@example.org"
    message["Date"] = "Mon, 03 Nov 2025 10:00:00 +0000"
    message.set_content("\n\n".join(said))
    message.add_alternative(f"<html><body><p>{said[0]}</p></body></html>", subtype="html")
    message.add_attachment(PNG_1PX, maintype="image", subtype="png", filename="chart.png")
    path.write_bytes(message.as_bytes())
    return [*said, "Quarterly figures attached", "alice@example.org"]


def _eml_html(path: Path, said: list[str]) -> list[str]:
    message = EmailMessage()
    message["Subject"] = "Only HTML inside"
    message["From"] = "carol@example.org"
    message.set_content(
        f"<html><head><style>p {{}} STYLENOISE</style></head><body><p>{said[0]}</p>"
        f"<p>{said[1]}</p></body></html>",
        subtype="html",
    )
    path.write_bytes(message.as_bytes())
    return [said[0], said[1], "Only HTML inside"]


def _csv(path: Path, said: list[str], delimiter: str = ",") -> list[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(["id", "name", "comment"])
    for i, sentence in enumerate(said):
        writer.writerow([i, f"row{i}", sentence])
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return said


def _tsv(path: Path, said: list[str]) -> list[str]:
    return _csv(path, said, delimiter="\t")


def _json(path: Path, said: list[str]) -> list[str]:
    path.write_text(json.dumps({"title": said[0], "items": [{"text": s} for s in said[1:]]}))
    return said


def _ndjson(path: Path, said: list[str]) -> list[str]:
    path.write_text("".join(json.dumps({"text": s}) + "\n" for s in said))
    return said


def _xml(path: Path, said: list[str]) -> list[str]:
    items = "".join(f"<item><text>{s}</text></item>" for s in said)
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<catalog>{items}</catalog>\n')
    return said


def _ragged_csv(path: Path, said: list[str]) -> list[str]:
    """Rows of different widths, a quoted delimiter, semicolons (a European export)."""
    lines = ["name;note;extra", f'first;"{said[0]}; quoted"', f"second;{said[1]};more;and more"]
    lines += [f"only;{s}" for s in said[2:]] + ["lonely"]
    path.write_text("\n".join(lines) + "\n", encoding="cp1252")
    return [f"{said[0]}; quoted", *said[1:], "lonely"]


def _nonascii_json(path: Path, said: list[str]) -> list[str]:
    """Non-ASCII as \\u escapes on disk; repeated keys; numbers as written."""
    body = (
        '{"title": "Fa\\u00e7ade r\\u00e9novation \\u2014 \\u6771\\u4eac", "amount": 1.10,'
        f' "note": {json.dumps(said[0])}, "note": {json.dumps(said[1])},'
        f' "items": [{", ".join(json.dumps({"text": s}) for s in said[2:])}], "empty": {{}}}}'
    )
    path.write_text(body, encoding="utf-8")
    return [*said, "Façade rénovation — 東京", "amount: 1.10", "empty: {}"]


def _shift_jis(path: Path, said: list[str]) -> list[str]:
    line = "東京は日本の首都です。今日は良い天気ですね。会議は午後三時に始まります。"
    path.write_bytes("\n".join([*said, line]).encode("shift_jis"))
    return [*said, line]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


_WRITERS: dict[str, Callable[[Path, list[str]], list[str]]] = {
    "plain.txt": _txt,
    "utf16_bom.txt": _utf16,
    "utf16_nobom.txt": _utf16_nobom,
    "latin1.txt": _latin1,
    "plain.md": _md,
    "sample.html": _html,
    "sample.pdf": _pdf,
    "sample.docx": _docx,
    "sample.pptx": _pptx,
    "sample.xlsx": _xlsx,
    "sample.eml": _eml,
    "html_only.eml": _eml_html,
    "sample.csv": _csv,
    "sample.tsv": _tsv,
    "sample.json": _json,
    "sample.ndjson": _ndjson,
    "sample.xml": _xml,
    "ragged.csv": _ragged_csv,
    "nonascii.json": _nonascii_json,
    "shiftjis.txt": _shift_jis,
    "sample.odt": docformats.write_odt,
    "sample.ods": docformats.write_ods,
    "sample.odp": docformats.write_odp,
    "sample.rtf": docformats.write_rtf,
    "sample.epub": docformats.write_epub,
    "sample.ipynb": docformats.write_ipynb,
}
