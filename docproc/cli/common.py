"""What every command shares: --config/--state-dir, one-line errors, output flags."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from docproc.config import Settings, ledger_password, ledger_url_only, load, state_dir_only
from docproc.errors import ConfigError, DocprocError, LedgerRestartNeeded, LedgerUnwritable
from docproc.ledger.connection import Ledger, open_ledger
from docproc.ledger.queries import Queries

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    config: Path | None = None
    state_dir: Path | None = None
    log_level: str | None = None  # --log-level, when given

    def settings(self, *, watches_required: bool = True) -> Settings:
        return load(self.config, state_dir=self.state_dir, watches_required=watches_required)

    def ledger_path(self) -> Path:
        """The SQLite ledger's file in the state directory."""
        return state_dir_only(self.config, state_dir=self.state_dir) / "ledger.db"

    def ledger_location(self) -> Path | str:
        """Where the ledger is: ``[ledger] url`` if set, else the SQLite file."""
        return ledger_url_only(self.config) or self.ledger_path()

    def reader(self) -> Ledger:
        """The ledger opened read-only: safe while the daemon writes."""
        return open_ledger(self.ledger_location(), readonly=True, password=ledger_password())

    def writer(self, actor: str = "cli", *, claim: str | None = None) -> Ledger:
        """The ledger opened to record an operator's request (the daemon carries it out);
        with ``claim``, as its one writer (refused while the daemon or a scan writes it)."""
        return open_ledger(
            self.ledger_location(), actor=actor, password=ledger_password(), claim=claim
        )


def _remember(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        setattr(ctx.ensure_object(Options), param.name or "", value)


def common_options(func: F) -> F:
    """``--config`` and ``--state-dir`` on a command; they land in the shared Options."""
    path = click.Path(path_type=Path)
    func = click.option(
        "--state-dir", type=path, callback=_remember, expose_value=False, is_eager=True,
        help="Where the ledger and extracted text live (env: DOCPROC_STATE_DIR).",
    )(func)  # fmt: skip
    return click.option(
        "--config", type=path, callback=_remember, expose_value=False, is_eager=True,
        help="TOML configuration file (default: the embedded defaults).",
    )(func)  # fmt: skip


def handle_errors(func: F) -> F:
    """Turn docproc's own errors into one line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"docproc: config error: {exc}", err=True)
            sys.exit(2)
        except (DocprocError, LedgerUnwritable, LedgerRestartNeeded) as exc:
            click.echo(f"docproc: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def opts() -> Options:
    return click.get_current_context().ensure_object(Options)


def output_options(func: F) -> F:
    """--json / --csv on a listing command (table by default); the command gets ``fmt``.

    Both at once is a usage error (exit 2), not a silent pick of one.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, as_json: bool, as_csv: bool, **kwargs: Any) -> Any:
        if as_json and as_csv:
            raise click.UsageError("--json and --csv cannot be used together")
        fmt = "json" if as_json else "csv" if as_csv else "table"
        return func(*args, fmt=fmt, **kwargs)

    wrapped = click.option("--csv", "as_csv", is_flag=True, help="CSV output.")(wrapper)
    return click.option("--json", "as_json", is_flag=True, help="JSON output.")(wrapped)  # type: ignore[return-value]


def find_file(reader: Ledger, ref: str) -> dict[str, Any]:
    row = Queries(reader).find_file(ref)
    if row is None:
        raise DocprocError(f"no file {ref!r} in the ledger")
    return row


def age(now: float, created_at: str | None) -> str:
    """How long ago, e.g. ``3h12m``."""
    if not created_at:
        return ""
    seconds = max(0, int(now - datetime.fromisoformat(created_at).timestamp()))
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds % 60:02d}s"
