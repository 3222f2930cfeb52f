"""kill -9 of a running scan, then a restart: nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.clitools import docproc

FILES = 300


def make_corpus(folder: Path) -> None:
    folder.mkdir()
    for i in range(FILES):
        body = f"Document number {i}. " + "Words of filler text for the ledger. " * (20 + i % 50)
        if i % 3 == 0:
            (folder / f"doc{i:03d}.html").write_text(f"<html><body><p>{body}</p></body></html>")
        else:
            (folder / f"doc{i:03d}.txt").write_text(body)


def events_so_far(ledger: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def kill_mid_scan(folder: Path, state: Path, after_events: int) -> bool:
    """kill -9 the scan once the ledger holds ``after_events``; True if it was still running."""
    env = {**os.environ, "DOCPROC_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "docproc", "scan", str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # so the kill reaches the workers too, like a crash would
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if events_so_far(state / "ledger.db") >= after_events:
            break
        time.sleep(0.01)
    running = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return running


def test_kill_9_then_restart_records_every_file_exactly_once(tmp_path: Path) -> None:
    folder, state = tmp_path / "inbox", tmp_path / "state"
    make_corpus(folder)
    killed_running = [kill_mid_scan(folder, state, n) for n in (5, 150, 400)]
    assert all(killed_running), "each kill must interrupt a running scan"
    final = docproc("scan", folder, state=state)
    assert final.returncode == 0, final.stderr
    db = sqlite3.connect(state / "ledger.db")
    paths = [p for (p,) in db.execute("SELECT path FROM files")]
    states = dict(db.execute("SELECT state, count(*) FROM file_status GROUP BY state"))
    discovered = db.execute("SELECT count(*) FROM events WHERE kind = 'file.discovered'")
    found = discovered.fetchone()[0]
    db.close()
    assert len(paths) == len(set(paths)) == FILES
    assert states == {"extracted": FILES}
    assert found == FILES
    verify = docproc("ledger", "verify", state=state)
    assert verify.returncode == 0, verify.stderr
