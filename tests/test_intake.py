"""The intake pipeline with real parts: watchdog observers, worker processes, the ledger
on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from docproc.extract import ExtractorPool
from docproc.intake import Intake
from docproc.ledger.connection import Ledger, LedgerLocation, open_ledger
from docproc.ledger.intake import IntakeLedger
from docproc.models import ExtractLimits, Mode, WatchSpec
from docproc.sources.local import LocalSource
from docproc.textstore import TextStore
from tests.parts import count, files, queries

SETTLE = 2.0


@pytest.fixture(params=[Mode.EVENTS, Mode.POLL])
def running(
    request: pytest.FixtureRequest, tmp_path: Path, ledger_location: LedgerLocation
) -> Iterator[tuple[Intake, Path]]:
    folder = tmp_path / "watched"
    folder.mkdir()
    ledger = open_ledger(ledger_location)
    pool = ExtractorPool(workers=1, limits=ExtractLimits(), text_dir=tmp_path / "state" / "text")
    intake = Intake(IntakeLedger.on(ledger), pool)
    spec = WatchSpec(path=folder, mode=request.param, poll_interval=0.3, settle_seconds=SETTLE)
    source = LocalSource(spec, rescan_interval=3600)
    source.start()
    intake.add_source(files(ledger).ensure_root(f"file://{folder}", kind="local", mode="x"), source)
    yield intake, folder
    intake.close()
    ledger.close()


def tick_until(intake: Intake, done: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        intake.tick(time.monotonic(), wait=0.1)
        if done():
            return
    raise AssertionError("condition not reached in time")


def ledger_of(intake: Intake) -> Ledger:
    return intake.ledger.files.ledger


def states(intake: Intake) -> dict[str, str]:
    return {Path(row["path"]).name: row["state"] for row in queries(ledger_of(intake)).files()}


def test_files_dropped_while_running_are_extracted(running: tuple[Intake, Path]) -> None:
    intake, folder = running
    tick_until(intake, lambda: True)
    (folder / "a.txt").write_text("First document text.")
    (folder / "nested").mkdir()
    (folder / "nested" / "b.md").write_text("# Second\n\nMarkdown body.")
    (folder / "c.txt.part").write_text("partial download, never taken")
    tick_until(intake, lambda: states(intake) == {"a.txt": "extracted", "b.md": "extracted"})
    (folder / "a.txt").unlink()
    tick_until(intake, lambda: states(intake).get("a.txt") == "deleted")
    assert queries(ledger_of(intake)).verify().ok


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)  # about settling: one engine
def test_slow_write_over_ten_seconds_yields_one_complete_version(
    running: tuple[Intake, Path], tmp_path: Path
) -> None:
    intake, folder = running
    target = folder / "scan.txt"
    chunks = [f"Line {i} written by a slow scanner.\n" for i in range(20)]

    def slow_writer() -> None:
        for chunk in chunks:  # 20 chunks, 0.5 s apart: about 10 s in all
            with target.open("a") as handle:  # open/close per chunk, like a scanner
                handle.write(chunk)
            time.sleep(0.5)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        tick_until(intake, lambda: not writer.is_alive(), seconds=20)
    finally:
        writer.join()
    tick_until(intake, lambda: states(intake).get("scan.txt") == "extracted")
    assert count(ledger_of(intake), "versions") == 1
    read = queries(ledger_of(intake))
    text_sha = read.text_sha256(read.files()[0]["id"])
    assert text_sha is not None
    assert TextStore(tmp_path / "state" / "text").get(text_sha).strip() == "".join(chunks).strip()
