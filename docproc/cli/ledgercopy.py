"""``docproc ledger copy --to URL``: move the SQLite ledger into an empty PostgreSQL database."""

from __future__ import annotations

import click

from docproc.cli.common import common_options, handle_errors, opts
from docproc.config import ledger_password
from docproc.config.ledger import check_ledger_url
from docproc.writerlock import WriterLock


@click.command("copy")
@click.option("--to", "url", required=True, metavar="URL",
              help="postgresql://user@host:port/db (no password: PGPASSWORD, ~/.pgpass"
                   " or the ledger-password credential).")  # fmt: skip
@common_options
@handle_errors
def ledger_copy(url: str) -> None:
    """Copy this state directory's SQLite ledger, with all its history, into an empty
    PostgreSQL database; the event hash chain is verified on both sides.

    Refused while the daemon (or a scan) writes the ledger, and when the target
    already holds ledger rows. Then set [ledger] url to the same URL.
    """
    # psycopg is imported here, not at start-up: every other command is 0.2 s faster.
    from docproc.ledger.copy import copy_ledger
    from docproc.ledger.postgres import connect

    check_ledger_url("--to", url)
    source = opts().ledger_path()
    with WriterLock.acquire(source.parent, "docproc ledger copy"):
        target = connect(url, password=ledger_password(), claim="docproc ledger copy")
        try:
            report = copy_ledger(source, target)
        finally:
            target.close()
    for table, count in report.counts.items():
        click.echo(f"{table:<20} {count:>10}")
    click.echo(
        f"ok: copied to {target.where}; {report.events} events, hash chain intact on both sides"
    )
