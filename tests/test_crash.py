"""kill -9 of a running scan, then a restart: nothing lost, nothing twice (on both engines)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from docproc.ledger.connection import LedgerLocation
from tests.clitools import docproc, on_engine
from tests.daemonrun import query

FILES = 300


def make_corpus(folder: Path) -> None:
    folder.mkdir()
    for i in range(FILES):
        body = f"Document number {i}. " + "Words of filler text for the ledger. " * (20 + i % 50)
        if i % 3 == 0:
            (folder / f"doc{i:03d}.html").write_text(f"<html><body><p>{body}</p></body></html>")
        else:
            (folder / f"doc{i:03d}.txt").write_text(body)


def events_so_far(ledger: LedgerLocation) -> int:
    try:
        rows = query(ledger, "SELECT count(*) FROM events")
    except Exception:
        return 0
    return int(rows[0][0]) if rows else 0


def kill_mid_scan(
    folder: Path, state: Path, ledger: LedgerLocation, config: list[str], after_events: int
) -> bool:
    """kill -9 the scan once the ledger holds ``after_events``; True if it was still running."""
    env = {**os.environ, "DOCPROC_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "docproc", "scan", *config, str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # so the kill reaches the workers too, like a crash would
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if events_so_far(ledger) >= after_events:
            break
        time.sleep(0.01)
    running = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return running


def test_kill_9_then_restart_records_every_file_exactly_once(
    tmp_path: Path, ledger_location: LedgerLocation, ledger_url: str | None
) -> None:
    folder, state = tmp_path / "inbox", tmp_path / "state"
    config = on_engine(tmp_path, ledger_url)
    make_corpus(folder)
    killed_running = [
        kill_mid_scan(folder, state, ledger_location, config, n) for n in (5, 150, 400)
    ]
    assert all(killed_running), "each kill must interrupt a running scan"
    final = docproc("scan", *config, folder, state=state)
    assert final.returncode == 0, final.stderr
    paths = [p for (p,) in query(ledger_location, "SELECT path FROM files")]
    states = dict(query(ledger_location, "SELECT state, count(*) FROM file_status GROUP BY state"))
    discovered = query(
        ledger_location, "SELECT count(*) FROM events WHERE kind = 'file.discovered'"
    )
    assert len(paths) == len(set(paths)) == FILES
    assert states == {"extracted": FILES}
    assert discovered == [(FILES,)]
    verify = docproc("ledger", "verify", *config, state=state)
    assert verify.returncode == 0, verify.stderr
