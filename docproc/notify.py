"""The systemd notification protocol (sd_notify), over the standard library.

systemd hands a ``Type=notify`` service the address of a datagram socket in
``NOTIFY_SOCKET``; each message is newline-separated ``KEY=VALUE`` lines
(``READY=1``, ``STATUS=...``, ``WATCHDOG=1``...). An address starting with
``@`` is in the abstract namespace (a leading NUL byte on the wire). Without
a socket (a terminal, a test, a container) every call is a no-op.

The watchdog is pinged by :meth:`Notifier.watchdog`, which the daemon calls
from its main loop and nowhere else: a loop that stops turning stops the
pings, and systemd restarts the service after ``WatchdogSec``.
"""

from __future__ import annotations

import socket
import time

import structlog

log = structlog.get_logger()


class Notifier:
    """Sends service state to systemd; every method is a no-op without a socket.

    Args:
        address: ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket).
        watchdog_usec: ``$WATCHDOG_USEC`` when the watchdog is meant for this
            process; pings then go out every half of it.
    """

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = "\0" + address[1:] if address and address.startswith("@") else address
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else None
        self._next_ping = 0.0
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> bool:
        """Send one message of ``KEY=VALUE`` fields; False when there is no socket or it failed."""
        if self._address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
        except OSError as exc:
            if not self._failed:  # once: a vanished socket must not flood the log
                log.warning("notify.failed", error=str(exc))
            self._failed = True
            return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={_one_line(status)}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={_one_line(status)}")

    def reloading(self) -> None:
        """Before a reload; ``MONOTONIC_USEC`` lets systemd match it to ``systemctl reload``."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def extend_timeout(self, seconds: float) -> None:
        """Ask for ``seconds`` more before systemd gives up on a start or a stop."""
        self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog(self, now: float) -> None:
        """Ping the watchdog if half its interval has passed since the last ping.

        Call it from the main loop only; ``now`` is a monotonic clock reading.
        """
        if self.watchdog_interval is None or now < self._next_ping:
            return
        self._next_ping = now + self.watchdog_interval
        self.send("WATCHDOG=1")


def _one_line(text: str) -> str:
    return " ".join(text.split())
