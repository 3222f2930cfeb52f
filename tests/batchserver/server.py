"""The public face of the test server: :class:`FakeBatches`."""

from __future__ import annotations

import threading
from collections import Counter

from tests.batchserver.faults import Faults
from tests.batchserver.handler import HttpServer
from tests.batchserver.outcomes import OutcomeFn
from tests.batchserver.store import BatchRecord, BatchStore, StoreSettings
from tests.batchserver.wire import MAX_BODY_BYTES, MAX_REQUESTS


class FakeBatches:
    """A Message Batches server on 127.0.0.1 for tests and benchmarks.

    Args:
        api_key: the key clients must send (``x-api-key`` or ``Authorization: Bearer``).
        end_after: seconds after create when a batch ends; None: only via
            :meth:`end` or cancel.
        outcome: ``(custom_id, params) -> Outcome``, called at create for each
            request; None: all SUCCEEDED.
        faults: what to inject (:class:`Faults`).
        seed: makes ids, shuffles and random faults repeatable.
        absolute_results_url: ``results_url`` is ``url + path`` (else the path).
        max_requests, max_body_bytes: the create limits (100,000; 256 MB).
        cancel_delay: seconds a canceling batch takes to end.
        port: 0 picks a free port.
    """

    def __init__(
        self,
        api_key: str = "sk-test-123",
        end_after: float | None = 0.5,
        outcome: OutcomeFn | None = None,
        faults: Faults | None = None,
        seed: int = 1,
        absolute_results_url: bool = True,
        *,
        max_requests: int = MAX_REQUESTS,
        max_body_bytes: int = MAX_BODY_BYTES,
        cancel_delay: float = 0.2,
        port: int = 0,
    ) -> None:
        settings = StoreSettings(
            api_key=api_key,
            end_after=end_after,
            outcome=outcome,
            faults=faults if faults is not None else Faults(),
            seed=seed,
            absolute_results_url=absolute_results_url,
            max_requests=max_requests,
            max_body_bytes=max_body_bytes,
            cancel_delay=cancel_delay,
        )
        self.store = BatchStore(settings)
        self._port = port
        self._http: HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, the client's base_url."""
        return self.store.base_url

    @property
    def batches(self) -> dict[str, BatchRecord]:
        """Every batch created (deleted ones flagged), ended first if their time has come."""
        return self.store.snapshot()

    @property
    def violations(self) -> list[str]:
        return self.store.violations

    @property
    def calls(self) -> list[tuple[str, str, int]]:
        """(method, path without query, status) per request; status 0: no answer sent."""
        return self.store.calls

    @property
    def faults_injected(self) -> Counter[str]:
        return self.store.faults_injected

    @property
    def results_served(self) -> Counter[str]:
        return self.store.results_served

    @property
    def token_counts(self) -> list[int]:
        """The input_tokens of every count_tokens answer, in order."""
        return self.store.token_counts

    @property
    def errors(self) -> list[str]:
        """Tracebacks of server bugs (should stay empty)."""
        return self.store.errors

    def submitted_ids(self) -> Counter[str]:
        return self.store.submitted_ids()

    def end(self, batch_id: str) -> None:
        self.store.end(batch_id)

    def start(self) -> FakeBatches:
        """Bind and serve on a background thread."""
        self._http = HttpServer(("127.0.0.1", self._port), self.store)
        host, port = self._http.server_address[:2]
        self.store.base_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-batches",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close open connections and the socket; bounded by ``timeout``."""
        if self._http is None or self._thread is None:
            return
        self._http.shutdown()
        self._http.close_connections(timeout)
        self._http.server_close()
        self._thread.join(timeout)
        self._http = self._thread = None

    def __enter__(self) -> FakeBatches:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
