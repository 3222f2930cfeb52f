"""Settings: read the TOML once, validate it once, hand frozen values down.

Every problem becomes a :class:`~docproc.errors.ConfigError` naming the key
and the reason, e.g. ``watch[0].mode: must be one of events, poll, auto (got
'inotify')``. Only :mod:`docproc.config.environment` reads ``os.environ``.

Precedence for the state directory: ``--state-dir`` > ``DOCPROC_STATE_DIR`` >
``state_dir`` in the file > ``$STATE_DIRECTORY`` (set by systemd's
``StateDirectory=``) > ``$XDG_STATE_HOME/docproc`` > ``~/.local/state/docproc``.

Secrets are never read from the file: :func:`secret` looks in the environment,
then in systemd's ``$CREDENTIALS_DIRECTORY``.

Layout: :mod:`.table` (typed reading of one table), :mod:`.settings` (the
frozen values), :mod:`.sections`, :mod:`.watches`, :mod:`.bedrock` and
:mod:`.vertex`, :mod:`.ledger` (one reader per section), :mod:`.environment`
(state directory, secrets, systemd).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from docproc.config import sections, watches
from docproc.config import storage as storage_section
from docproc.config.bedrock import BedrockSettings, bedrock
from docproc.config.environment import (
    ANTHROPIC_KEY,
    SECRET_NAMES,
    anthropic_key,
    env,
    ledger_password,
    ledger_url_only,
    operator_name,
    resolve_state_dir,
    secret,
    secrets_held,
    service_env,
    state_dir_only,
)
from docproc.config.ledger import ledger as ledger_section
from docproc.config.sections import DEFAULT_MODELS, DEFAULT_PROMPT, PROVIDERS
from docproc.config.settings import (
    DEFAULT_ANTHROPIC_URL,
    AnthropicSettings,
    ExtractSettings,
    LogSettings,
    MetricsSettings,
    ServiceEnv,
    Settings,
    StorageSettings,
)
from docproc.config.table import Table
from docproc.config.vertex import EMULATOR_VARIABLE, VertexSettings, vertex
from docproc.errors import ConfigError

__all__ = [
    "ANTHROPIC_KEY",
    "DEFAULT_ANTHROPIC_URL",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_MODELS",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_PROMPT",
    "PROVIDERS",
    "REMOTE_MAX_WAIT",
    "REMOTE_POLL_INTERVAL",
    "SECRET_NAMES",
    "AnthropicSettings",
    "BedrockSettings",
    "ExtractSettings",
    "LogSettings",
    "MetricsSettings",
    "ServiceEnv",
    "Settings",
    "StorageSettings",
    "VertexSettings",
    "anthropic_key",
    "ledger_password",
    "ledger_url_only",
    "load",
    "operator_name",
    "secret",
    "secrets_held",
    "service_env",
    "state_dir_only",
]

DEFAULT_INBOX = Path("inbox")
# How often a submitted batch is polled: the local provider answers at once;
# remote batch endpoints share a rate limit (Tier 1: 50 requests a minute).
DEFAULT_POLL_INTERVAL = {"local": 1.0}
REMOTE_POLL_INTERVAL = 30.0
# How long a ready document may wait for its batch, by default. Remote batch
# APIs reward big batches (defaults sized for Anthropic: 15 min); the local
# provider is free and instant, so waiting buys nothing there.
DEFAULT_MAX_WAIT = {"local": 2.0}
REMOTE_MAX_WAIT = 900.0


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
        return _from_table(Table(data, ""), Path.cwd(), state_dir, None, watches_required)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError("", f"{path} is a directory, not a configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"config file {path} is not valid TOML: {exc}") from None
    base = path.parent.absolute()
    return _from_table(Table(data, ""), base, state_dir, path.absolute(), watches_required)


def _from_table(
    top: Table, base: Path, state_dir: Path | None, source: Path | None, required: bool
) -> Settings:
    file_state_dir = top.get("state_dir", str, "")
    intake = top.table("intake")
    rescan = intake.number("rescan_interval", 300.0, minimum=1.0)
    settle = intake.number("settle_seconds", 5.0)
    intake.finish()
    sidecar_settings = sections.sidecars(top.table("sidecars"), base)
    folders, s3_watches = watches.watches(top, base, settle, sidecar_settings.suffixes)
    extract = sections.extract(top.table("extract"))
    task, max_attempts, backoff = sections.task(top.table("task"), extract)
    batch_table = top.table("batch")
    default_poll = DEFAULT_POLL_INTERVAL.get(task.provider, REMOTE_POLL_INTERVAL)
    poll = batch_table.number("poll_interval", default_poll, minimum=0.1)
    batch = sections.batch(batch_table, DEFAULT_MAX_WAIT.get(task.provider, REMOTE_MAX_WAIT))
    log = sections.log(top.table("log"))
    anthropic = sections.anthropic(top.table("anthropic"))
    prices = sections.prices(top.table("costs"))
    budget = sections.budget(top.table("budget"))
    metrics = sections.metrics(top.table("metrics"))
    bedrock_settings = bedrock(top.table("bedrock"), required=task.provider == "bedrock")
    vertex_settings = vertex(top.table("vertex"), base, required=task.provider == "vertex",
                             emulator=env(EMULATOR_VARIABLE))  # fmt: skip
    storage = storage_section.storage(top.table("storage"))
    ledger_url = ledger_section(top.table("ledger"))
    top.finish()  # before "no [[watch]]": a typo'd [[wathc]] is reported as what it is
    if required and not folders and not s3_watches:
        raise ConfigError("watch", "at least one [[watch]] folder or S3 prefix is required")
    if not prices.knows(task.model) and (budget.capped or task.provider != "local"):
        raise ConfigError(
            "task.model",
            f'has no price: add [costs.models."{task.model}"] with input and output'
            " (US dollars per million tokens, list price)",
        )
    chosen_dir, default_dir = resolve_state_dir(state_dir, file_state_dir, base)
    return Settings(
        state_dir=chosen_dir,
        watches=folders,
        s3_watches=s3_watches,
        rescan_interval=rescan,
        settle_seconds=settle,
        extract=extract,
        task=task,
        batch=batch,
        poll_interval=poll,
        max_attempts=max_attempts,
        retry_backoff=backoff,
        sidecars=sidecar_settings,
        log=log,
        anthropic=anthropic,
        prices=prices,
        budget=budget,
        metrics=metrics,
        bedrock=bedrock_settings,
        vertex=vertex_settings,
        storage=storage,
        ledger_url=ledger_url,
        source=source,
        state_dir_default=default_dir,
    )
