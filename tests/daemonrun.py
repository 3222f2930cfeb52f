"""Running ``docproc run`` as a real subprocess, and watching its ledger, for tests."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docproc.errors import LedgerError, LedgerUnwritable
from docproc.ledger.connection import LedgerLocation, connect, is_url

FAST = """
[intake]
settle_seconds = 0.3
rescan_interval = 30
[batch]
max_wait = 0.5
poll_interval = 0.2
"""


def write_config(
    tmp: Path, folders: list[Path], extra: str = "", batch: str = "", ledger: str | None = None
) -> Path:
    """A config watching ``folders`` with thresholds small enough for tests; ``batch``
    adds keys to ``[batch]``; ``ledger`` is a ``[ledger] url`` (None: SQLite in the state dir)."""
    watches = "".join(f'[[watch]]\npath = "{folder}"\nmode = "events"\n' for folder in folders)
    path = tmp / "docproc.toml"
    fast = FAST.replace("[batch]\n", f"[batch]\n{batch}\n" if batch else "[batch]\n")
    engine = f'[ledger]\nurl = "{ledger}"\n' if ledger else ""
    path.write_text(f'state_dir = "{tmp / "state"}"\n{fast}{extra}\n{engine}{watches}')
    return path


def ledger_of(config: Path) -> LedgerLocation:
    """Where the daemon run with ``config`` keeps its ledger: ``[ledger] url``, or the file."""
    url = tomllib.loads(config.read_text()).get("ledger", {}).get("url")
    return str(url) if url else config.parent / "state" / "ledger.db"


class DaemonProcess:
    """``docproc run`` in its own process group, logs to a file."""

    def __init__(
        self,
        config: Path,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.config = config
        self.state = config.parent / "state"
        self.ledger = ledger_of(config)
        self.log = config.parent / "daemon.log"
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        command = [sys.executable, "-m", "docproc", "run", "--config", str(config), *args]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*(prefix or []), *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=cwd,
            )

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill9(self) -> None:
        """A crash: the daemon and its workers die at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return query(self.ledger, sql, args)

    def states(self) -> dict[str, str]:
        return {Path(p).name: s for p, s in self.query("SELECT path, state FROM file_status")}

    def until(self, condition: Callable[[], bool], seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.tail()}")
            try:
                if condition():
                    return
            except (sqlite3.Error, LedgerError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"condition not reached in {seconds} s:\n{self.tail()}")

    def output(self) -> str:
        """What this process (not earlier ones on the same log) has logged."""
        with self.log.open("rb") as log:
            log.seek(self._log_from)
            return log.read().decode(errors="replace")

    def wait_ready(self, seconds: float = 60.0) -> None:
        """Until start-up (recovery included) is done and the loop runs."""
        self.until(lambda: "daemon.ready" in self.output(), seconds)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


def query(ledger: LedgerLocation, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A read-only query, as any auditor would run it (none yet: no rows)."""
    if is_url(ledger):
        return _query_url(str(ledger), sql, args)
    if not Path(ledger).exists():
        return []
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _query_url(url: str, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The same on PostgreSQL, through the ledger's engine (not yet migrated: no rows)."""
    try:
        conn = connect(url, readonly=True)
    except (LedgerError, LedgerUnwritable):
        return []
    try:
        return [tuple(row) for row in conn.execute(sql, args).fetchall()]
    finally:
        conn.close()


def held_after(
    call: Callable[..., Any], reached: threading.Event, release: threading.Event
) -> Callable[..., Any]:
    """``call``, which once done sets ``reached`` and holds its answer until ``release``
    (60 s at most): a daemon killed meanwhile never hears it."""

    def held(*args: Any) -> Any:
        answer = call(*args)
        reached.set()
        release.wait(timeout=60)
        return answer

    return held


def crashed_when(config: Path, reached: threading.Event, release: threading.Event) -> DaemonProcess:
    """Run the daemon until ``reached`` is set (see :func:`held_after`), kill -9 it, then
    let the held call finish: the daemon never heard its answer."""
    daemon = DaemonProcess(config)
    try:
        assert reached.wait(timeout=60), daemon.tail()
        daemon.kill9()
    finally:
        release.set()
        daemon.stop()
    return daemon


def free_port() -> int:
    """A TCP port free on 127.0.0.1 just now (for the daemon's /metrics endpoint)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> str:
    """The daemon's /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())
