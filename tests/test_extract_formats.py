"""The readers added for real repositories: OCR, LibreOffice, archives, content sniffing,
data files as people read them, and the hostile inputs each must survive.

OCR and LibreOffice tests need Debian's packages (``make system-deps``); they
skip, saying so, only when the program is genuinely absent. CI installs them.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import struct
import time
import zipfile
from pathlib import Path

import pytest

from docproc.errors import FailureKind, PermanentExtractionError
from docproc.extract import run_task
from docproc.extract.route import soffice_available, tesseract_available
from docproc.models import (
    ExtractFailure,
    Extraction,
    ExtractLimits,
    ExtractOutcome,
    ExtractTask,
    OcrOptions,
)
from docproc.textstore import TextStore
from tests import docformats
from tests.docgen import sentences

needs_tesseract = pytest.mark.skipif(
    not tesseract_available(), reason="tesseract is not installed (make system-deps)"
)
needs_soffice = pytest.mark.skipif(
    not soffice_available(), reason="LibreOffice (soffice) is not installed (make system-deps)"
)


def run(path: Path, tmp_path: Path, limits: ExtractLimits | None = None) -> ExtractOutcome:
    task = ExtractTask(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    return run_task(task, limits or ExtractLimits(), TextStore(tmp_path / "text"))


def text_of(
    path: Path, tmp_path: Path, limits: ExtractLimits | None = None
) -> tuple[str, Extraction]:
    outcome = run(path, tmp_path, limits)
    assert isinstance(outcome, Extraction), outcome
    return TextStore(tmp_path / "text").get(outcome.text_sha256), outcome


def failure(path: Path, tmp_path: Path, limits: ExtractLimits | None = None) -> ExtractFailure:
    outcome = run(path, tmp_path, limits)
    assert isinstance(outcome, ExtractFailure), outcome
    assert outcome.kind is FailureKind.PERMANENT
    return outcome


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def assert_read(lines: list[str], text: str) -> None:
    """OCR found the scanned lines: every word of them, case aside."""
    wanted = words(" ".join(lines))
    missing = wanted - words(text)
    assert not missing, f"OCR missed {sorted(missing)} in {text!r}"


# -- OCR ------------------------------------------------------------------------------------


@needs_tesseract
@pytest.mark.parametrize("name", ["scan.png", "scan.jpg", "scan.tiff", "scan.bmp", "scan.gif"])
def test_images_are_read_by_ocr(tmp_path: Path, name: str) -> None:
    lines = docformats.write_scan(tmp_path / name)
    text, outcome = text_of(tmp_path / name, tmp_path)
    assert_read(lines, text)
    assert (outcome.extractor, outcome.ocr_pages) == ("ocr:tesseract", 1)


@needs_tesseract
def test_every_page_of_a_multipage_tiff_is_read(tmp_path: Path) -> None:
    pages = [docformats.SCAN_LINES[:1], docformats.SCAN_LINES[1:]]
    path = docformats.write_multipage_tiff(tmp_path / "fax.tif", pages)
    text, outcome = text_of(path, tmp_path)
    assert_read(docformats.SCAN_LINES, text)
    assert outcome.ocr_pages == 2
    assert text.count("\f") == 1


@needs_tesseract
def test_a_mixed_pdf_ocrs_only_the_scanned_page(tmp_path: Path) -> None:
    said = sentences("mixedpdf", 2)
    path = docformats.write_mixed_pdf(tmp_path / "mixed.pdf", said)
    text, outcome = text_of(path, tmp_path)
    first, second = text.split("\f")
    assert all(s in " ".join(first.split()) for s in said)
    assert_read(docformats.SCAN_LINES, second)
    assert (outcome.extractor, outcome.ocr_pages) == ("pdfium+ocr:tesseract", 1)


@needs_tesseract
def test_a_picture_only_deck_is_read_from_its_pictures(tmp_path: Path) -> None:
    import pptx
    import pptx.util

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank: no placeholders, no text
    slide.shapes.add_picture(docformats.render_lines(docformats.SCAN_LINES), 0, 0)
    deck.save(str(tmp_path / "scans.pptx"))
    text, outcome = text_of(tmp_path / "scans.pptx", tmp_path)
    assert_read(docformats.SCAN_LINES, text)
    assert (outcome.extractor, outcome.ocr_pages) == ("native:pptx+ocr:tesseract", 1)


@needs_tesseract
def test_pictures_are_not_ocrd_when_the_document_has_text(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("Typed words are enough.")
    document.add_picture(docformats.render_lines(docformats.SCAN_LINES))
    document.save(str(tmp_path / "typed.docx"))
    text, outcome = text_of(tmp_path / "typed.docx", tmp_path)
    assert "harbor" not in text.lower()
    assert (outcome.extractor, outcome.ocr_pages) == ("native:docx", 0)


def test_ocr_off_refuses_images_with_the_setting_named(tmp_path: Path) -> None:
    docformats.write_scan(tmp_path / "scan.png")
    limits = ExtractLimits(ocr=OcrOptions(mode="off"))
    reason = failure(tmp_path / "scan.png", tmp_path, limits).reason
    if tesseract_available():
        assert reason == 'image needs OCR, and OCR is off ([extract] ocr = "off")'
    else:
        assert reason == "image/png needs OCR: install Debian's tesseract-ocr (make system-deps)"


@needs_tesseract
def test_missing_language_data_names_the_package(tmp_path: Path) -> None:
    docformats.write_scan(tmp_path / "scan.png")
    limits = ExtractLimits(ocr=OcrOptions(languages=("zzz",)))
    reason = failure(tmp_path / "scan.png", tmp_path, limits).reason
    assert reason == "image needs OCR language data 'zzz': install Debian's tesseract-ocr-zzz"


def test_a_pixel_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = docformats.write_pixel_bomb(tmp_path / "bomb.png")
    assert path.stat().st_size < 1000
    started = time.monotonic()
    outcome = run(path, tmp_path)
    assert time.monotonic() - started < 5
    assert isinstance(outcome, ExtractFailure)
    if tesseract_available():
        assert outcome.reason == (
            "image is over the 100,000,000 pixel limit (it declares 60,000 x 60,000), "
            "refused as a possible decompression bomb"
        )


@needs_tesseract
def test_a_truncated_tiff_fails_with_a_reason(tmp_path: Path) -> None:
    path = docformats.write_truncated_tiff(tmp_path / "cut.tiff")
    assert failure(path, tmp_path).reason.startswith("image is damaged or truncated")


@needs_tesseract
def test_a_hanging_tesseract_is_killed_at_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in ``tesseract`` that never answers: the page's timeout ends it."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "tesseract").write_text("#!/bin/sh\nexec sleep 300\n")
    (fake / "tesseract").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{Path(shutil.which('tesseract') or '').parent}")
    from docproc.extract import ocr

    monkeypatch.setattr(ocr, "installed_languages", lambda: frozenset({"eng"}))
    docformats.write_scan(tmp_path / "scan.png")
    limits = ExtractLimits(ocr=OcrOptions(timeout_seconds=1))
    started = time.monotonic()
    reason = failure(tmp_path / "scan.png", tmp_path, limits).reason
    assert reason == "tesseract timed out after 1 s"
    assert time.monotonic() - started < 10


# -- LibreOffice -----------------------------------------------------------------------------


@needs_soffice
@pytest.mark.parametrize("kind", ["doc", "ppt"])
def test_legacy_office_files_are_converted_by_libreoffice(tmp_path: Path, kind: str) -> None:
    """Make a .doc/.ppt with LibreOffice itself (from .odt/.odp), then read it back."""
    said = sentences(f"legacy{kind}", 3)
    writer = docformats.write_odt if kind == "doc" else docformats.write_odp
    source = tmp_path / f"source.{'odt' if kind == 'doc' else 'odp'}"
    writer(source, said)
    import subprocess

    profile = (tmp_path / "profile").as_uri()
    subprocess.run(
        ["soffice", f"-env:UserInstallation={profile}", "--headless", "--convert-to", kind,
         "--outdir", str(tmp_path / "made"), str(source)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    legacy = tmp_path / "made" / f"source.{kind}"
    assert legacy.read_bytes()[:4] == b"\xd0\xcf\x11\xe0"  # a real OLE compound file
    text, outcome = text_of(legacy, tmp_path, ExtractLimits(timeout_seconds=180))
    assert all(s in " ".join(text.split()) for s in said)
    assert outcome.extractor == f"soffice:{kind}"


@needs_soffice
def test_damaged_legacy_file_fails_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "broken.doc"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2000))
    reason = failure(path, tmp_path, ExtractLimits(timeout_seconds=180)).reason
    assert "LibreOffice" in reason


# -- archives ------------------------------------------------------------------------------


def _members() -> dict[str, bytes]:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as nested:
        nested.writestr("deep/note.md", "# Nested\n\nA note inside the inner zip.")
    return {
        "readme.txt": b"Plain words at the top of the archive.",
        "data/table.csv": b"city,country\nLyon,France\n",
        "inner.zip": inner.getvalue(),
        "tool.bin": bytes(range(256)) * 8,
    }


@pytest.mark.parametrize("name", ["bundle.zip", "bundle.tar.gz"])
def test_archives_are_read_member_by_member(tmp_path: Path, name: str) -> None:
    writer = docformats.write_zip if name.endswith(".zip") else docformats.write_tar_gz
    path = writer(tmp_path / name, _members())
    text, outcome = text_of(path, tmp_path)
    assert "== readme.txt ==\nPlain words at the top of the archive." in text
    assert "== data/table.csv ==\ncity; country\ncity: Lyon; country: France" in text
    assert "== deep/note.md ==\n# Nested\n\nA note inside the inner zip." in text
    assert "[skipped tool.bin: unsupported file type '.bin' (binary content)]" in text
    assert outcome.extractor == ("native:zip" if name.endswith(".zip") else "native:tar")


def test_archive_nesting_is_limited(tmp_path: Path) -> None:
    data = b"innermost words"
    for level in range(4):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(f"level{level}.zip" if level else "note.txt", data)
        data = buffer.getvalue()
    (tmp_path / "nest.zip").write_bytes(data)
    reason = failure(tmp_path / "nest.zip", tmp_path).reason
    assert reason == "zip nested 4 archives deep (limit 3)"


def test_encrypted_members_are_skipped_with_a_note(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("open.txt", "Readable member text.")
        archive.writestr("secret.txt", "hidden")
    raw = bytearray(buffer.getvalue())
    # Set the "encrypted" flag of the second member in its local and central headers.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        index = raw.rfind(signature)
        raw[index + offset] |= 0x1
    (tmp_path / "mixed.zip").write_bytes(bytes(raw))
    text, _ = text_of(tmp_path / "mixed.zip", tmp_path)
    assert "Readable member text." in text
    assert "[skipped secret.txt: encrypted]" in text


def test_a_zip_bomb_inside_an_archive_is_refused(tmp_path: Path) -> None:
    from tests.docgen import write_zip_bomb

    bomb = write_zip_bomb(tmp_path / "bomb.docx", megabytes=200).read_bytes()
    path = docformats.write_zip(tmp_path / "outer.zip", {"a.txt": b"words", "bomb.docx": bomb})
    assert "zip bomb" in failure(path, tmp_path).reason


def test_a_gzip_file_is_read_by_its_inner_name(tmp_path: Path) -> None:
    import gzip

    (tmp_path / "notes.md.gz").write_bytes(gzip.compress(b"# Title\n\nCompressed notes."))
    text, outcome = text_of(tmp_path / "notes.md.gz", tmp_path)
    assert text == "# Title\n\nCompressed notes."
    assert outcome.extractor == "native:gz"


# -- content sniffing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("Makefile", b"all:\n\tpython -m build\n", "all:\n\tpython -m build"),
        ("config.yaml", "name: café\nitems: [1, 2]\n".encode(), "name: café\nitems: [1, 2]"),
        ("main.go", b"package main\n\nfunc main() {}\n", "package main\n\nfunc main() {}"),
        ("app.log", b"2026-01-01 started\n", "2026-01-01 started"),
    ],
)
def test_text_without_a_known_suffix_is_read_as_text(
    tmp_path: Path, name: str, data: bytes, expected: str
) -> None:
    (tmp_path / name).write_bytes(data)
    text, outcome = text_of(tmp_path / name, tmp_path)
    assert (text, outcome.extractor) == (expected, "native:text")


def test_a_pdf_without_a_suffix_is_read_as_a_pdf(tmp_path: Path) -> None:
    from tests.docgen import _pdf_bytes

    (tmp_path / "scan0001").write_bytes(_pdf_bytes(["A PDF that lost its name."]))
    text, outcome = text_of(tmp_path / "scan0001", tmp_path)
    assert "A PDF that lost its name." in text
    assert outcome.extractor == "pdfium"


def test_a_mime_message_with_an_odd_suffix_is_read_as_mail(tmp_path: Path) -> None:
    message = b"From: a@example.org\r\nSubject: Signed note\r\n\r\nBody of the note.\r\n"
    (tmp_path / "signed.p7m").write_bytes(message)
    text, outcome = text_of(tmp_path / "signed.p7m", tmp_path)
    assert "Subject: Signed note" in text and "Body of the note." in text
    assert outcome.extractor == "native:eml"


def test_binary_junk_is_refused_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(bytes(range(1, 32)) * 100)
    reason = failure(tmp_path / "blob", tmp_path).reason
    assert reason == "unsupported file type with no extension (binary content)"


@pytest.mark.parametrize(
    ("encoding", "line"),
    [
        ("shift_jis", "東京は日本の首都です。今日は良い天気ですね。会議は午後三時に始まります。"),
        ("gb18030", "北京是中国的首都。今天天气很好。我们下午三点开会。请准时参加。"),
        ("euc_kr", "서울은 한국의 수도입니다. 오늘 날씨가 좋네요. 회의는 오후 세 시에 시작합니다."),
        ("cp1251", "Москва — столица России. Сегодня хорошая погода, совещание в три часа."),
    ],
)
def test_legacy_encodings_are_detected(tmp_path: Path, encoding: str, line: str) -> None:
    (tmp_path / "note.txt").write_bytes(line.encode(encoding))
    (tmp_path / "table.csv").write_bytes(f'label,value\nnote,"{line}"\n'.encode(encoding))
    assert text_of(tmp_path / "note.txt", tmp_path)[0] == line
    assert line in text_of(tmp_path / "table.csv", tmp_path)[0]


# -- data files ------------------------------------------------------------------------------


def test_json_values_are_labelled_and_kept_as_written(tmp_path: Path) -> None:
    (tmp_path / "doc.json").write_text(
        '{"name": "Fa\\u00e7ade", "price": 1.10, "tags": ["a", "b"], "tags": [], '
        '"nested": {"deep": {"flag": true, "none": null}}, "empty": {}}'
    )
    text, _ = text_of(tmp_path / "doc.json", tmp_path)
    assert text.split("\n") == [
        "name: Façade",
        "price: 1.10",
        "tags: a",
        "tags: b",
        "tags: []",
        "nested.deep.flag: true",
        "nested.deep.none: null",
        "empty: {}",
    ]


def test_ndjson_is_read_line_by_line(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "text": f"línea {i}"}, ensure_ascii=True) for i in range(3)]
    (tmp_path / "log.ndjson").write_text("\n".join(lines) + "\n")
    text, _ = text_of(tmp_path / "log.ndjson", tmp_path)
    assert text == "id: 0\ntext: línea 0\n\nid: 1\ntext: línea 1\n\nid: 2\ntext: línea 2"


def test_deeply_nested_json_does_not_crash_the_worker(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    outcome = run(tmp_path / "deep.json", tmp_path)
    assert isinstance(outcome, (Extraction, ExtractFailure))


def test_csv_rows_carry_their_headers(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text('name,role\nAda,"engineer, lead"\nGrace,admiral\n')
    text, _ = text_of(tmp_path / "people.csv", tmp_path)
    assert text == "name; role\nname: Ada; role: engineer, lead\nname: Grace; role: admiral"


def test_utf16_csv_with_a_bom_is_read(tmp_path: Path) -> None:
    (tmp_path / "export.csv").write_bytes("id\tcity\n1\tKöln\n".encode("utf-16"))
    text, _ = text_of(tmp_path / "export.csv", tmp_path)
    assert "city: Köln" in text


def test_xml_entities_are_not_expanded(tmp_path: Path) -> None:
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    (tmp_path / "lol.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "lol">{lol}]><r><a>kept &l9; words</a></r>'
    )
    started = time.monotonic()
    text, _ = text_of(tmp_path / "lol.xml", tmp_path)
    assert time.monotonic() - started < 5
    assert "kept" in text
    assert "lollol" not in text
    (tmp_path / "named.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY co "ACME Corp">]><r><a>kept &co; words</a></r>'
    )
    text, _ = text_of(tmp_path / "named.xml", tmp_path)
    assert text == "kept\nwords"


# -- OpenDocument, RTF, EPUB: hostile -----------------------------------------------------------


def test_an_odt_zip_bomb_is_refused(tmp_path: Path) -> None:
    path = docformats.write_odt_bomb(tmp_path / "bomb.odt")
    assert path.stat().st_size < 1_000_000
    assert "zip bomb" in failure(path, tmp_path).reason


def test_a_deeply_nested_rtf_is_read_without_exhausting_the_stack(tmp_path: Path) -> None:
    path = docformats.write_deep_rtf(tmp_path / "deep.rtf")
    started = time.monotonic()
    text, _ = text_of(path, tmp_path)
    assert "deep words" in text
    assert time.monotonic() - started < 30


def test_rtf_pictures_are_skipped(tmp_path: Path) -> None:
    said = docformats.write_rtf(tmp_path / "pic.rtf", sentences("rtfpic", 3))
    text, outcome = text_of(tmp_path / "pic.rtf", tmp_path)
    assert all(s in text for s in said)
    assert not re.search(r"[0-9a-f]{32}", text), "picture bytes leaked into the text"
    assert outcome.extractor == "native:rtf"


def test_epub_is_read_in_spine_order(tmp_path: Path) -> None:
    said = docformats.write_epub(tmp_path / "book.epub", sentences("spine", 4))
    text, _ = text_of(tmp_path / "book.epub", tmp_path)
    positions = [text.index(s) for s in said]
    assert positions == sorted(positions)
    assert "HEADNOISE" not in text


def test_ods_repeated_empty_cells_are_not_multiplied(tmp_path: Path) -> None:
    said = docformats.write_ods(tmp_path / "sheet.ods", sentences("ods", 3))
    text, _ = text_of(tmp_path / "sheet.ods", tmp_path)
    assert all(s in text for s in said)
    assert len(text) < 2000


@needs_tesseract
def test_ocr_stops_at_the_documents_time_and_keeps_what_it_read(tmp_path: Path) -> None:
    """Pages past the document's time for OCR are left out with a note, not the document."""
    from docproc.extract import ocr, pdf
    from docproc.extract.reading import Reading

    path = docformats.write_mixed_pdf(tmp_path / "mixed.pdf", ["Typed first page words."])
    out_of_time = Reading(ExtractLimits(), deadline=time.monotonic() - 1)
    text = pdf.extract(path.read_bytes(), out_of_time)
    assert "Typed first page words." in text
    assert ocr.stopped_note(0, 1) in text
    assert out_of_time.ocr_pages == 0
    scan = tmp_path / "scan.png"
    docformats.write_scan(scan)
    with pytest.raises(PermanentExtractionError) as caught:
        ocr.image(scan.read_bytes(), Reading(ExtractLimits(), deadline=time.monotonic() - 1))
    assert caught.value.reason == f"image: {ocr.OUT_OF_TIME}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html><body><table><tr><td>Region</td><td>North</td></tr></table></body></html>",
         "Region\tNorth"),
        (b"region,total\nNorth,12\n", "region; total\nregion: North; total: 12"),
    ],
)  # fmt: skip
def test_a_fake_xls_export_is_read_as_what_it_is(
    tmp_path: Path, body: bytes, expected: str
) -> None:
    (tmp_path / "export.xls").write_bytes(body)
    text, outcome = text_of(tmp_path / "export.xls", tmp_path)
    assert (text, outcome.extractor) == (expected, "calamine:xls")


def _lzfu(tokens: list[bytes | tuple[int, int]]) -> bytes:
    """Compress per MS-OXRTFCP from explicit tokens: literal bytes or (offset, length) runs."""
    body, write, flags, group = bytearray(), 207, 0, bytearray()
    items: list[bytes | tuple[int, int]] = [t for tok in tokens for t in (
        [bytes([b]) for b in tok] if isinstance(tok, bytes) else [tok])]  # fmt: skip
    items.append((0, 0))  # the end marker, offset filled in below
    for position, item in enumerate(items):
        if isinstance(item, tuple):
            offset, length = item if position < len(items) - 1 else (write, 2)
            flags |= 1 << (position % 8)
            group += ((offset << 4) | (length - 2)).to_bytes(2, "big")
            write = (write + length) % 4096
        else:
            group += item
            write = (write + 1) % 4096
        if position % 8 == 7 or position == len(items) - 1:
            body += bytes([flags]) + group
            flags, group = 0, bytearray()
    return struct.pack("<IIII", len(body) + 12, 0, 0x75465A4C, 0) + bytes(body)


def test_compressed_rtf_bodies_of_outlook_messages_are_decompressed() -> None:
    from docproc.extract.msg import decompress_rtf

    # "{\rtf1\ansi" is the first 11 bytes of the preloaded dictionary: one run.
    packed = _lzfu([(0, 11), b" Minutes of the board meeting.}"])
    assert decompress_rtf(packed, 10_000) == b"{\\rtf1\\ansi Minutes of the board meeting.}"
    # A run that overlaps the bytes it writes repeats them ("ab" x 3).
    packed = _lzfu([b"{ab", (208, 6), b"}"])
    assert decompress_rtf(packed, 10_000) == b"{abababab}"
    stored = struct.pack("<IIII", 20, 8, 0x414C454D, 0) + b"{\\rtf1 x}"
    assert decompress_rtf(stored, 10_000) == b"{\\rtf1 x"


@needs_soffice
def test_legacy_office_files_under_other_names_are_read_as_what_they_are(tmp_path: Path) -> None:
    """A .doc renamed .docx, and one with no name at all, both go to LibreOffice."""
    import subprocess

    said = sentences("renamed", 3)
    docformats.write_odt(tmp_path / "source.odt", said)
    profile = (tmp_path / "profile").as_uri()
    subprocess.run(
        ["soffice", f"-env:UserInstallation={profile}", "--headless", "--convert-to", "doc",
         "--outdir", str(tmp_path), str(tmp_path / "source.odt")],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    legacy = (tmp_path / "source.doc").read_bytes()
    (tmp_path / "renamed.docx").write_bytes(legacy)
    (tmp_path / "SCAN0042").write_bytes(legacy)
    limits = ExtractLimits(timeout_seconds=180)
    text, outcome = text_of(tmp_path / "renamed.docx", tmp_path, limits)
    assert all(s in " ".join(text.split()) for s in said)
    assert outcome.extractor == "native:docx+soffice:doc"
    text, outcome = text_of(tmp_path / "SCAN0042", tmp_path, limits)
    assert all(s in " ".join(text.split()) for s in said)
    assert outcome.extractor == "soffice:doc"
