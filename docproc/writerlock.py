"""One writer per ledger: an OS lock on ``<state_dir>/writer.lock``.

``docproc run`` and ``docproc scan`` take it before they open the ledger; a
second one on the same state directory (a service plus a forgotten manual
run) is refused at start with one line naming the holder. Read-only commands
(``status``, ``ledger ...``, ``config check``) never take it, and neither do
the requests of ``cancel``, ``ledger retry`` and ``reprocess``: each adds one
row (``operator_requests``) in one short transaction, which SQLite serialises
with the writer, for the running daemon to carry out. ``ledger
import-sidecars``, which records many files, jobs and results, takes it:
with a daemon running it is refused (the daemon adopts the sidecars under
its watched folders itself). ``estimate PATH``, refused a scan, prices what
the ledger already holds.

The lock is ``flock(2)`` on the open file, so the kernel releases it when the
holder dies, however it dies: a stale file never blocks a restart. The file's
content only names the holder (command, pid, host, since when) for that one
line; it is never what decides. Worker processes do not inherit the lock:
the descriptor is close-on-exec and they are started by a forkserver.
A state directory on a network filesystem without working ``flock`` is
refused with the reason rather than shared unguarded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from docproc.errors import LedgerBusy, LedgerError

LOCK_NAME = "writer.lock"


class WriterLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process ends)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, state_dir: Path, command: str) -> WriterLock:
        """Become the one writer of the ledger in ``state_dir``.

        Raises:
            LedgerBusy: another live process holds the lock; the message names it.
            LedgerError: the lock file cannot be created or locked at all.
        """
        path = state_dir / LOCK_NAME
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise LedgerError(f"cannot create the writer lock {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LedgerBusy(
                f"{state_dir} is in use by {holder}; one writer per ledger"
                " (stop that one first; read-only commands work meanwhile)",
                holder,
            ) from None
        except OSError as exc:
            os.close(fd)
            raise LedgerError(f"cannot lock {path}: {exc.strerror}") from None
        _name_holder(fd, command)
        return cls(fd, path)

    def release(self) -> None:
        """Let another writer in (the file stays; only the lock decides)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _name_holder(fd: int, command: str) -> None:
    since = datetime.now(UTC).isoformat(timespec="seconds")
    record = {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
              "since": since}  # fmt: skip
    data = (json.dumps(record) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says, in words."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode())
        return (
            f"{record['command']} (pid {int(record['pid'])} on {record['host']},"
            f" since {record['since']})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "another docproc process (it has not named itself yet)"
