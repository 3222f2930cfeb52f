"""Hostile and broken inputs: each fails with the right kind and a reason a person can act on."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from docproc.errors import FailureKind
from docproc.extract import run_task
from docproc.extract.route import tesseract_available
from docproc.models import ExtractFailure, Extraction, ExtractLimits, ExtractOutcome, ExtractTask
from docproc.textstore import TextStore
from tests.clitools import AS_ORDINARY_USER
from tests.docgen import make_hostile, write_zip_bomb

PERMANENT_REASONS = {
    "empty": "file is empty (0 bytes)",
    "truncated_pdf": "pdf is damaged or not a pdf (",
    "encrypted_pdf": "pdf is encrypted (password required)",
    "scanned_pdf": "pdf has no text (no text layer and no scanned pages)",
    "random_pdf": "pdf is damaged or not a pdf (",
    "random_docx": "docx is damaged or not a docx (",
    "zip_bomb_docx": "archive expands too much (ratio ",
    "binary_txt": "binary content, not text",
    "image_png": (
        "image is damaged or truncated"  # PNG_1PX has a broken IDAT stream
        if tesseract_available()
        else "image/png needs OCR: install Debian's tesseract-ocr (make system-deps)"
    ),
    "unknown_suffix": "unsupported file type '.xyz' (binary content)",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_hostile(tmp_path_factory.mktemp("hostile"))


def run(path: Path, tmp_path: Path, limits: ExtractLimits | None = None) -> ExtractOutcome:
    task = ExtractTask(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    return run_task(task, limits or ExtractLimits(), TextStore(tmp_path / "text"))


def rchar() -> int:
    """Bytes this process has read through read(2) and friends, from /proc."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.parametrize("name", sorted(PERMANENT_REASONS))
def test_hostile_input_fails_permanently_with_a_clear_reason(
    hostile: dict[str, Path], tmp_path: Path, name: str
) -> None:
    outcome = run(hostile[name], tmp_path)
    assert isinstance(outcome, ExtractFailure), outcome
    assert outcome.kind is FailureKind.PERMANENT
    assert outcome.reason.startswith(PERMANENT_REASONS[name]), outcome.reason


def test_zip_bomb_is_refused_fast_without_expanding(tmp_path: Path) -> None:
    bomb = write_zip_bomb(tmp_path / "bomb.docx", megabytes=200)
    assert bomb.stat().st_size < 1_000_000
    probe = textwrap.dedent(
        f"""
        import hashlib, resource, time
        from pathlib import Path
        from docproc.extract import run_task
        from docproc.models import ExtractLimits, ExtractTask
        from docproc.textstore import TextStore
        path = Path({str(bomb)!r})
        task = ExtractTask(hashlib.sha256(path.read_bytes()).hexdigest(), path)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        outcome = run_task(task, ExtractLimits(), TextStore(Path({str(tmp_path)!r})))
        grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(time.monotonic() - started, grown_kb, outcome.reason)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    seconds, grown_kb, reason = result.stdout.split(" ", 2)
    assert reason.startswith("archive expands too much"), reason
    assert float(seconds) < 2.0
    assert int(grown_kb) < 20 * 1024  # the 200 MB of zeros were never inflated


def test_zip_bomb_under_the_ratio_but_over_the_size_limit(tmp_path: Path) -> None:
    bomb = write_zip_bomb(tmp_path / "big.xlsx", megabytes=20)
    outcome = run(bomb, tmp_path, ExtractLimits(max_archive_bytes=10 * 1024 * 1024))
    assert isinstance(outcome, ExtractFailure)
    assert outcome.reason.startswith("archive expands too much (20 MB > 10 MB)"), outcome.reason


def test_big_text_file_is_extracted_within_limits(hostile: dict[str, Path], tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = run(hostile["big_text"], tmp_path)
    assert isinstance(outcome, Extraction), outcome
    assert outcome.chars == ExtractLimits().max_chars
    assert outcome.truncated_from is not None
    assert outcome.truncated_from > 50_000_000
    assert time.monotonic() - started < 10


def test_file_over_the_size_limit_is_refused_before_reading(
    hostile: dict[str, Path], tmp_path: Path
) -> None:
    path = hostile["big_text"]
    task = ExtractTask("0" * 64, path)  # no hashing here: that would read the file
    limits = ExtractLimits(max_file_bytes=10 * 1024 * 1024)
    before = rchar()
    outcome = run_task(task, limits, TextStore(tmp_path / "text"))
    assert rchar() - before < 1024 * 1024
    assert isinstance(outcome, ExtractFailure)
    assert outcome.kind is FailureKind.PERMANENT
    assert outcome.reason == "file is 50.0 MB, over the 10 MB limit"


def test_non_utf8_file_name_is_read(hostile: dict[str, Path], tmp_path: Path) -> None:
    path = hostile["non_utf8_name"]
    assert os.fsencode(path.name) == b"caf\xe9 report.txt"
    outcome = run(path, tmp_path)
    assert isinstance(outcome, Extraction), outcome


def test_changed_bytes_are_a_transient_failure(tmp_path: Path) -> None:
    path = tmp_path / "moving.txt"
    path.write_text("the version the ledger saw")
    task = ExtractTask(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    path.write_text("a newer version written since")
    outcome = run_task(task, ExtractLimits(), TextStore(tmp_path / "text"))
    assert isinstance(outcome, ExtractFailure)
    assert (outcome.kind, outcome.reason) == (
        FailureKind.TRANSIENT,
        "file changed while it was being read",
    )


def test_vanished_file_is_transient(tmp_path: Path) -> None:
    task = ExtractTask("0" * 64, tmp_path / "gone.txt")
    outcome = run_task(task, ExtractLimits(), TextStore(tmp_path / "text"))
    assert isinstance(outcome, ExtractFailure)
    assert (outcome.kind, outcome.reason) == (
        FailureKind.TRANSIENT,
        "file vanished before it could be read",
    )


# Extracts one file in a fresh process and prints the outcome's kind and reason.
EXTRACT_PROBE = """
import sys
from pathlib import Path
from docproc.extract import run_task
from docproc.models import ExtractLimits, ExtractTask
from docproc.textstore import TextStore
task = ExtractTask("0" * 64, Path(sys.argv[1]))
outcome = run_task(task, ExtractLimits(), TextStore(Path(sys.argv[2])))
print(getattr(outcome, "kind", "extracted"), getattr(outcome, "reason", ""), sep="\\t")
"""


def outcome_for_ordinary_user(path: Path, store: Path) -> tuple[str, str]:
    """``(kind, reason)`` of extracting ``path`` as a process bound by file modes.

    As root, file modes do not stop reads, so the extraction runs in a
    process without the capabilities that let root ignore them.
    """
    if os.geteuid() == 0:
        argv = [*AS_ORDINARY_USER, sys.executable, "-c", EXTRACT_PROBE, str(path), str(store)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
        kind, reason = result.stdout.rstrip("\n").split("\t", 1)
        return kind, reason
    outcome = run_task(ExtractTask("0" * 64, path), ExtractLimits(), TextStore(store))
    assert isinstance(outcome, ExtractFailure), outcome
    return outcome.kind.value, outcome.reason


def test_unreadable_file_is_permanent(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("hidden")
    path.chmod(0)
    kind, reason = outcome_for_ordinary_user(path, tmp_path / "t")
    assert (kind, reason) == (FailureKind.PERMANENT.value, "permission denied")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    outcome = run_task(ExtractTask("0" * 64, fifo), ExtractLimits(), TextStore(tmp_path / "t"))
    assert isinstance(outcome, ExtractFailure)
    assert outcome.reason == "not a regular file"


def test_encrypted_office_file_is_reported_as_password_protected(tmp_path: Path) -> None:
    # Office wraps an encrypted docx in a Compound File holding an EncryptedPackage stream.
    fake = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512) + "EncryptedPackage".encode("utf-16-le")
    path = tmp_path / "locked.xlsx"
    path.write_bytes(fake)
    outcome = run(path, tmp_path)
    assert isinstance(outcome, ExtractFailure)
    assert outcome.reason == "xlsx is password protected"


def test_malformed_xml_gives_what_is_readable(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<root><unclosed>readable words</root>")
    outcome = run(broken, tmp_path)
    assert isinstance(outcome, Extraction), outcome
    assert TextStore(tmp_path / "text").get(outcome.text_sha256) == "readable words"


def test_xml_with_no_elements_fails_permanently(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<<<>>> \x01\x02")
    outcome = run(broken, tmp_path)
    assert isinstance(outcome, ExtractFailure), outcome
    assert outcome.kind is FailureKind.PERMANENT


def test_zip_that_lies_about_its_sizes_is_damaged_not_expanded(tmp_path: Path) -> None:
    """A member declaring 1000 bytes that inflates to 50 MB stops at 1000 bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", bytes(50 * 1024 * 1024))
    real, claimed = struct.pack("<I", 50 * 1024 * 1024), struct.pack("<I", 1000)
    liar = tmp_path / "liar.docx"
    liar.write_bytes(buffer.getvalue().replace(real, claimed))  # local and central headers
    started = time.monotonic()
    outcome = run(liar, tmp_path)
    assert time.monotonic() - started < 2
    assert isinstance(outcome, ExtractFailure)
    assert outcome.reason.startswith("docx is damaged or not a docx (Bad CRC-32"), outcome.reason
