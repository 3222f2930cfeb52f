"""Secrets learnt while the process runs (bearer tokens), masked in every log line.

The secrets known at start (API keys) are handed to :mod:`docproc.logconfig`
once; a token that is fetched or refreshed later (Google's OAuth2 access
tokens, the contents of an ``access_token_file``) is added here the moment it
is read, and the log renderer masks it from then on. Only the latest few are
kept: an expired token that was masked for its whole life never shows up again.
"""

from __future__ import annotations

import threading
from collections import deque

KEEP = 8  # tokens per process worth masking at once (a refresh every ~55 min)
MIN_LENGTH = 8  # shorter values would mask ordinary words

_lock = threading.Lock()
_recent: deque[str] = deque(maxlen=KEEP)


def remember(secret: str) -> None:
    """Mask ``secret`` in every log line from now on."""
    if len(secret) < MIN_LENGTH:
        return
    with _lock:
        if secret not in _recent:
            _recent.append(secret)


def learnt() -> tuple[str, ...]:
    """The secrets remembered so far (the latest :data:`KEEP`)."""
    with _lock:
        return tuple(_recent)
