"""Every supported type and every hostile input, end to end through ``docproc scan``.

Each document ends in the ledger: with its known sentences in the stored
text, or failed with a reason a person can act on; nothing else is affected.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docproc.extract.route import tesseract_available
from docproc.ledger.connection import open_ledger
from docproc.textstore import TextStore
from tests.clitools import AS_ORDINARY_USER, docproc
from tests.docgen import make_corpus, make_hostile
from tests.parts import queries

REASONS = {
    "empty.txt": "file is empty (0 bytes)",
    "truncated.pdf": "pdf is damaged or not a pdf (",
    "encrypted.pdf": "pdf is encrypted (password required)",
    "scanned.pdf": "pdf has no text (no text layer and no scanned pages)",
    "random.pdf": "pdf is damaged or not a pdf (",
    "random.docx": "docx is damaged or not a docx (",
    "bomb.docx": "archive expands too much (ratio ",
    "binary.txt": "binary content, not text",
    "picture.png": (
        "image is damaged or truncated"  # PNG_1PX's IDAT stream is broken
        if tesseract_available()
        else "image/png needs OCR: install Debian's tesseract-ocr (make system-deps)"
    ),
    "data.xyz": "unsupported file type '.xyz' (binary content)",
    "loop": "symbolic link loop",
    "dangling": "broken symbolic link",
    "pipe": "not a regular file (fifo)",
    "locked.txt": "permission denied",
}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict], Path, dict]:
    folder = tmp_path_factory.mktemp("docs")
    state = tmp_path_factory.mktemp("state")
    corpus = make_corpus(folder)
    make_hostile(folder, big_mb=50)
    (folder / "loop").symlink_to("loop")
    (folder / "dangling").symlink_to("nowhere")
    os.mkfifo(folder / "pipe")
    locked = folder / "locked.txt"
    locked.write_text("nobody may read this")
    locked.chmod(0)
    out = docproc("scan", "--settle", "0", folder, state=state, prefix=AS_ORDINARY_USER)
    assert out.returncode == 0, out.stderr
    with open_ledger(state / "ledger.db", readonly=True) as ledger:
        rows = {os.fsencode(r["uri"]).decode(): r for r in queries(ledger).files()}
        by_name = {Path(r["path"]).name: r for r in rows.values()}
    return by_name, state, corpus


def test_every_hostile_input_fails_with_its_reason(scanned: tuple) -> None:
    rows, _, _ = scanned
    for name, reason in REASONS.items():
        assert rows[name]["state"] == "failed", (name, rows[name])
        assert rows[name]["error"].startswith(reason), (name, rows[name]["error"])


def test_every_supported_type_yields_its_sentences(scanned: tuple) -> None:
    rows, state, corpus = scanned
    store = TextStore(state / "text")
    with open_ledger(state / "ledger.db", readonly=True) as ledger:
        for path, sentences in corpus.items():
            row = rows[path.name]
            assert row["state"] == "extracted", (path.name, row["error"])
            text = " ".join(store.get(queries(ledger).text_sha256(row["id"]) or "").split())
            for sentence in sentences:
                assert sentence in text, (path.name, sentence)


def test_big_and_oddly_named_files_are_read(scanned: tuple) -> None:
    rows, _, _ = scanned
    assert rows["big.txt"]["state"] == "extracted"
    assert rows["big.txt"]["truncated_from"] > rows["big.txt"]["chars"] == 2_000_000
    odd = rows["caf\\xe9 report.txt"]
    assert odd["state"] == "extracted"


def test_chain_is_intact_after_hostile_scan(scanned: tuple) -> None:
    _, state, _ = scanned
    out = docproc("ledger", "verify", state=state)
    assert out.returncode == 0, out.stderr
