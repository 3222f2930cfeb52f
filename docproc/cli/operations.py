"""Commands that change what docproc does: ``docproc cancel``, ``docproc ledger retry``."""

from __future__ import annotations

import click

from docproc.cli.common import common_options, find_file, handle_errors, opts
from docproc.compose import make_provider
from docproc.errors import DocprocError
from docproc.ledger import Ledger
from docproc.ledger_work import WorkLedger


@click.command("retry")
@click.argument("refs", nargs=-1)
@common_options
@handle_errors
def ledger_retry(refs: tuple[str, ...]) -> None:
    """Send quarantined files (all, or these PATHs/IDs) to the provider again.

    Safe while the daemon runs: the change is one short transaction.
    """
    path = opts().ledger_path()
    if not path.exists():
        raise DocprocError(f"no ledger at {path}: nothing has been recorded yet")
    with Ledger(path, actor="cli") as writer:
        job_ids = [_job_of(writer, ref) for ref in refs]
        count = WorkLedger(writer).requeue_failed(job_ids or None)
    click.echo(f"requeued {count} job(s)")


def _job_of(reader: Ledger, ref: str) -> int:
    row = find_file(reader, ref)
    if row["job_id"] is None:
        raise DocprocError(f"{row['path']} has no job to retry (state: {row['state']})")
    return int(row["job_id"])


@click.command()
@click.argument("batch")
@common_options
@handle_errors
def cancel(batch: str) -> None:
    """Ask the provider to cancel BATCH (a ledger id or the provider's batch id).

    The batch still ends at the provider; the daemon then applies what
    finished and requeues the canceled requests with backoff.
    """
    settings = opts().settings(watches_required=False)
    path = settings.ledger_path
    if not path.exists():
        raise DocprocError(f"no ledger at {path}: nothing has been recorded yet")
    with Ledger(path, actor="cli") as writer:
        work = WorkLedger(writer)
        row = work.find_batch(batch)
        if row is None:
            raise DocprocError(f"no batch {batch!r} in the ledger (see docproc ledger batches)")
        if row["state"] not in ("submitted",) or not row["provider_batch_id"]:
            raise DocprocError(
                f"batch {row['id']} is {row['state']}: only a submitted batch can be canceled"
            )
        provider = make_provider(settings, row["provider"])
        provider.cancel(row["provider_batch_id"])
        work.cancel_requested(int(row["id"]))
    click.echo(f"cancel requested for batch {row['id']} ({row['provider_batch_id']})")
