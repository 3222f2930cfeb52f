"""``[ledger] url``: PostgreSQL by URL, never with a password in the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from docproc.config import ledger_password, load
from docproc.errors import ConfigError


def _load(tmp_path: Path, ledger: str) -> object:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    path = tmp_path / "docproc.toml"
    path.write_text(f'[[watch]]\npath = "inbox"\n\n[ledger]\n{ledger}\n')
    return load(path, state_dir=tmp_path / "state")


def test_unset_is_the_sqlite_default(tmp_path: Path) -> None:
    settings = _load(tmp_path, "")
    assert settings.ledger_url is None  # type: ignore[attr-defined]


def test_a_postgresql_url_with_tls_settings_passes_through(tmp_path: Path) -> None:
    url = "postgresql://docproc@db.internal:5432/docproc?sslmode=verify-full&sslrootcert=/ca.pem"
    settings = _load(tmp_path, f'url = "{url}"')
    assert settings.ledger_url == url  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://docproc:hunter2secret@db:5432/docproc",
        "postgresql://docproc@db:5432/docproc?password=hunter2secret",
    ],
)
def test_a_password_in_the_url_is_refused_without_repeating_it(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, f'url = "{url}"')
    assert refused.value.key == "ledger.url"
    assert "must not carry a password" in str(refused.value)
    assert "hunter2secret" not in str(refused.value)


def test_a_password_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ledger.password: secrets are never read"):
        _load(tmp_path, 'password = "x"')


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://u@h/db", "must be a postgresql://"),
        ("postgresql://u@h:5432", "must name a database"),
    ],
)
def test_other_urls_are_refused_naming_the_key(tmp_path: Path, url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=rf"^ledger.url: {words}"):
        _load(tmp_path, f'url = "{url}"')


def test_the_password_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ledger_password() is None
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert ledger_password() is None
    (tmp_path / "ledger-password").write_text("from-systemd\n")
    assert ledger_password() == "from-systemd"
