"""S3 event notifications through SQS: a latency hint for an S3 source, never the truth.

:class:`NotificationListener` long-polls one queue on a background thread
that only parses messages and queues the keys they name; the source's poll
(on the main thread) drains the keys and checks each with a HEAD. Messages
are deleted once their keys are queued. A lost, duplicated or garbled
message costs latency only: the periodic listing stays the reconcile, and a
message that cannot be read asks for one at once.

Keys in S3 event notifications are URL-encoded with ``+`` for a space, as on
AWS; :func:`keys_from_message` decodes them.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import structlog

from docproc.errors import ObjectStoreError

if TYPE_CHECKING:
    from docproc.aws import Queue

log = structlog.get_logger()
MAX_HINTS = 10_000  # queued keys; beyond this a listing is cheaper than the hints
ERROR_PAUSE_S = 5.0


def keys_from_message(body: str, bucket: str, prefix: str) -> list[str] | None:
    """Keys under ``bucket``/``prefix`` that one notification names, decoded.

    Accepts a plain S3 notification or one wrapped by SNS (``"Message"``);
    ``s3:TestEvent`` messages name nothing. Returns ``None`` for a body that
    is not a notification at all.
    """
    try:
        document = json.loads(body)
        if isinstance(document, dict) and isinstance(document.get("Message"), str):
            document = json.loads(document["Message"])  # delivered through SNS
    except json.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    if document.get("Event") == "s3:TestEvent":
        return []
    records = document.get("Records")
    if not isinstance(records, list):
        return None
    return [key for record in records if (key := _record_key(record, bucket, prefix)) is not None]


def _record_key(record: Any, bucket: str, prefix: str) -> str | None:
    try:
        s3 = record["s3"]
        name, raw = s3["bucket"]["name"], s3["object"]["key"]
    except (KeyError, TypeError):
        return None
    key = unquote_plus(str(raw))
    return key if name == bucket and key.startswith(prefix) else None


class NotificationListener:
    """Long-polls a queue on its own thread; :meth:`drain` hands the keys over.

    Args:
        queue: the SQS queue receiving the bucket's notifications.
        bucket: notifications about other buckets are ignored.
        prefix: and so are keys outside this prefix.
        wait_seconds: the long-poll wait; also bounds how long :meth:`close` takes.
    """

    def __init__(self, queue: Queue, bucket: str, prefix: str, *, wait_seconds: int = 5) -> None:
        self._queue, self._bucket, self._prefix = queue, bucket, prefix
        self._wait = wait_seconds
        self._keys: dict[str, None] = {}  # an ordered set
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.overflowed = False  # hints were lost (or unreadable): list at once
        self.trouble = ""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="docproc-sqs", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._wait + 35.0)  # a receive in flight ends by then

    def drain(self, limit: int) -> list[str]:
        """Up to ``limit`` queued keys, oldest first; thread-safe."""
        with self._lock:
            keys = list(self._keys)[:limit]
            for key in keys:
                del self._keys[key]
        return keys

    def take_overflow(self) -> bool:
        with self._lock:
            overflowed, self.overflowed = self.overflowed, False
        return overflowed

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._queue.receive(self._wait)
                self._enqueue(messages)
                self._queue.delete([receipt for receipt, _ in messages])
            except ObjectStoreError as exc:
                if self.trouble != exc.reason:
                    log.warning("source.sqs_failed", queue=self._queue.url, error=exc.reason)
                self.trouble = f"notifications: {exc.reason}"
                self._stop.wait(ERROR_PAUSE_S)
                continue
            self.trouble = ""

    def _enqueue(self, messages: list[tuple[str, str]]) -> None:
        with self._lock:
            for _, body in messages:
                keys = keys_from_message(body, self._bucket, self._prefix)
                if keys is None:
                    self.overflowed = True
                    continue
                for key in keys:
                    if len(self._keys) >= MAX_HINTS:
                        self.overflowed = True
                        break
                    self._keys[key] = None
