"""One TOML table being read: typed getters, a check for leftovers, shared value checks."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, TypeVar

from docproc.errors import ConfigError

_SECRET_WORDS = ("api_key", "apikey", "secret", "password", "token", "access_key")
_AWS_CREDENTIALS_HINT = (
    "AWS credentials are never read from the config file; boto3 finds them in"
    " the environment (AWS_ACCESS_KEY_ID, ...), the shared credentials file, a"
    " profile (key 'profile') or an instance role"
)
_T = TypeVar("_T")


class Table:
    """One TOML table being read: typed getters, then a check for leftovers."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = dict(data)
        self.where = where
        self._asked: list[str] = []  # names read, for "did you mean" on a typo

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, kind: type[_T], default: _T) -> _T:
        self._asked.append(name)
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

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise ConfigError(
                self.key(name), f"must be one of {', '.join(choices)} (got {value!r})"
            )
        return value

    def pattern(self, name: str, pattern: re.Pattern[str], what: str, *, provider: str) -> str:
        """A string the provider needs, matching ``pattern`` whole (``what`` says how)."""
        value = self.get(name, str, "")
        if not value:
            raise ConfigError(self.key(name), f"is required for provider {provider!r} ({what})")
        if not pattern.fullmatch(value):
            raise ConfigError(self.key(name), f"must be {what} (got {value!r})")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.get(name, list, [])
        if not all(isinstance(item, str) for item in value):
            raise ConfigError(self.key(name), "must be a list of strings")
        return tuple(value)

    def table(self, name: str) -> Table:
        return Table(self.get(name, dict, {}), self.key(name))

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
            close = difflib.get_close_matches(name, self._asked, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(self.key(name), f"unknown key{hint}")


def _kind_name(kind: type) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(kind, "a list" if kind is list else "a table")


def check_url(key: str, value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ConfigError(key, f"must be an http:// or https:// URL (got {value!r})")


def check_folder(key: str, path: Path) -> Path:
    path = Path(os.path.normpath(path.absolute()))
    if not path.exists():
        raise ConfigError(key, f"folder {path} does not exist")
    if not path.is_dir():
        raise ConfigError(key, f"{path} is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(key, f"folder {path} is not readable")
    return path
