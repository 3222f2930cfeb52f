"""Settings: read the TOML once, validate it once, hand frozen values down.

This is the only module that reads ``os.environ``. Every problem becomes a
:class:`~docproc.errors.ConfigError` naming the key and the reason, e.g.
``watch[0].mode: must be one of events, poll, auto (got 'inotify')``.

Precedence for the state directory: ``--state-dir`` > ``DOCPROC_STATE_DIR`` >
``state_dir`` in the file > ``$STATE_DIRECTORY`` (set by systemd's
``StateDirectory=``) > ``$XDG_STATE_HOME/docproc`` > ``~/.local/state/docproc``.

Secrets are never read from the file: :func:`secret` looks in the environment,
then in systemd's ``$CREDENTIALS_DIRECTORY``.
"""

from __future__ import annotations

import os
import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from docproc.costs import DEFAULT_PRICES, Budget, ModelPrice, PriceTable
from docproc.errors import ConfigError
from docproc.models import (
    BatchLimits,
    ExtractLimits,
    Mode,
    S3WatchSpec,
    SidecarSettings,
    TaskSpec,
    WatchSpec,
    object_uri,
)
from docproc.providers.messages import PROMPT_FIELDS

DEFAULT_INBOX = Path("inbox")
PROVIDERS = ("local", "anthropic")
DEFAULT_MODELS = {"local": "local-extractive-1", "anthropic": "claude-sonnet-4-5"}
# How often a submitted batch is polled: the local provider answers at once;
# remote batch endpoints share a rate limit (Tier 1: 50 requests a minute).
DEFAULT_POLL_INTERVAL = {"local": 1.0}
REMOTE_POLL_INTERVAL = 30.0
ANTHROPIC_KEY = "ANTHROPIC_API_KEY"
DEFAULT_ANTHROPIC_URL = "https://api.anthropic.com"
# How long a ready document may wait for its batch, by default. Remote batch
# APIs reward big batches (defaults sized for Anthropic: 15 min); the local
# provider is free and instant, so waiting buys nothing there.
DEFAULT_MAX_WAIT = {"local": 2.0}
REMOTE_MAX_WAIT = 900.0
DEFAULT_PROMPT = (
    "Summarise the document below for someone deciding whether to read it. "
    "Then pick the passages that matter most, quoting them exactly as written."
)
# Environment variables / credential names that hold secrets; their values are
# masked in every log line (see logconfig). Providers add theirs here.
SECRET_NAMES = ("ANTHROPIC_API_KEY",)
_SECRET_WORDS = ("api_key", "apikey", "secret", "password", "token", "access_key")
_AWS_CREDENTIALS_HINT = (
    "AWS credentials are never read from the config file; boto3 finds them in"
    " the environment (AWS_ACCESS_KEY_ID, ...), the shared credentials file, a"
    " profile (key 'profile') or an instance role"
)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_S3_ONLY = (
    "endpoint_url", "region", "profile", "interval", "sqs_queue_url", "sqs_wait_seconds",
    "output_prefix",
)  # fmt: skip
_FOLDER_ONLY = ("mode", "poll_interval", "settle_seconds", "recursive")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ExtractSettings:
    """How extraction workers run, and the per-document limits they enforce."""

    workers: int = 2
    recycle_after: int = 200
    memory_limit_mb: int = 2048
    max_attempts: int = 5
    limits: ExtractLimits = field(default_factory=ExtractLimits)


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"
    format: str = "auto"  # auto: console on a terminal, JSON lines otherwise


@dataclass(frozen=True, slots=True)
class AnthropicSettings:
    """Where and how the Message Batches API is reached (the key is a secret, not here)."""

    base_url: str = DEFAULT_ANTHROPIC_URL
    timeout: float = 600.0


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The optional Prometheus endpoint; ``listen`` is None when it is off."""

    listen: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class ServiceEnv:
    """What systemd told this process through its environment (all empty elsewhere).

    ``watchdog_usec`` is None when the watchdog is off or meant for another
    process (``WATCHDOG_PID`` names a different pid).
    """

    notify_socket: str | None = None
    watchdog_usec: int | None = None
    journal_stream: str = ""  # "device:inode" of the journal's stream, when logging to it


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything docproc was configured with, validated."""

    state_dir: Path
    watches: tuple[WatchSpec, ...]
    s3_watches: tuple[S3WatchSpec, ...] = ()
    rescan_interval: float = 300.0
    settle_seconds: float = 5.0
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    task: TaskSpec = field(default_factory=TaskSpec)
    batch: BatchLimits = field(default_factory=BatchLimits)
    poll_interval: float = 1.0  # how often submitted batches are polled
    max_attempts: int = 3  # per job, before it is quarantined
    retry_backoff: float = 60.0  # seconds before a job's first retry; doubles each time
    sidecars: SidecarSettings = field(default_factory=SidecarSettings)
    log: LogSettings = field(default_factory=LogSettings)
    anthropic: AnthropicSettings = field(default_factory=AnthropicSettings)
    prices: PriceTable = field(default_factory=PriceTable)
    budget: Budget = field(default_factory=Budget)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    source: Path | None = None  # the file these settings came from, if any

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.db"

    @property
    def text_dir(self) -> Path:
        return self.state_dir / "text"

    @property
    def fetch_dir(self) -> Path:
        """Where S3 sources copy object bytes for extraction."""
        return self.state_dir / "fetch"

    def watch_for(self, path: Path) -> WatchSpec:
        """The configured watch for ``path``, or one with the intake defaults."""
        for spec in self.watches:
            if spec.path == path:
                return spec
        return WatchSpec(
            path=path, settle_seconds=self.settle_seconds, ignore_suffixes=self.sidecars.suffixes
        )

    @property
    def provider_dir(self) -> Path:
        """Where the ``local`` provider keeps its submitted batches."""
        return self.state_dir / "provider"


class _Table:
    """One TOML table being read: typed getters, then a check for leftovers."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = dict(data)
        self.where = where

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, kind: type[_T], default: _T) -> _T:
        if name not in self.data:
            return default
        value = self.data.pop(name)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            got = type(value).__name__
            raise ConfigError(self.key(name), f"must be {_kind_name(kind)} (got {got})")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.get(name, float, default)
        if value < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum:g} (got {value:g})")
        return value

    def integer(self, name: str, default: int, *, minimum: int = 1) -> int:
        value = self.get(name, int, default)
        if value < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum} (got {value})")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.get(name, list, [])
        if not all(isinstance(item, str) for item in value):
            raise ConfigError(self.key(name), "must be a list of strings")
        return tuple(value)

    def table(self, name: str) -> _Table:
        return _Table(self.get(name, dict, {}), self.key(name))

    def finish(self) -> None:
        for name in self.data:
            if name.lower().startswith("aws_"):
                raise ConfigError(self.key(name), _AWS_CREDENTIALS_HINT)
            if any(word in name.lower() for word in _SECRET_WORDS):
                raise ConfigError(
                    self.key(name),
                    "secrets are never read from the config file; "
                    "use the environment or a systemd credential",
                )
            raise ConfigError(self.key(name), "unknown key")


def _kind_name(kind: type) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(kind, "a list" if kind is list else "a table")


def load(
    path: Path | None, *, state_dir: Path | None = None, watches_required: bool = True
) -> Settings:
    """Read and validate the configuration.

    Args:
        path: a TOML file, or ``None`` for the embedded default (watch
            ``./inbox`` with the defaults of every key; the folder is created).
        state_dir: overrides every other source of the state directory.
        watches_required: whether at least one ``[[watch]]`` must be configured
            (``docproc scan`` takes its folders from the command line).

    Raises:
        ConfigError: the file cannot be read or parsed, or a key is invalid.
    """
    if path is None:
        data: dict[str, Any] = {}
        if watches_required:
            inbox = DEFAULT_INBOX.absolute()
            inbox.mkdir(parents=True, exist_ok=True)
            data = {"watch": [{"path": str(inbox)}]}
        return _from_table(_Table(data, ""), Path.cwd(), state_dir, None, watches_required)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"config file {path} is not valid TOML: {exc}") from None
    base = path.parent.absolute()
    return _from_table(_Table(data, ""), base, state_dir, path.absolute(), watches_required)


def _from_table(
    top: _Table, base: Path, state_dir: Path | None, source: Path | None, required: bool
) -> Settings:
    file_state_dir = top.get("state_dir", str, "")
    intake = top.table("intake")
    rescan = intake.number("rescan_interval", 300.0, minimum=1.0)
    settle = intake.number("settle_seconds", 5.0)
    intake.finish()
    sidecars = _sidecars(top.table("sidecars"), base)
    watches, s3_watches = _watches(top, base, settle, sidecars.suffixes, required)
    extract = _extract(top.table("extract"))
    task, max_attempts, backoff = _task(top.table("task"), extract)
    batch_table = top.table("batch")
    default_poll = DEFAULT_POLL_INTERVAL.get(task.provider, REMOTE_POLL_INTERVAL)
    poll = batch_table.number("poll_interval", default_poll, minimum=0.1)
    batch = _batch(batch_table, DEFAULT_MAX_WAIT.get(task.provider, REMOTE_MAX_WAIT))
    log = _log(top.table("log"))
    anthropic = _anthropic(top.table("anthropic"))
    prices = _prices(top.table("costs"))
    budget = _budget(top.table("budget"))
    metrics = _metrics(top.table("metrics"))
    top.finish()
    if task.model not in prices.prices and (budget.capped or task.provider != "local"):
        raise ConfigError(
            "task.model",
            f'has no price: add [costs.models."{task.model}"] with input and output'
            " (US dollars per million tokens, list price)",
        )
    return Settings(
        state_dir=_state_dir(state_dir, file_state_dir, base),
        watches=watches,
        s3_watches=s3_watches,
        rescan_interval=rescan,
        settle_seconds=settle,
        extract=extract,
        task=task,
        batch=batch,
        poll_interval=poll,
        max_attempts=max_attempts,
        retry_backoff=backoff,
        sidecars=sidecars,
        log=log,
        anthropic=anthropic,
        prices=prices,
        budget=budget,
        metrics=metrics,
        source=source,
    )


def _task(t: _Table, extract: ExtractSettings) -> tuple[TaskSpec, int, float]:
    provider = t.get("provider", str, "local")
    if provider not in PROVIDERS:
        raise ConfigError(
            t.key("provider"), f"must be one of {', '.join(PROVIDERS)} (got {provider!r})"
        )
    spec = TaskSpec(
        provider=provider,
        model=t.get("model", str, DEFAULT_MODELS.get(provider, "")),
        prompt=t.get("prompt", str, DEFAULT_PROMPT),
        max_tokens=t.integer("max_tokens", 1024),
        summary_sentences=t.integer("summary_sentences", 3),
        max_highlights=t.integer("max_highlights", 10, minimum=3),
        extractor=f"max_chars={extract.limits.max_chars}",
        max_input_chars=t.integer("max_input_chars", 400_000, minimum=1000),
    )
    _check_prompt(t.key("prompt"), spec.prompt)
    max_attempts = t.integer("max_attempts", 3)
    backoff = t.number("retry_backoff", 60.0, minimum=0.1)
    t.finish()
    if not spec.model:
        raise ConfigError(t.key("model"), f"is required for provider {provider!r}")
    return spec, max_attempts, backoff


def _check_prompt(key: str, prompt: str) -> None:
    """A prompt template may use {summary_sentences} and {max_highlights}; '{{' is a brace."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
    except ValueError as exc:
        raise ConfigError(key, f"is not a valid template: {exc} (write {{{{ for a brace)") from None
    unknown = fields - PROMPT_FIELDS
    if unknown:
        known = ", ".join("{" + name + "}" for name in sorted(PROMPT_FIELDS))
        raise ConfigError(key, f"unknown placeholder {sorted(unknown)[0]!r} (known: {known})")


def _anthropic(t: _Table) -> AnthropicSettings:
    default = os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_ANTHROPIC_URL
    base_url = t.get("base_url", str, default)
    _check_url(t.key("base_url"), base_url)
    settings = AnthropicSettings(base_url, timeout=t.number("timeout", 600.0, minimum=1.0))
    t.finish()
    return settings


def _prices(t: _Table) -> PriceTable:
    models = t.table("models")
    prices = dict(DEFAULT_PRICES)
    for name in list(models.data):
        entry = models.table(name)
        prices[name] = ModelPrice(entry.number("input", 0.0), entry.number("output", 0.0))
        entry.finish()
    table = PriceTable(
        prices=prices,
        batch_discount=t.number("batch_discount", 0.5),
        cache_write=t.number("cache_write_multiplier", 2.0),
        cache_read=t.number("cache_read_multiplier", 0.1),
    )
    t.finish()
    return table


def _budget(t: _Table) -> Budget:
    budget = Budget(t.number("daily_usd", 0.0), t.number("monthly_usd", 0.0))
    t.finish()
    return budget


def anthropic_key() -> str:
    """The Anthropic API key, from the environment or a systemd credential.

    Raises:
        ConfigError: there is none.
    """
    key = secret(ANTHROPIC_KEY)
    if not key:
        raise ConfigError(
            "task.provider",
            f"provider 'anthropic' needs an API key: set {ANTHROPIC_KEY} in the environment,"
            f" or give systemd a credential named {ANTHROPIC_KEY} (LoadCredential=)",
        )
    return key


def _batch(t: _Table, default_wait: float) -> BatchLimits:
    hard = BatchLimits()
    limits = BatchLimits(
        max_requests=t.integer("max_requests", 10_000),
        max_bytes=t.integer("max_mb", 200) * 1_000_000,
        max_wait=t.number("max_wait", default_wait),
        max_in_flight=t.integer("max_in_flight", 4),
    )
    t.finish()
    if limits.max_requests > hard.hard_max_requests:
        raise ConfigError(t.key("max_requests"), f"must be at most {hard.hard_max_requests}")
    if limits.max_bytes > hard.hard_max_bytes:
        raise ConfigError(t.key("max_mb"), f"must be at most {hard.hard_max_bytes // 1_000_000}")
    return limits


def _sidecars(t: _Table, base: Path) -> SidecarSettings:
    output = t.get("output_dir", str, "")
    settings = SidecarSettings(
        summary_suffix=t.get("summary_suffix", str, ".summary.md"),
        json_suffix=t.get("json_suffix", str, ".docproc.json"),
        output_dir=_check_folder(t.key("output_dir"), base / output) if output else None,
        delete_with_source=t.get("delete_with_source", bool, False),
    )
    t.finish()
    for key, suffix in (
        ("summary_suffix", settings.summary_suffix),
        ("json_suffix", settings.json_suffix),
    ):
        if not suffix.startswith(".") or "/" in suffix or len(suffix) < 2:
            raise ConfigError(
                t.key(key), f"must start with '.' and name no folder (got {suffix!r})"
            )
    if settings.summary_suffix == settings.json_suffix:
        raise ConfigError(t.key("json_suffix"), "must differ from summary_suffix")
    return settings


def _watches(
    top: _Table, base: Path, settle: float, suffixes: tuple[str, ...], required: bool
) -> tuple[tuple[WatchSpec, ...], tuple[S3WatchSpec, ...]]:
    raw = top.get("watch", list, [])
    if not raw and required:
        raise ConfigError("watch", "at least one [[watch]] folder or S3 prefix is required")
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


def _entry(item: object, index: int) -> _Table:
    if not isinstance(item, dict):
        raise ConfigError(f"watch[{index}]", "must be a table ([[watch]])")
    return _Table(item, f"watch[{index}]")


def _s3_watch(t: _Table, suffixes: tuple[str, ...]) -> S3WatchSpec:
    """A ``[[watch]]`` with ``s3 = "s3://bucket/prefix/"``."""
    for name in ("path", *_FOLDER_ONLY):
        if name in t.data:
            raise ConfigError(t.key(name), "applies to folders only; this watch has 's3'")
    bucket, prefix = _s3_location(t.key("s3"), t.get("s3", str, ""))
    output = t.get("output_prefix", str, "")
    spec = S3WatchSpec(
        bucket=bucket,
        prefix=prefix,
        endpoint_url=_url(t, "endpoint_url"),
        region=t.get("region", str, "") or None,
        profile=t.get("profile", str, "") or None,
        interval=t.number("interval", 60.0, minimum=1.0),
        sqs_queue_url=_url(t, "sqs_queue_url"),
        sqs_wait_seconds=_sqs_wait(t),
        output_prefix=object_uri(*_s3_location(t.key("output_prefix"), output)) if output else None,
        include=t.strings("include"),
        exclude=t.strings("exclude"),
        hidden=t.get("hidden", bool, False),
        ignore_suffixes=suffixes,
    )
    t.finish()
    return spec


def _sqs_wait(t: _Table) -> int:
    wait = t.integer("sqs_wait_seconds", 5, minimum=1)
    if wait > 20:
        raise ConfigError(t.key("sqs_wait_seconds"), f"must be at most 20 (got {wait})")
    return wait


def _s3_location(key: str, value: str) -> tuple[str, str]:
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


def _url(t: _Table, name: str) -> str | None:
    value = t.get(name, str, "")
    if value:
        _check_url(t.key(name), value)
    return value or None


def _check_url(key: str, value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ConfigError(key, f"must be an http:// or https:// URL (got {value!r})")


def _watch(t: _Table, base: Path, settle: float, suffixes: tuple[str, ...]) -> WatchSpec:
    for name in _S3_ONLY:
        if name in t.data:
            raise ConfigError(t.key(name), "applies to S3 watches only (s3 = ...)")
    if "path" not in t.data:
        raise ConfigError(t.key("path"), 'is required (or s3 = "s3://bucket/prefix/")')
    path = _check_folder(t.key("path"), base / Path(t.get("path", str, "")).expanduser())
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


def _check_folder(key: str, path: Path) -> Path:
    path = Path(os.path.normpath(path.absolute()))
    if not path.exists():
        raise ConfigError(key, f"folder {path} does not exist")
    if not path.is_dir():
        raise ConfigError(key, f"{path} is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(key, f"folder {path} is not readable")
    return path


def _extract(t: _Table) -> ExtractSettings:
    limits = ExtractLimits(
        max_file_bytes=t.integer("max_file_mb", 100) * 1024 * 1024,
        max_chars=t.integer("max_chars", 2_000_000),
        max_expansion_ratio=t.number("max_expansion_ratio", 100.0, minimum=1.0),
        max_archive_bytes=t.integer("max_archive_mb", 512) * 1024 * 1024,
        timeout_seconds=t.number("timeout_seconds", 120.0, minimum=1.0),
    )
    settings = ExtractSettings(
        workers=t.integer("workers", 2),
        recycle_after=t.integer("recycle_after", 200),
        memory_limit_mb=t.integer("memory_limit_mb", 2048, minimum=0),
        max_attempts=t.integer("max_attempts", 5),
        limits=limits,
    )
    t.finish()
    return settings


def _log(t: _Table) -> LogSettings:
    level = t.get("level", str, "info").lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise ConfigError(t.key("level"), f"must be debug, info, warning or error (got {level!r})")
    fmt = t.get("format", str, "auto")
    if fmt not in {"auto", "json", "console"}:
        raise ConfigError(t.key("format"), f"must be auto, json or console (got {fmt!r})")
    t.finish()
    return LogSettings(level, fmt)


def _metrics(t: _Table) -> MetricsSettings:
    listen = t.get("listen", str, "")
    t.finish()
    if not listen:
        return MetricsSettings()
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:9464
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        example = "e.g. 127.0.0.1:9464"
        raise ConfigError(t.key("listen"), f"must be HOST:PORT, {example} (got {listen!r})")
    return MetricsSettings((host, int(port)))


def _state_dir(override: Path | None, from_file: str, base: Path) -> Path:
    env = os.environ
    chosen: Path
    if override is not None:
        chosen = override
    elif env.get("DOCPROC_STATE_DIR"):
        chosen = Path(env["DOCPROC_STATE_DIR"])
    elif from_file:
        chosen = base / Path(from_file).expanduser()
    elif env.get("STATE_DIRECTORY"):
        # systemd may pass several, colon-separated; the first is ours.
        chosen = Path(env["STATE_DIRECTORY"].split(":")[0])
    else:
        xdg = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        chosen = Path(xdg) / "docproc"
    return chosen.expanduser().absolute()


def state_dir_only(path: Path | None, *, state_dir: Path | None = None) -> Path:
    """The state directory alone, for read-only commands that need no watched folder.

    Reads only ``state_dir`` from the file (if there is one), so ``docproc
    ledger`` works on a machine where a watched folder is missing.
    """
    from_file = ""
    base = Path.cwd()
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError("", f"config file {path} cannot be read: {exc}") from None
        value = data.get("state_dir", "")
        if not isinstance(value, str):
            raise ConfigError("state_dir", "must be a string")
        from_file, base = value, path.parent.absolute()
    return _state_dir(state_dir, from_file, base)


def secret(name: str) -> str | None:
    """Return a secret from the environment or ``$CREDENTIALS_DIRECTORY/<name>``.

    The value is never logged, stored in the ledger or put in an error message.
    """
    value = os.environ.get(name)
    if value:
        return value
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds:
        candidate = Path(creds) / name
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8").strip() or None
    return None


def service_env() -> ServiceEnv:
    """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC``/``WATCHDOG_PID`` and ``JOURNAL_STREAM``."""
    env = os.environ
    usec: int | None = None
    if env.get("WATCHDOG_USEC", "").isdigit() and int(env["WATCHDOG_USEC"]) > 0:
        pid = env.get("WATCHDOG_PID", "")
        if not pid or (pid.isdigit() and int(pid) == os.getpid()):
            usec = int(env["WATCHDOG_USEC"])
    return ServiceEnv(
        notify_socket=env.get("NOTIFY_SOCKET") or None,
        watchdog_usec=usec,
        journal_stream=env.get("JOURNAL_STREAM", ""),
    )


def secrets_held() -> list[str]:
    """The values of every :data:`SECRET_NAMES` secret this process can see."""
    return [value for name in SECRET_NAMES if (value := secret(name))]
