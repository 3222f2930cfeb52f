"""The optional Prometheus endpoint: ``GET /metrics`` on a loopback address by default.

A standard-library HTTP server on one daemon thread. It never touches the
ledger: it renders the latest :class:`~docproc.health.Snapshot` that the main
loop published (an immutable value, swapped in by one assignment), so a slow
or hostile scraper cannot block or corrupt the daemon's work.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from docproc.health import Snapshot, prometheus_text

log = structlog.get_logger()
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    snapshot: Snapshot = Snapshot()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that sends nothing is dropped

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404, "only /metrics is served here")
            return
        body = prometheus_text(self.server.snapshot).encode()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged (http.server would write them to stderr)."""


class MetricsServer:
    """Serves the published snapshot until :meth:`close`.

    Raises:
        OSError: the address cannot be bound (in use, not local, ...).
    """

    def __init__(self, host: str, port: int) -> None:
        kind = _Server6 if ":" in host else _Server
        self._server = kind((host, port), _Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def publish(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` what the next scrape sees (called from the main loop)."""
        self._server.snapshot = snapshot

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
