"""A stand-in for systemd's end of the sd_notify protocol, for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path


class NotifySocket:
    """An AF_UNIX datagram socket collecting ``(monotonic time, {KEY: VALUE})`` messages.

    ``address`` is what goes into ``NOTIFY_SOCKET``: the path, or ``@name``
    for an abstract socket.
    """

    def __init__(self, where: Path | str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if isinstance(where, str):  # abstract: "@name" for the daemon, "\0name" on the wire
            self.sock.bind("\0" + where.removeprefix("@"))
            self.address = where
        else:
            self.sock.bind(str(where))
            self.address = str(where)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="notify-listener")
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def received(self, key: str) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(at, fields) for at, fields in self.messages if key in fields]

    def wait_for(
        self, key: str, seconds: float = 60.0, after: float = 0.0, alive: Callable[[], bool] = bool
    ) -> dict[str, str]:
        """The first message carrying ``key`` received after ``after`` (monotonic)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for at, fields in self.received(key):
                if at > after:
                    return fields
            time.sleep(0.05)
        raise AssertionError(f"no {key} within {seconds} s; got {self.messages}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
