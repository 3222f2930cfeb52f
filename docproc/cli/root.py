"""The ``docproc`` group itself: version, log level."""

from __future__ import annotations

import click

from docproc import __version__, logconfig
from docproc.cli.common import common_options, opts


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="docproc")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="What is logged (to stderr; `run` logs to stdout). For `run` it overrides"
    " [log] level of the config (default info); other commands log warnings and"
    " errors unless told otherwise.",
)
@common_options
def main(log_level: str | None) -> None:
    """docproc: watch folders, extract text, keep an auditable ledger."""
    opts().log_level = log_level
    logconfig.configure(level=log_level or "warning")
