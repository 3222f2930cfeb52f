"""``[bedrock]``: Claude through Amazon Bedrock batch inference.

Every value is checked the way Bedrock would check it (the patterns of
botocore's service model for CreateModelInvocationJob), so ``docproc config
check`` refuses what the API would refuse, naming the key. Credentials are
never read here: boto3's chain finds them (environment, shared files,
``profile``, instance or task role).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from docproc.config.table import Table
from docproc.config.watches import optional_url, s3_location
from docproc.errors import ConfigError

INVOCATION_TYPES = ("InvokeModel", "Converse")
BELOW_MINIMUM = ("live", "wait")
_ROLE_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:role/(?:[\x21-\x7e]*/)?[\w+=,.@-]{1,64}"
)
# CreateModelInvocationJob's S3Uri: the input and output URIs docproc derives from
# `staging` (adding "<token>/input/") must match it too.
_S3_URI = re.compile(
    r"s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?"
)
_REGION = re.compile(r"[a-z]{2}(?:-[a-z0-9]+)+")
MAX_STAGING_URI = 1024 - 80  # room for "<token>/output/" and what Bedrock adds
MB = 1_000_000


@dataclass(frozen=True, slots=True)
class BedrockSettings:
    """Where and how batch inference jobs run; see ``config.example.toml``."""

    region: str
    role_arn: str
    staging: str  # s3://bucket/prefix/ (always ending in /)
    profile: str | None = None
    timeout_hours: int = 24
    min_records: int = 100
    max_records: int = 50_000
    max_concurrent_jobs: int = 20
    invocation_type: str = "InvokeModel"
    below_minimum: str = "live"
    live_concurrency: int = 4
    live_timeout: float = 300.0
    keep_staging: bool = False
    max_file_records: int = 50_000
    max_file_bytes: int = 1_000 * MB
    max_job_bytes: int = 5_000 * MB
    endpoint_url: str | None = None
    runtime_endpoint_url: str | None = None
    s3_endpoint_url: str | None = None


def bedrock(t: Table, *, required: bool) -> BedrockSettings | None:
    """The ``[bedrock]`` table; None when it is absent and not ``required``.

    Raises:
        ConfigError: a key is missing (when required), of the wrong type or out of range.
    """
    if not t.data and not required:
        return None
    settings = BedrockSettings(
        region=t.pattern("region", _REGION, "a region such as us-east-1", provider="bedrock"),
        role_arn=t.pattern(
            "role_arn",
            _ROLE_ARN,
            "an IAM role ARN, arn:aws:iam::123456789012:role/NAME",
            provider="bedrock",
        ),
        staging=_staging(t),
        profile=t.get("profile", str, "") or None,
        timeout_hours=_between(t, "timeout_hours", 24, 24, 168),
        min_records=t.integer("min_records", 100),
        max_records=t.integer("max_records", 50_000),
        max_concurrent_jobs=t.integer("max_concurrent_jobs", 20),
        invocation_type=t.choice("invocation_type", "InvokeModel", INVOCATION_TYPES),
        below_minimum=t.choice("below_minimum", "live", BELOW_MINIMUM),
        live_concurrency=_between(t, "live_concurrency", 4, 1, 64),
        live_timeout=t.number("live_timeout", 300.0, minimum=10.0),
        keep_staging=t.get("keep_staging", bool, False),
        max_file_records=t.integer("max_file_records", 50_000),
        max_file_bytes=t.integer("max_file_mb", 1_000) * MB,
        max_job_bytes=t.integer("max_job_mb", 5_000) * MB,
        endpoint_url=optional_url(t, "endpoint_url"),
        runtime_endpoint_url=optional_url(t, "runtime_endpoint_url"),
        s3_endpoint_url=optional_url(t, "s3_endpoint_url"),
    )
    t.finish()
    if settings.max_records < settings.min_records:
        raise ConfigError(
            t.key("max_records"), f"must be at least min_records ({settings.min_records})"
        )
    return settings


def _staging(t: Table) -> str:
    key = t.key("staging")
    value = t.get("staging", str, "")
    if not value:
        raise ConfigError(key, "is required for provider 'bedrock' (s3://bucket/prefix/)")
    bucket, prefix = s3_location(key, value)
    uri = f"s3://{bucket}/{prefix}"
    if not _S3_URI.fullmatch(uri):
        raise ConfigError(
            key,
            f"Bedrock refuses {uri!r}: bucket in lower case, key segments of letters, digits"
            " and -!_*'(). only (no spaces, '=', '+' or ',')",
        )
    if len(uri) > MAX_STAGING_URI:
        raise ConfigError(key, f"must be at most {MAX_STAGING_URI} characters")
    return uri


def _between(t: Table, name: str, default: int, low: int, high: int) -> int:
    value = t.integer(name, default, minimum=low)
    if value > high:
        raise ConfigError(t.key(name), f"must be between {low} and {high} (got {value})")
    return value
