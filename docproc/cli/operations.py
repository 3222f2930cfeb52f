"""Commands that change what docproc does: ``docproc cancel``, ``docproc ledger retry``
(requests the daemon carries out), ``docproc ledger import-sidecars``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from docproc.adopt import import_sidecars
from docproc.cli.common import F, common_options, find_file, handle_errors, opts
from docproc.config import operator_name
from docproc.errors import DocprocError
from docproc.ledger.connection import Ledger
from docproc.ledger.imports import ImportLedger
from docproc.ledger.queries import Queries
from docproc.ledger.requests import RequestLedger
from docproc.output import usd
from docproc.writerlock import WriterLock

WAIT_HELP = "Seconds to wait for the daemon to carry the request out (0: do not wait)."
POLL_S = 0.2


def wait_option(func: F) -> F:
    return click.option("--wait", type=click.FloatRange(min=0), default=30.0, show_default=True,
                        metavar="SECONDS", help=WAIT_HELP)(func)  # fmt: skip


@click.command("retry")
@click.argument("refs", nargs=-1)
@wait_option
@common_options
@handle_errors
def ledger_retry(refs: tuple[str, ...], wait: float) -> None:
    """Send quarantined files (all, or these PATHs/IDs) to the provider again.

    Recorded in the ledger as a request that the running daemon carries out
    (no provider key needed here); the command reports when it has. Attempts
    go on counting, so no custom_id is ever sent twice.
    """
    with opts().reader() as reader:
        job_ids = [_job_of(reader, ref) for ref in refs]
    detail = {"job_ids": job_ids} if job_ids else {"job_ids": None}
    ask("retry", detail, wait=wait, what="retry")


def _job_of(reader: Ledger, ref: str) -> int:
    row = find_file(reader, ref)
    if row["job_id"] is None:
        raise DocprocError(f"{row['path']} has no job to retry (state: {row['state']})")
    return int(row["job_id"])


@click.command()
@click.argument("batch")
@click.option("--no-retry", is_flag=True,
              help="Quarantine the canceled requests instead of sending them again.")  # fmt: skip
@wait_option
@common_options
@handle_errors
def cancel(batch: str, no_retry: bool, wait: float) -> None:
    """Cancel BATCH (a ledger id or the provider's batch id) at the provider.

    Recorded in the ledger as a request that the running daemon carries out
    (it holds the provider key; this command does not need it). The batch
    still ends at the provider; the daemon applies what finished and sends
    the canceled requests again with backoff, or, with --no-retry,
    quarantines them (docproc ledger retry sends them later).
    """
    with opts().reader() as reader:
        row = Queries(reader).find_batch(batch)
    if row is None:
        raise DocprocError(f"no batch {batch!r} in the ledger (see docproc ledger batches)")
    if row["state"] != "submitted" or not row["provider_batch_id"]:
        raise DocprocError(
            f"batch {row['id']} is {row['state']}: only a submitted batch can be canceled"
        )
    detail = {"batch_id": row["id"], "provider_batch_id": row["provider_batch_id"],
              "retry": not no_retry}  # fmt: skip
    ask("cancel", detail, wait=wait, what=f"cancel of batch {row['id']}")


def ask(
    kind: str, detail: dict[str, Any], *, wait: float, what: str, estimated: float | None = None
) -> None:
    """Record an operator request, then wait (up to ``wait`` s) for the daemon's outcome."""
    location = opts().ledger_location()
    if isinstance(location, Path) and not location.exists():
        raise DocprocError(f"no ledger at {location}: nothing has been recorded yet")
    with opts().writer() as writer:
        request_id = RequestLedger(writer).record(
            kind, detail, requested_by=operator_name(), estimated_cost=estimated
        )
    row = _outcome(request_id, wait)
    if row is None or row["state"] == "pending":
        click.echo(f"{what} recorded as request {request_id}; the daemon carries it out when it"
                   " runs (see docproc ledger requests)")  # fmt: skip
        return
    if row["state"] == "refused":
        raise DocprocError(f"{what} refused by the daemon: {row['outcome']}")
    click.echo(f"{what} done (request {request_id}): {row['outcome']}")


def _outcome(request_id: int, wait: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + wait
    with opts().reader() as reader:
        requests = RequestLedger(reader)
        while True:
            row = requests.get(request_id)
            if row is not None and row["state"] != "pending":
                return row
            if time.monotonic() >= deadline:
                return row
            time.sleep(POLL_S)


@click.command("import-sidecars")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@common_options
@handle_errors
def ledger_import_sidecars(paths: tuple[Path, ...]) -> None:
    """Rebuild the record of what was summarised, when, by which model and at what
    cost, from docproc's own sidecars under PATHS (after the ledger was lost).

    Only sidecars whose digest shows them untouched are read; edited ones are
    counted and left alone. It writes many rows, so it is refused while the
    daemon (or a scan) writes the ledger: stop it first (a running daemon
    adopts the sidecars under its watched folders by itself).
    """
    settings = opts().settings(watches_required=False)
    with (
        WriterLock.acquire(settings.state_dir, "docproc ledger import-sidecars"),
        opts().writer(claim="docproc ledger import-sidecars") as writer,
    ):
        report = import_sidecars(ImportLedger(writer), paths, settings=settings.sidecars,
                                 watched=[w.path for w in settings.watches])  # fmt: skip
    click.echo(
        f"{report.sidecars} sidecar(s): {report.recorded} result(s) recorded"
        f" (${usd(report.cost_usd)}), {report.known} already in the ledger,"
        f" {report.refused} edited or not docproc's (left alone)"
    )
