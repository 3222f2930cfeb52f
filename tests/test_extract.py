"""Every supported type through run_task, in this process: the right words, the right extractor."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from docproc.errors import FailureKind, PermanentExtractionError
from docproc.extract import run_task
from docproc.extract.route import route, soffice_available, tesseract_available
from docproc.extract.text import decode
from docproc.models import ExtractFailure, Extraction, ExtractLimits, ExtractTask
from docproc.textstore import TextStore
from tests.docgen import HTML_NOISE, make_corpus

EXPECTED_EXTRACTOR = {
    ".txt": "native:text",
    ".md": "native:text",
    ".html": "native:html",
    ".pdf": "pdfium",
    ".docx": "native:docx",
    ".pptx": "native:pptx",
    ".xlsx": "native:xlsx",
    ".eml": "native:eml",
    ".csv": "native:csv",
    ".tsv": "native:csv",
    ".json": "native:json",
    ".ndjson": "native:json",
    ".xml": "native:xml",
    ".odt": "native:odt",
    ".ods": "native:ods",
    ".odp": "native:odp",
    ".rtf": "native:rtf",
    ".epub": "native:epub",
    ".ipynb": "native:ipynb",
}


def task_for(path: Path) -> ExtractTask:
    return ExtractTask(hashlib.sha256(path.read_bytes()).hexdigest(), path)


def extract(path: Path, store: TextStore, limits: ExtractLimits | None = None) -> Extraction:
    outcome = run_task(task_for(path), limits or ExtractLimits(), store)
    assert isinstance(outcome, Extraction), outcome
    return outcome


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, list[str]]:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def store(tmp_path: Path) -> TextStore:
    return TextStore(tmp_path / "text")


def test_corpus_covers_every_expected_type(corpus: dict[Path, list[str]]) -> None:
    assert {p.suffix for p in corpus} == set(EXPECTED_EXTRACTOR)


@pytest.mark.parametrize("suffix", sorted(EXPECTED_EXTRACTOR))
def test_each_type_recovers_its_sentences(
    corpus: dict[Path, list[str]], store: TextStore, suffix: str
) -> None:
    for path, said in corpus.items():
        if path.suffix != suffix:
            continue
        outcome = extract(path, store)
        text = store.get(outcome.text_sha256)
        assert outcome.extractor == EXPECTED_EXTRACTOR[suffix]
        assert [s for s in said if s not in text] == [], path.name
        assert outcome.chars == len(text)
        assert outcome.truncated_from is None
        assert outcome.sha256 == task_for(path).sha256
        assert outcome.seconds >= 0


def test_html_noise_is_dropped(corpus: dict[Path, list[str]], store: TextStore) -> None:
    for path in corpus:
        if path.suffix in (".html", ".eml"):
            text = store.get(extract(path, store).text_sha256)
            assert not [noise for noise in HTML_NOISE if noise in text], path.name


def test_html_blocks_become_lines_and_whitespace_collapses(tmp_path: Path) -> None:
    path = tmp_path / "layout.htm"
    path.write_bytes(
        b"<html><body><p>first   line\n  continues</p><div>second<br>third</div>"
        b"<table><tr><td>a</td><td>b</td></tr></table><!-- hidden comment --></body></html>"
    )
    store = TextStore(tmp_path / "text")
    text = store.get(extract(path, store).text_sha256)
    assert text == "first line continues\nsecond\nthird\na\tb"


def test_html_meta_charset_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "legacy.html"
    path.write_bytes(
        '<html><head><meta charset="windows-1252"></head><body>Café “quoted”</body></html>'.encode(
            "cp1252"
        )
    )
    store = TextStore(tmp_path / "text")
    assert store.get(extract(path, store).text_sha256) == "Café “quoted”"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Grüße ✓".encode("utf-16"), "Grüße ✓"),
        ("Grüße ✓".encode("utf-16-be"), "Grüße ✓"),
        ("Grüße ✓".encode("utf-32"), "Grüße ✓"),
        ("Grüße ✓".encode("utf-8-sig"), "Grüße ✓"),
        ("plain ascii words".encode("utf-16-le"), "plain ascii words"),
        ("déjà vu".encode("latin-1"), "déjà vu"),
        ("“smart” quotes".encode("cp1252"), "“smart” quotes"),
    ],
)
def test_text_decoding(data: bytes, expected: str) -> None:
    assert decode(data) == expected


def test_newlines_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "dos.txt"
    path.write_bytes(b"one\r\ntwo\rthree\n")
    store = TextStore(tmp_path / "text")
    assert store.get(extract(path, store).text_sha256) == "one\ntwo\nthree"


def test_pdf_pages_are_separated_by_form_feeds(
    corpus: dict[Path, list[str]], store: TextStore
) -> None:
    path = next(p for p in corpus if p.suffix == ".pdf")
    text = store.get(extract(path, store).text_sha256)
    assert text.count("\f") == len(corpus[path]) - 1


def test_text_is_cut_at_max_chars_and_the_cut_recorded(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("x" * 5000)
    store = TextStore(tmp_path / "text")
    outcome = extract(path, store, ExtractLimits(max_chars=1000))
    assert (outcome.chars, outcome.truncated_from) == (1000, 5000)
    assert store.get(outcome.text_sha256) == "x" * 1000


def test_whitespace_only_document_has_no_text(tmp_path: Path) -> None:
    path = tmp_path / "blank.md"
    path.write_text(" \n\t\n ")
    outcome = run_task(task_for(path), ExtractLimits(), TextStore(tmp_path / "text"))
    assert isinstance(outcome, ExtractFailure)
    assert (outcome.kind, outcome.reason) == (FailureKind.PERMANENT, "document contains no text")
    assert outcome.extractor == "native:text"


def test_rst_and_org_are_read_as_text_without_pandoc(tmp_path: Path) -> None:
    for name in ("notes.rst", "todo.org"):
        path = tmp_path / name
        path.write_text("Title\n=====\n\nA paragraph of markup text.\n")
        store = TextStore(tmp_path / "text")
        outcome = extract(path, store)
        assert "A paragraph of markup text." in store.get(outcome.text_sha256)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("scan.PNG", "image/png needs OCR: install Debian's tesseract-ocr (make system-deps)"),
        ("talk.mp3", "audio/mpeg needs speech recognition, which is not supported"),
        (
            "old.doc",
            "doc needs LibreOffice: install Debian's libreoffice-writer-nogui and "
            "libreoffice-impress-nogui",
        ),
        ("bundle.7z", "archives of type '.7z' are not expanded (zip and tar are)"),
        ("photo.heic", "image/heic is not supported (no permissively licensed decoder)"),
    ],
)
def test_route_refusals_say_what_is_missing(
    name: str, reason: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A machine without the optional tools: an empty PATH (their routes, where
    # they are installed, are tested in test_extract_formats.py).
    monkeypatch.setenv("PATH", str(tmp_path))
    soffice_available.cache_clear()
    tesseract_available.cache_clear()
    try:
        with pytest.raises(PermanentExtractionError) as caught:
            route(Path(name))
    finally:
        soffice_available.cache_clear()
        tesseract_available.cache_clear()
    assert caught.value.reason == reason


@pytest.mark.parametrize("name", ["data.xyz", "Makefile", "notes.yaml", "main.go"])
def test_unknown_names_are_routed_by_their_bytes(name: str) -> None:
    assert route(Path(name)) == "sniff"


def test_route_ignores_suffix_case() -> None:
    assert route(Path("REPORT.PDF")) == "pdfium"
    assert route(Path("Deck.PptX")) == "native:pptx"
