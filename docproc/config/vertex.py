"""``[vertex]``: Claude through Vertex AI batch prediction jobs.

Credentials are never read here: Application Default Credentials (google-auth)
find them, or ``access_token_file`` names a file another agent keeps a token
in. ``STORAGE_EMULATOR_HOST`` is honoured as Google's own clients honour it:
when set (and ``storage_endpoint`` is not), Cloud Storage calls go to that
host, without credentials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from docproc.config.table import Table, check_url
from docproc.errors import ConfigError

STRUCTURED = ("tool", "json")
DEFAULT_STORAGE = "https://storage.googleapis.com"
EMULATOR_VARIABLE = "STORAGE_EMULATOR_HOST"
_PROJECT = re.compile(r"(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20}")
_LOCATION = re.compile(r"[a-z]+(?:-[a-z]+[0-9]*)*")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
MAX_PREFIX_BYTES = 1024 - 120  # room for "<token>/output/prediction-.../predictions.jsonl"
MB = 1_000_000


@dataclass(frozen=True, slots=True)
class VertexSettings:
    """Where and how batch prediction jobs run; see ``config.example.toml``."""

    project: str
    location: str
    staging: str  # gs://bucket/prefix/ (always ending in /)
    api_endpoint: str
    storage_endpoint: str = DEFAULT_STORAGE
    storage_anonymous: bool = False  # the storage endpoint is STORAGE_EMULATOR_HOST's
    access_token_file: Path | None = None
    max_concurrent_jobs: int = 4
    structured: str = "tool"
    keep_staging: bool = False
    max_records: int = 50_000
    max_job_bytes: int = 1_000 * MB
    timeout: float = 120.0

    @property
    def bucket(self) -> str:
        return self.staging.removeprefix("gs://").partition("/")[0]

    @property
    def prefix(self) -> str:
        return self.staging.removeprefix("gs://").partition("/")[2]


def vertex(
    t: Table, base: Path, *, required: bool, emulator: str | None = None
) -> VertexSettings | None:
    """The ``[vertex]`` table; None when it is absent and not ``required``.

    ``emulator`` is ``$STORAGE_EMULATOR_HOST``, if set.

    Raises:
        ConfigError: a key is missing (when required), of the wrong type or out of range.
    """
    if not t.data and not required:
        return None
    location = t.pattern(
        "location", _LOCATION, "a Vertex AI region such as us-east5", provider="vertex"
    )
    default_api = (
        "https://aiplatform.googleapis.com"
        if location == "global"
        else f"https://{location}-aiplatform.googleapis.com"
    )
    storage, anonymous = _storage_endpoint(t, emulator)
    token_file = t.get("access_token_file", str, "")
    settings = VertexSettings(
        project=t.pattern(
            "project", _PROJECT, "a Google Cloud project id such as my-project", provider="vertex"
        ),
        location=location,
        staging=_staging(t),
        api_endpoint=_url(t, "api_endpoint", default_api),
        storage_endpoint=storage,
        storage_anonymous=anonymous,
        access_token_file=(base / Path(token_file).expanduser()) if token_file else None,
        max_concurrent_jobs=t.integer("max_concurrent_jobs", 4),
        structured=t.choice("structured", "tool", STRUCTURED),
        keep_staging=t.get("keep_staging", bool, False),
        max_records=t.integer("max_records", 50_000),
        max_job_bytes=t.integer("max_job_mb", 1_000) * MB,
        timeout=t.number("timeout", 120.0, minimum=5.0),
    )
    t.finish()
    return settings


def _staging(t: Table) -> str:
    key = t.key("staging")
    value = t.get("staging", str, "")
    if not value:
        raise ConfigError(key, "is required for provider 'vertex' (gs://bucket/prefix/)")
    if not value.startswith("gs://"):
        raise ConfigError(key, f"must look like gs://bucket/prefix/ (got {value!r})")
    bucket, _, prefix = value.removeprefix("gs://").partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or bucket.startswith("goog"):
        raise ConfigError(key, f"{bucket!r} is not a valid Cloud Storage bucket name")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if "//" in prefix or prefix.startswith("/") or any(c in prefix for c in "\r\n#[]*?"):
        raise ConfigError(
            key,
            f"the prefix {prefix!r} has an empty segment or a character"
            " Vertex AI's input URIs cannot take (# [ ] * ? or a line break)",
        )
    if len(prefix.encode()) > MAX_PREFIX_BYTES:
        raise ConfigError(key, f"the prefix is longer than {MAX_PREFIX_BYTES} bytes")
    return f"gs://{bucket}/{prefix}"


def _storage_endpoint(t: Table, emulator: str | None) -> tuple[str, bool]:
    """The Cloud Storage endpoint, and whether it is the emulator's (called anonymously)."""
    if "storage_endpoint" in t.data:
        return _url(t, "storage_endpoint", DEFAULT_STORAGE), False
    if emulator:
        url = emulator if "://" in emulator else f"http://{emulator}"
        check_url(EMULATOR_VARIABLE, url)
        return url.rstrip("/"), True
    return DEFAULT_STORAGE, False


def _url(t: Table, name: str, default: str) -> str:
    value = t.get(name, str, default) or default
    check_url(t.key(name), value)
    return value.rstrip("/")
