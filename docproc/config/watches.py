"""``[[watch]]`` tables: local folders and S3 prefixes."""

from __future__ import annotations

import re
from pathlib import Path

from docproc.config.table import Table, check_folder, check_url
from docproc.errors import ConfigError
from docproc.models import Mode, S3WatchSpec, WatchSpec, object_uri

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_S3_ONLY = (
    "endpoint_url", "region", "profile", "interval", "sqs_queue_url", "sqs_wait_seconds",
    "output_prefix",
)  # fmt: skip
_FOLDER_ONLY = ("mode", "poll_interval", "settle_seconds", "recursive")


def watches(
    top: Table, base: Path, settle: float, suffixes: tuple[str, ...]
) -> tuple[tuple[WatchSpec, ...], tuple[S3WatchSpec, ...]]:
    raw = top.get("watch", list, [])
    folders: list[WatchSpec] = []
    prefixes: list[S3WatchSpec] = []
    seen: set[object] = set()
    for i, item in enumerate(raw):
        t = _entry(item, i)
        if "s3" in t.data:
            prefixes.append(_s3_watch(t, suffixes))
            where, name = prefixes[-1].uri, "s3"
        else:
            folders.append(_watch(t, base, settle, suffixes))
            where, name = str(folders[-1].path), "path"
        if where in seen:
            raise ConfigError(f"watch[{i}].{name}", f"{where} is watched twice")
        seen.add(where)
    return tuple(folders), tuple(prefixes)


def _entry(item: object, index: int) -> Table:
    if not isinstance(item, dict):
        raise ConfigError(f"watch[{index}]", "must be a table ([[watch]])")
    return Table(item, f"watch[{index}]")


def _s3_watch(t: Table, suffixes: tuple[str, ...]) -> S3WatchSpec:
    """A ``[[watch]]`` with ``s3 = "s3://bucket/prefix/"``."""
    for name in ("path", *_FOLDER_ONLY):
        if name in t.data:
            raise ConfigError(t.key(name), "applies to folders only; this watch has 's3'")
    bucket, prefix = s3_location(t.key("s3"), t.get("s3", str, ""))
    output = t.get("output_prefix", str, "")
    spec = S3WatchSpec(
        bucket=bucket,
        prefix=prefix,
        endpoint_url=optional_url(t, "endpoint_url"),
        region=t.get("region", str, "") or None,
        profile=t.get("profile", str, "") or None,
        interval=t.number("interval", 60.0, minimum=1.0),
        sqs_queue_url=optional_url(t, "sqs_queue_url"),
        sqs_wait_seconds=_sqs_wait(t),
        output_prefix=object_uri(*s3_location(t.key("output_prefix"), output)) if output else None,
        include=t.strings("include"),
        exclude=t.strings("exclude"),
        hidden=t.get("hidden", bool, False),
        ignore_suffixes=suffixes,
    )
    t.finish()
    return spec


def _sqs_wait(t: Table) -> int:
    wait = t.integer("sqs_wait_seconds", 5, minimum=1)
    if wait > 20:
        raise ConfigError(t.key("sqs_wait_seconds"), f"must be at most 20 (got {wait})")
    return wait


def s3_location(key: str, value: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix/``; the prefix names a folder (ends in /)."""
    if not value.startswith("s3://"):
        raise ConfigError(key, f"must look like s3://bucket/prefix/ (got {value!r})")
    bucket, _, prefix = value.removeprefix("s3://").partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(key, f"{bucket!r} is not a valid bucket name")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if len(prefix.encode()) > 1000:
        raise ConfigError(key, "the prefix is too long for S3 keys")
    return bucket, prefix


def optional_url(t: Table, name: str) -> str | None:
    value = t.get(name, str, "")
    if value:
        check_url(t.key(name), value)
    return value or None


def _watch(t: Table, base: Path, settle: float, suffixes: tuple[str, ...]) -> WatchSpec:
    for name in _S3_ONLY:
        if name in t.data:
            raise ConfigError(t.key(name), "applies to S3 watches only (s3 = ...)")
    if "path" not in t.data:
        raise ConfigError(t.key("path"), 'is required (or s3 = "s3://bucket/prefix/")')
    path = check_folder(t.key("path"), base / Path(t.get("path", str, "")).expanduser())
    mode_name = t.get("mode", str, Mode.AUTO.value)
    if mode_name not in {m.value for m in Mode}:
        choices = ", ".join(m.value for m in Mode)
        raise ConfigError(t.key("mode"), f"must be one of {choices} (got {mode_name!r})")
    spec = WatchSpec(
        path=path,
        mode=Mode(mode_name),
        poll_interval=t.number("poll_interval", 5.0, minimum=0.1),
        settle_seconds=t.number("settle_seconds", settle),
        recursive=t.get("recursive", bool, True),
        include=t.strings("include"),
        exclude=t.strings("exclude"),
        hidden=t.get("hidden", bool, False),
        ignore_suffixes=suffixes,
    )
    t.finish()
    return spec
