"""``docproc status`` and ``docproc config check``."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from docproc.cli.common import age, common_options, handle_errors, opts
from docproc.config import ledger_password, load
from docproc.costs import period_starts
from docproc.errors import DocprocError
from docproc.ledger.budget import BudgetLedger
from docproc.ledger.conditions import Conditions
from docproc.ledger.queries import Queries
from docproc.output import as_json, table
from docproc.storage import MB, free_bytes, state_dir_trouble

FLIGHT_COLUMNS = (
    "id", "provider_batch_id", "tier", "state", "provider_status", "requests", "age", "problem",
)  # fmt: skip


@click.command()
@click.option("--json", "as_json_", is_flag=True, help="Machine-readable output.")
@common_options
@handle_errors
def status(as_json_: bool) -> None:
    """Files per state, and each root's mode and last scan."""
    with opts().reader() as ledger:
        queries, conditions, budget = Queries(ledger), Conditions(ledger), BudgetLedger(ledger)
        counts, roots = queries.state_counts(), queries.roots()
        work = queries.counts()
        paused, stuck = conditions.pause_reason(), conditions.stuck_reason()
        waiting = conditions.waiting_reason()
        in_flight = [_flight(row) for row in queries.batches_in_flight()]
        retrying = [asdict(w) for w in queries.sidecars_waiting()]
        storage = _storage(opts().ledger_path().parent)
        day, month = period_starts(time.time())
        spend = {"today_usd": round(budget.billed(day), 4),
                 "month_usd": round(budget.billed(month), 4),
                 "reserved_usd": round(budget.reserved(), 4)}  # fmt: skip
    if as_json_:
        click.echo(as_json({"files": counts, "roots": roots, "work": work, "spend": spend,
                            "submission_paused": paused, "stuck": stuck,
                            "submission_waiting": waiting,
                            "batches_in_flight": in_flight,
                            "sidecars_retrying": retrying, "storage": storage}))  # fmt: skip
        return
    if stuck:
        click.echo(f"DAEMON STUCK: {stuck}")
        click.echo("(the same failure every tick; systemd restarts it; see its log)\n")
    if storage["trouble"]:
        click.echo(f"STORAGE: {storage['trouble']}\n")
    if retrying:
        click.echo("SIDECARS RETRYING (written once the fault clears; no restart needed):")
        click.echo(table(retrying, ("files", "kind", "reason"), width=100) + "\n")
    if paused:
        click.echo(f"SUBMISSION PAUSED: {paused}")
        click.echo("(extraction goes on; raise the cap in [budget] and reload, or wait)\n")
    if waiting:
        click.echo(f"WAITING: {waiting}\n")
    click.echo(
        f"spend: ${spend['today_usd']:.2f} today, ${spend['month_usd']:.2f} this month"
        f" (UTC), ${spend['reserved_usd']:.2f} reserved by batches in flight\n"
    )
    click.echo(table([{"state": k, "files": v} for k, v in sorted(counts.items())],
                     ("state", "files")))  # fmt: skip
    click.echo()
    click.echo(table([{"what": k, "count": v} for k, v in sorted(work.items())], ("what", "count")))
    click.echo()
    click.echo(table(roots, ("id", "uri", "kind", "mode", "status", "last_scan_at"), width=100))
    if in_flight:
        click.echo()
        click.echo(table(in_flight, FLIGHT_COLUMNS, width=160))


def _flight(row: dict[str, Any]) -> dict[str, Any]:
    """A batch in flight as status shows it: what the provider last said, and any problem."""
    return {
        "id": row["id"], "provider_batch_id": row["provider_batch_id"], "tier": row["tier"],
        "state": row["state"], "provider_status": row["provider_status"],
        "requests": row["request_count"], "age": age(time.time(), row["created_at"]),
        "problem": row["error"],
    }  # fmt: skip


def _storage(state_dir: Path) -> dict[str, Any]:
    """The state directory's free space and trouble, as its filesystem says now."""
    try:
        floor = opts().settings(watches_required=False).storage.min_free_mb
    except DocprocError:  # a watched folder is missing, say: the default floor
        floor = None
    free = free_bytes(state_dir)
    return {"state_dir": str(state_dir), "free_mb": None if free is None else free // MB,
            "trouble": state_dir_trouble(state_dir, floor)}  # fmt: skip


@click.group("config")
def config_group() -> None:
    """Check the configuration."""


@config_group.command("check")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@common_options
@handle_errors
def config_check(path: Path | None) -> None:
    """Validate PATH (or --config, or the embedded default) and print the result."""
    settings = load(path or opts().config, state_dir=opts().state_dir)
    click.echo(f"config ok: {settings.source or 'embedded default'}")
    click.echo(f"state directory: {settings.state_dir}")
    for spec in settings.watches:
        click.echo(f"watch: {spec.path} (mode {spec.mode.value}, settle {spec.settle_seconds:g} s)")
    if settings.ledger_url is None:
        click.echo(f"ledger: {settings.ledger_path} (SQLite)")
        return
    # psycopg is imported here, only when the ledger is on a server
    from docproc.ledger.pgcheck import check_server

    found = check_server(settings.ledger_url, password=ledger_password())
    click.echo(f"ledger: {found.where} reachable (PostgreSQL {found.version}; role {found.role}"
               f" {found.may})")  # fmt: skip
    if found.pending:
        raise DocprocError(
            f"ledger schema not current: {len(found.pending)} migration(s) pending"
            f" ({', '.join(found.pending)}); any writing command (the daemon) applies them"
        )
    click.echo("ledger schema: current")
