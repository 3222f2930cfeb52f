"""What comes from the process environment: the state directory, secrets, systemd.

The only module of docproc that reads ``os.environ``.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from pathlib import Path

from docproc.config.ledger import check_ledger_url
from docproc.config.settings import ServiceEnv
from docproc.errors import ConfigError

ANTHROPIC_KEY = "ANTHROPIC_API_KEY"
LEDGER_CREDENTIAL = "ledger-password"  # a systemd credential: the PostgreSQL ledger's password
# Environment variables / credential names that hold secrets; their values are
# masked in every log line (see logconfig). Providers add theirs here.
SECRET_NAMES = (
    "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", LEDGER_CREDENTIAL,
    "PGPASSWORD",
)  # fmt: skip


def resolve_state_dir(override: Path | None, from_file: str, base: Path) -> tuple[Path, bool]:
    """The state directory, and whether it is the built-in default (not named anywhere)."""
    env = os.environ
    chosen: Path
    default = False
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
        chosen, default = Path(xdg) / "docproc", True
    return chosen.expanduser().absolute(), default


def state_dir_only(path: Path | None, *, state_dir: Path | None = None) -> Path:
    """The state directory alone, for read-only commands that need no watched folder.

    Reads only ``state_dir`` from the file (if there is one), so ``docproc
    ledger`` works on a machine where a watched folder is missing.
    """
    data, base = _raw(path)
    value = data.get("state_dir", "")
    if not isinstance(value, str):
        raise ConfigError("state_dir", "must be a string")
    return resolve_state_dir(state_dir, value, base)[0]


def ledger_url_only(path: Path | None) -> str | None:
    """``[ledger] url`` alone (checked), for the same read-only commands."""
    section = _raw(path)[0].get("ledger", {})
    url = section.get("url", "") if isinstance(section, dict) else ""
    if not isinstance(url, str):
        raise ConfigError("ledger.url", "must be a string")
    return check_ledger_url("ledger.url", url) if url else None


def _raw(path: Path | None) -> tuple[dict[str, object], Path]:
    """The TOML file's tables as read (nothing when there is no file), and its folder."""
    if path is None:
        return {}, Path.cwd()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except IsADirectoryError:
        raise ConfigError("", f"{path} is a directory, not a configuration file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("", f"config file {path} cannot be read: {exc}") from None
    return data, path.parent.absolute()


def secret(name: str) -> str | None:
    """Return a secret from the environment or ``$CREDENTIALS_DIRECTORY/<name>``.

    The value is never logged, stored in the ledger or put in an error message.
    """
    return os.environ.get(name) or credential(name)


def credential(name: str) -> str | None:
    """A systemd credential: ``$CREDENTIALS_DIRECTORY/<name>``, or None without one."""
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


def ledger_password() -> str | None:
    """The PostgreSQL ledger's password from systemd's ``$CREDENTIALS_DIRECTORY/ledger-password``.

    None when there is no such credential: libpq then looks in ``PGPASSWORD``
    and ``~/.pgpass`` by itself.
    """
    return credential(LEDGER_CREDENTIAL)


def env(name: str) -> str | None:
    """A plain (non-secret) environment variable, or None when unset or empty."""
    return os.environ.get(name) or None


def operator_name() -> str:
    """Who is asking, for the ledger: the login name, and the sudo caller behind it."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        name = f"uid {os.getuid()}"
    caller = os.environ.get("SUDO_USER")
    return f"{name} (sudo by {caller})" if caller and caller != name else name
