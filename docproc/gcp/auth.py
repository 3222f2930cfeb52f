"""Bearer tokens for Google's APIs: Application Default Credentials, or a token file.

The only module of docproc that imports google-auth. Credentials never come
from the configuration file:

* :class:`AdcTokens`: ``google.auth.default()`` finds them as every Google
  client does (``GOOGLE_APPLICATION_CREDENTIALS``: a service-account key or a
  workload identity federation file; the gcloud user's application default
  credentials; the metadata server of Compute Engine, GKE or Cloud Run).
  google-auth refreshes the access token through its urllib3 transport
  (urllib3 is already here for botocore: no second HTTP stack of any weight)
  once it is within a few minutes of its expiry, so a call never carries a
  token about to lapse; a 401 forces a refresh.
* :class:`FileTokens`: ``access_token_file``, a file holding one token that
  another agent keeps fresh; read again whenever it changes (or after a 401).

Every token is remembered in :mod:`docproc.redaction` the moment it is read,
so no log line can show it. Failures are provider errors: no credentials, or
credentials refused by the token endpoint, pause submission
(``ProviderAccountRefused``, with what to do); a token endpoint out of reach
is ``ProviderRetryable``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import google.auth
import google.auth.exceptions
import google.auth.transport.urllib3
import urllib3

from docproc import redaction
from docproc.errors import ProviderAccountRefused, ProviderRetryable

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
TOKEN_TIMEOUT_S = 30.0
MAX_TOKEN_BYTES = 64 << 10
NO_CREDENTIALS = (
    "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key or"
    " workload identity file, run `gcloud auth application-default login`, run on Google"
    " Cloud with a service account, or set [vertex] access_token_file"
)


class AdcTokens:
    """Access tokens of the Application Default Credentials, refreshed before they expire."""

    def __init__(self, *, timeout: float = TOKEN_TIMEOUT_S) -> None:
        self._lock = threading.Lock()
        self._credentials: Any = None
        self._stale = False
        pool = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout))
        self._request = google.auth.transport.urllib3.Request(pool)  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        return "AdcTokens()"

    def token(self) -> str:
        with self._lock:
            if self._credentials is None:
                self._credentials = self._load()
            credentials = self._credentials
            if self._stale or not credentials.valid:  # missing, or within minutes of expiry
                self._refresh(credentials)
                self._stale = False
            token = str(credentials.token or "")
        if not token:
            raise ProviderAccountRefused("Google credentials gave no access token")
        redaction.remember(token)
        return token

    def refused(self) -> None:
        with self._lock:
            self._stale = True

    @staticmethod
    def _load() -> Any:
        try:
            credentials, _project = google.auth.default(scopes=list(SCOPES))
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ProviderAccountRefused(f"{NO_CREDENTIALS} ({_first_line(exc)})") from exc
        return credentials

    def _refresh(self, credentials: Any) -> None:
        try:
            credentials.refresh(self._request)
        except google.auth.exceptions.TransportError as exc:
            raise ProviderRetryable(f"cannot refresh the Google token: {_first_line(exc)}") from exc
        except google.auth.exceptions.RefreshError as exc:
            if exc.retryable:
                raise ProviderRetryable(
                    f"cannot refresh the Google token yet: {_first_line(exc)}"
                ) from exc
            raise ProviderAccountRefused(
                f"Google refused the credentials: {_first_line(exc)}"
            ) from exc
        except google.auth.exceptions.GoogleAuthError as exc:
            raise ProviderAccountRefused(f"Google credentials: {_first_line(exc)}") from exc


class FileTokens:
    """The token in ``path``, read again whenever the file changes (or after a 401)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) last read
        self._token = ""

    def __repr__(self) -> str:
        return f"FileTokens({str(self.path)!r})"

    def token(self) -> str:
        with self._lock:
            try:
                stat = self.path.stat()
                seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
                if seen != self._seen:
                    self._token = self._read()
                    self._seen = seen
            except OSError as exc:
                raise ProviderAccountRefused(
                    f"[vertex] access_token_file {self.path} cannot be read: {exc.strerror}"
                ) from exc
            return self._token

    def refused(self) -> None:
        with self._lock:
            self._seen = None

    def _read(self) -> str:
        with open(self.path, "rb") as held:
            raw = held.read(MAX_TOKEN_BYTES + 1)
        token = raw.decode("utf-8", "replace").strip()
        if not token or len(raw) > MAX_TOKEN_BYTES or any(c.isspace() for c in token):
            raise ProviderAccountRefused(
                f"[vertex] access_token_file {self.path} does not hold one token"
            )
        redaction.remember(token)
        return token


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
