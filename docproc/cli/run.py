"""Commands that do the work: ``docproc run`` (the daemon) and ``docproc scan``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from docproc.cli.common import common_options, handle_errors, opts
from docproc.config import PROVIDERS
from docproc.output import table
from docproc.storage import check_state_dir


@click.command()
@click.option(
    "--once",
    is_flag=True,
    help="Take what is there, flush at once, wait for the results, write, exit.",
)
@click.option(
    "--provider", type=click.Choice(PROVIDERS), help="Use this provider instead of [task] provider."
)
@common_options
@handle_errors
def run(once: bool, provider: str | None) -> None:
    """Run the daemon: watch folders, extract, batch, write sidecars.

    With no --config it watches ./inbox with the offline `local` provider.
    SIGTERM/SIGINT stop it gracefully, SIGHUP reloads the configuration.
    """
    from docproc.daemon import Daemon
    from docproc.daemon import Options as RunOptions

    options = opts()
    daemon = Daemon(
        RunOptions(options.config, options.state_dir, provider, once, options.log_level)
    )
    sys.exit(daemon.run())


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Override settle_seconds: how long a file must stand still (0: take at once).",
)
@common_options
@handle_errors
def scan(paths: tuple[Path, ...], settle: float | None) -> None:
    """Take every file under PATHS into the ledger and extract its text, once."""
    from docproc.scan import scan as run_scan  # the pipeline is heavy; only this command needs it

    settings = opts().settings(watches_required=False)
    for path in paths:
        if not path.exists() and not path.is_symlink():
            click.echo(f"docproc: {path.absolute()} does not exist", err=True)
            sys.exit(2)
    check_state_dir(settings.state_dir, create_parents=settings.state_dir_default)
    bar = _Bar()
    try:
        result = run_scan(settings, list(paths), bar.update, settle=settle)
    finally:
        bar.close()
    click.echo(_scan_summary(result.rows, result.still_changing))
    if not any(row["state"] == "extracted" for row in result.rows):
        click.echo("docproc: nothing could be read", err=True)
        sys.exit(1)


class _Bar:
    """A progress bar over files, drawn once their total is known (so its rate and
    time left mean something from the start)."""

    def __init__(self) -> None:
        self._bar: Any = None

    def update(self, done: int, total: int) -> None:
        if total == 0:  # nothing new to read: complete from the start
            done = total = 1
        if self._bar is None:
            self._bar = click.progressbar(length=max(total, 1), label="extracting",
                                          file=sys.stderr, show_pos=True)  # fmt: skip
            self._bar.__enter__()
        self._bar.update(done - self._bar.pos)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _scan_summary(rows: list[dict[str, Any]], still_changing: int) -> str:
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["state"], row["extractor"] or "-")
        counts[key] = counts.get(key, 0) + 1
    summary = [{"state": s, "extractor": e, "files": n} for (s, e), n in sorted(counts.items())]
    lines = [table(summary, ("state", "extractor", "files"))]
    failed = [row for row in rows if row["state"] in ("failed", "retrying")]
    if failed:
        lines += ["", table(failed[:20], ("path", "state", "error"), width=90)]
        if len(failed) > 20:
            lines.append(f"... and {len(failed) - 20} more: docproc ledger files --state failed")
    if still_changing:
        lines.append(f"{still_changing} file(s) were still being written; scan again later")
    return "\n".join(lines)
