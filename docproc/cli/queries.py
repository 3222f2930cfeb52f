"""``docproc ledger ...``: reading the ledger (read-only; safe while the daemon runs)."""

from __future__ import annotations

import sys
import time

import click

from docproc.cli.common import age, common_options, find_file, handle_errors, opts, output_options
from docproc.errors import DocprocError
from docproc.ledger.queries import FILE_STATES, Queries
from docproc.ledger.reports import datasette_metadata
from docproc.ledger.requests import RequestLedger
from docproc.output import as_json, render, table
from docproc.textstore import TextStore

FILE_COLUMNS = ("id", "path", "state", "sha256", "extractor", "chars", "error")
EVENT_COLUMNS = ("id", "at", "actor", "kind", "subject", "detail")
BATCH_COLUMNS = (
    "id", "provider_batch_id", "tier", "state", "provider_status", "request_count", "succeeded",
    "failed", "age", "estimated_cost_usd", "cost_usd",
)  # fmt: skip
REQUEST_COLUMNS = (
    "id", "kind", "state", "requested_by", "requested_at", "estimated_cost_usd", "outcome",
)  # fmt: skip
COST_COLUMNS = (
    "requests", "input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens",
    "cost_usd",
)  # fmt: skip


@click.group()
def ledger() -> None:
    """Query the ledger (read-only; safe while the daemon runs)."""


@ledger.command("files")
@click.option("--state", type=click.Choice(FILE_STATES), help="Only files in this state.")
@output_options
@common_options
@handle_errors
def ledger_files(state: str | None, fmt: str) -> None:
    """Every file the ledger knows, with its state."""
    with opts().reader() as reader:
        rows = Queries(reader).files(state=state)
    click.echo(render(rows, FILE_COLUMNS, fmt))


@ledger.command("show")
@click.argument("ref")
@click.option("--json", "as_json_", is_flag=True, help="Machine-readable output.")
@common_options
@handle_errors
def ledger_show(ref: str, as_json_: bool) -> None:
    """Everything about one file (by PATH or ID), with its history."""
    with opts().reader() as reader:
        row = find_file(reader, ref)
        queries = Queries(reader)
        history = queries.events(queries.file_subjects(row["id"]))
    if as_json_:
        click.echo(as_json({**row, "events": history}))
        return
    for key, value in row.items():
        click.echo(f"{key:>15}: {'' if value is None else value}")
    click.echo()
    click.echo(table(history, ("at", "kind", "detail"), width=100))


@ledger.command("text")
@click.argument("ref")
@common_options
@handle_errors
def ledger_text(ref: str) -> None:
    """The extracted text of one file (by PATH or ID)."""
    with opts().reader() as reader:
        row = find_file(reader, ref)
        text_sha = Queries(reader).text_sha256(row["id"])
    if text_sha is None:
        raise DocprocError(f"{row['path']} has no extracted text (state: {row['state']})")
    store = TextStore(opts().ledger_path().parent / "text")
    try:
        click.echo(store.get(text_sha), nl=False)
    except FileNotFoundError:
        raise DocprocError(f"the text of {row['path']} was pruned from the store") from None


@ledger.command("events")
@click.option("--limit", type=int, default=50, show_default=True, help="Most recent N (0: all).")
@output_options
@common_options
@handle_errors
def ledger_events(limit: int, fmt: str) -> None:
    """The append-only event log, oldest first."""
    with opts().reader() as reader:
        rows = Queries(reader).events(limit=limit or None)
    click.echo(render(rows, EVENT_COLUMNS, fmt))


@ledger.command("verify")
@common_options
@handle_errors
def ledger_verify() -> None:
    """Check the event hash chain and the ledger's invariants; exit 1 if either fails."""
    with opts().reader() as reader:
        queries = Queries(reader)
        result, broken = queries.verify(), queries.violations()
    if result.ok:
        click.echo(f"ok: {result.events} events, hash chain intact")
    else:
        click.echo(f"BROKEN at event {result.broken_at}: {result.reason}", err=True)
    if not broken:
        click.echo("ok: every invariant holds (docproc.ledger.invariants)")
    for violation in broken:
        click.echo(f"VIOLATED {violation.name}: {violation.statement}", err=True)
        for example in violation.examples:
            click.echo(f"  e.g. {example}", err=True)
    if broken or not result.ok:
        sys.exit(1)


@ledger.command("batches")
@click.option("--limit", type=int, default=50, show_default=True, help="Most recent N (0: all).")
@output_options
@common_options
@handle_errors
def ledger_batches(limit: int, fmt: str) -> None:
    """Batches, newest first: state, request counts, age, estimated and billed cost."""
    with opts().reader() as reader:
        rows = Queries(reader).batches(limit or None)
    now = time.time()
    for row in rows:
        row["age"] = age(now, row["created_at"])
    click.echo(render(rows, BATCH_COLUMNS, fmt))


@ledger.command("costs")
@click.option(
    "--by", type=click.Choice(["day", "model", "root", "batch", "tier"]), default="day",
    show_default=True, help="How to group the requests.",
)  # fmt: skip
@output_options
@common_options
@handle_errors
def ledger_costs(by: str, fmt: str) -> None:
    """Tokens and dollars billed, per day, model, root, batch or tier; every group split by
    tier: batch (batch prices) or live (requests below a provider's minimum, list prices)."""
    key = "batch_id" if by == "batch" else by
    with opts().reader() as reader:
        rows = Queries(reader).costs(key)
    columns = (key, *COST_COLUMNS) if key == "tier" else (key, "tier", *COST_COLUMNS)
    click.echo(render(rows, columns, fmt))


@ledger.command("requests")
@click.option("--limit", type=int, default=50, show_default=True, help="Most recent N (0: all).")
@output_options
@common_options
@handle_errors
def ledger_requests(limit: int, fmt: str) -> None:
    """What operators asked (cancel, retry, reprocess), newest first: who, when, the
    estimate, and what the daemon did."""
    with opts().reader() as reader:
        rows = RequestLedger(reader).requests(limit or None)
    click.echo(render(rows, REQUEST_COLUMNS, fmt))


@ledger.command("path")
@common_options
@handle_errors
def ledger_path() -> None:
    """Print where the ledger file is."""
    click.echo(opts().ledger_path())


@ledger.command("datasette-metadata")
@common_options
@handle_errors
def ledger_datasette_metadata() -> None:
    """Print datasette metadata with canned audit queries (stuck files, spend per day
    and model, batches in flight, a file's history).

    \b
    docproc ledger datasette-metadata > metadata.json
    datasette "$(docproc ledger path)" -m metadata.json
    """
    click.echo(as_json(datasette_metadata(opts().ledger_path().stem)))
