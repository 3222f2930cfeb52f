"""The public face of the Cloud Storage test server: :class:`FakeGcs` and its shared state."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from tests.batchserver.handler import HttpServer, Served
from tests.gcsserver.faults import CallFaults
from tests.gcsserver.handler import GcsHandler
from tests.gcsserver.store import GcsStore


class GcsState:
    """What the handler threads share: the objects, faults, calls, and who may call."""

    def __init__(
        self, store: GcsStore, faults: CallFaults, auth: Callable[[str | None], bool] | None
    ) -> None:
        self.store, self.faults, self._auth = store, faults, auth
        self.errors: list[str] = []
        self.calls: list[tuple[str, int]] = []  # (operation, status; 0: dropped)
        self.unconditional: list[str] = []  # uploads without ifGenerationMatch=0
        self._lock = threading.Lock()

    def authorized(self, header: str | None) -> bool:
        return self._auth is None or self._auth(header)

    def record(self, op: str, status: int) -> None:
        with self._lock:
            self.calls.append((op, status))

    def error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)


class FakeGcs(Served):
    """Cloud Storage's JSON API on 127.0.0.1, objects on disk.

    Args:
        store: the objects (a new one in a temporary folder if not given).
        faults: what to inject into calls (operations: upload, list, get,
            download, delete).
        auth: checks the Authorization header (None: anonymous, as an emulator).
    """

    def __init__(
        self, store: GcsStore | None = None, *, faults: CallFaults | None = None,
        auth: Callable[[str | None], bool] | None = None, seed: int = 1, port: int = 0,
    ) -> None:  # fmt: skip
        self._own = store is None
        root = Path(tempfile.mkdtemp(prefix="fake-gcs-"))
        self.store = store or GcsStore(root)
        faults = faults or CallFaults()
        faults.seed(seed)
        self.state = GcsState(self.store, faults, auth)
        self._port = port
        self.thread_name = "fake-gcs"
        self.url = ""

    def calls(self, op: str) -> list[int]:
        return [status for name, status in list(self.state.calls) if name == op]

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        if self._own:
            self.store.close()

    def _bind(self) -> HttpServer:
        http = HttpServer(("127.0.0.1", self._port), self.state, GcsHandler)
        self.url = f"http://127.0.0.1:{http.server_address[1]}"
        return http
