"""One writer per ledger: a second run or scan is refused, naming the first; readers are not."""

from __future__ import annotations

# SQLite only: the writer lock here is a file in the state directory.
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docproc.errors import LedgerBusy
from docproc.writerlock import LOCK_NAME, WriterLock
from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, write_config

HOLD = """
import sys, time
from pathlib import Path
from docproc.writerlock import WriterLock
lock = WriterLock.acquire(Path(sys.argv[1]), "holder")
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_writer_is_refused_with_the_first_named(tmp_path: Path) -> None:
    with WriterLock.acquire(tmp_path, "docproc run"):
        with pytest.raises(LedgerBusy) as refused:
            WriterLock.acquire(tmp_path, "docproc scan")
        message = str(refused.value)
        assert f"docproc run (pid {os.getpid()} on " in message
        assert "since 20" in message and "\n" not in message
    with WriterLock.acquire(tmp_path, "docproc scan"):  # released: the next one gets it
        record = json.loads((tmp_path / LOCK_NAME).read_text())
        assert record["command"] == "docproc scan" and record["pid"] == os.getpid()


def test_a_stale_lock_file_from_a_dead_process_does_not_block(tmp_path: Path) -> None:
    dead = {"command": "docproc run", "pid": 999_999, "host": "gone", "since": "2020-01-01"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(dead))
    with WriterLock.acquire(tmp_path, "docproc run"):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_the_kernel_releases_the_lock_of_a_killed_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LedgerBusy, match=f"holder \\(pid {holder.pid} on "):
            WriterLock.acquire(tmp_path, "docproc run")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()
    deadline = time.monotonic() + 5
    while True:  # the kernel drops the lock as the process goes
        try:
            WriterLock.acquire(tmp_path, "docproc run").release()
            break
        except LedgerBusy:
            assert time.monotonic() < deadline
            time.sleep(0.05)


@pytest.mark.slow
def test_a_second_run_or_scan_is_refused_while_readers_work(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text("One sentence here. Another sentence there.")
    config = write_config(tmp_path, [inbox])
    state = tmp_path / "state"
    first = DaemonProcess(config)
    try:
        first.wait_ready()
        second = docproc("run", "--config", config, state=state)
        assert second.returncode == 1
        (line,) = second.stderr.splitlines()
        assert line.startswith(f"docproc: {state} is in use by docproc run (pid {first.proc.pid}")
        assert "one writer per ledger" in line
        assert second.stdout == ""  # refused before anything started or logged
        scan = docproc("scan", inbox, "--config", config, state=state)
        assert scan.returncode == 1 and "is in use by docproc run" in scan.stderr
        assert docproc("status", "--config", config, state=state).returncode == 0
        assert docproc("ledger", "files", "--config", config, state=state).returncode == 0
        assert docproc("ledger", "verify", "--config", config, state=state).returncode == 0
        assert docproc("config", "check", config, state=state).returncode == 0
    finally:
        assert first.stop() == 0
    after = docproc("scan", inbox, "--config", config, state=state)  # the lock is free again
    assert "in use" not in after.stderr and "written" in after.stdout, after.stderr
