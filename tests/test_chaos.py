"""Chaos: kill -9 the daemon at random moments, over and over, during a real run.

After the last restart every file is written exactly once, no sidecar is
truncated, no job was answered twice, and the event chain verifies.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, write_config

FILES = 300
KILLS = 20
FIRST = 100  # files there before the first start; the rest arrive between kills


def write_doc(folder: Path, i: int, rng: random.Random) -> None:
    words = ("ledger", "archive", "contract", "scanner", "folder", "summary", "batch", "audit")
    sentences = [
        f"Sentence {j} of document {i} is about the {rng.choice(words)} "
        f"and the {rng.choice(words)} of the team."
        for j in range(8 + i % 7)
    ]
    name = f"doc{i:03d}." + ("md" if i % 4 == 0 else "txt")
    (folder / name).write_text(" ".join(sentences))


def test_repeated_kill_9_loses_nothing_and_pays_nothing_twice(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    rng = random.Random(20261124)
    for i in range(FIRST):
        write_doc(folder, i, rng)
    config = write_config(tmp_path, [folder])
    killed_mid_work = 0
    per_kill = (FILES - FIRST) // KILLS
    for k in range(KILLS):
        daemon = DaemonProcess(config)
        for i in range(FIRST + k * per_kill, FIRST + (k + 1) * per_kill):
            write_doc(folder, i, rng)
        time.sleep(rng.uniform(0.3, 1.8))
        daemon.kill9()
        try:
            done = daemon.query("SELECT COUNT(*) FROM file_status WHERE state = 'written'")
        except sqlite3.OperationalError:  # killed before its first migration ran
            done = []
        killed_mid_work += bool(done) and done[0][0] < FIRST + (k + 1) * per_kill
    # Timing on a shared machine varies; a quarter of the kills landing with
    # work in hand still proves the crashes hit real transitions.
    assert killed_mid_work >= KILLS // 4, f"only {killed_mid_work} kills landed mid-work"
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        daemon.until(
            lambda: (
                daemon.query("SELECT COUNT(*) FROM file_status WHERE state = 'written'")
                == [(FILES,)]
            ),
            seconds=180,
        )
    finally:
        assert daemon.stop() == 0
    assert_written_exactly_once(daemon)
    assert_no_truncated_sidecar(folder)
    verify = docproc("ledger", "verify", state=daemon.state)
    assert verify.returncode == 0, verify.stderr


def assert_written_exactly_once(daemon: DaemonProcess) -> None:
    per_file = daemon.query(
        "SELECT subject, json_extract(detail, '$.job_id'), COUNT(*) FROM events"
        " WHERE kind = 'sidecars.written' GROUP BY 1, 2"
    )
    assert len(per_file) == FILES
    assert {count for _, _, count in per_file} == {1}
    answered = daemon.query(
        "SELECT job_id, COUNT(*) FROM requests WHERE state = 'succeeded' GROUP BY job_id"
    )
    assert len(answered) == FILES
    assert {count for _, count in answered} == {1}


def assert_no_truncated_sidecar(folder: Path) -> None:
    sources = [
        p for p in folder.iterdir() if p.suffix in (".txt", ".md") and ".summary" not in p.name
    ]
    assert len(sources) == FILES
    for source in sources:
        document = json.loads(source.with_name(source.name + ".docproc.json").read_text())
        assert document["summary"]
        markdown = source.with_name(source.name + ".summary.md").read_text()
        assert markdown.endswith("\n")
        assert "# Summary" in markdown
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
