"""The ``docproc`` group itself: version, log level."""

from __future__ import annotations

import click

from docproc import __version__, logconfig
from docproc.cli.common import common_options


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="docproc")
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log verbosity.",
)
@common_options
def main(log_level: str) -> None:
    """docproc: watch folders, extract text, keep an auditable ledger."""
    logconfig.configure(level=log_level)
