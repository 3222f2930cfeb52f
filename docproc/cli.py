"""The ``docproc`` command line: thin over the ledger and the pipeline; no SQL here.

Every command takes ``--config`` and ``--state-dir`` (before or after the
command name); ``DOCPROC_STATE_DIR`` works everywhere too. Errors of the
configuration exit 2 with one line naming the key; other expected errors
exit 1 with one line; nothing a user can cause prints a traceback.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from docproc import __version__, logconfig
from docproc.compose import make_provider
from docproc.config import Settings, load, state_dir_only
from docproc.costs import period_starts
from docproc.errors import ConfigError, DocprocError, LedgerUnwritable
from docproc.ledger import Ledger
from docproc.ledger_retries import SidecarRetries
from docproc.ledger_work import WorkLedger
from docproc.output import as_json, render, table
from docproc.storage import MB, check_state_dir, free_bytes, state_dir_trouble
from docproc.textstore import TextStore

F = TypeVar("F", bound=Callable[..., Any])
FILE_COLUMNS = ("id", "path", "state", "sha256", "extractor", "chars", "error")
EVENT_COLUMNS = ("id", "at", "actor", "kind", "subject", "detail")
BATCH_COLUMNS = (
    "id", "provider_batch_id", "state", "request_count", "succeeded", "failed", "age",
    "estimated_cost_usd", "cost_usd",
)  # fmt: skip
COST_COLUMNS = (
    "requests", "input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens",
    "cost_usd",
)  # fmt: skip


@dataclass
class Options:
    config: Path | None = None
    state_dir: Path | None = None

    def settings(self, *, watches_required: bool = True) -> Settings:
        return load(self.config, state_dir=self.state_dir, watches_required=watches_required)

    def reader(self) -> Ledger:
        """The ledger opened read-only: safe while the daemon writes."""
        path = state_dir_only(self.config, state_dir=self.state_dir) / "ledger.db"
        return Ledger(path, readonly=True)


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
        except (DocprocError, LedgerUnwritable) as exc:
            click.echo(f"docproc: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def opts() -> Options:
    return click.get_current_context().ensure_object(Options)


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


@main.command()
@click.option(
    "--once",
    is_flag=True,
    help="Take what is there, flush at once, wait for the results, write, exit.",
)
@click.option("--provider", metavar="NAME", help="Use this provider instead of [task] provider.")
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
    daemon = Daemon(RunOptions(options.config, options.state_dir, provider, once))
    sys.exit(daemon.run())


@main.command()
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
    with click.progressbar(length=1, label="extracting", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        result = run_scan(settings, list(paths), progress, settle=settle)
    click.echo(_scan_summary(result.rows, result.still_changing))
    if not any(row["state"] == "extracted" for row in result.rows):
        click.echo("docproc: nothing could be read", err=True)
        sys.exit(1)


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


@main.command()
@click.option("--json", "as_json_", is_flag=True, help="Machine-readable output.")
@common_options
@handle_errors
def status(as_json_: bool) -> None:
    """Files per state, and each root's mode and last scan."""
    with opts().reader() as ledger:
        counts, roots = ledger.state_counts(), ledger.roots()
        reader = WorkLedger(ledger)
        work, paused, stuck = reader.counts(), reader.pause_reason(), reader.stuck_reason()
        waiting = [asdict(w) for w in SidecarRetries(ledger).waiting()]
        storage = _storage(ledger.path.parent)
        day, month = period_starts(time.time())
        spend = {"today_usd": round(reader.billed(day), 4),
                 "month_usd": round(reader.billed(month), 4),
                 "reserved_usd": round(reader.reserved(), 4)}  # fmt: skip
    if as_json_:
        click.echo(as_json({"files": counts, "roots": roots, "work": work, "spend": spend,
                            "submission_paused": paused, "stuck": stuck,
                            "sidecars_retrying": waiting, "storage": storage}))  # fmt: skip
        return
    if stuck:
        click.echo(f"DAEMON STUCK: {stuck}")
        click.echo("(the same failure every tick; systemd restarts it; see its log)\n")
    if storage["trouble"]:
        click.echo(f"STORAGE: {storage['trouble']}\n")
    if waiting:
        click.echo("SIDECARS RETRYING (written once the fault clears; no restart needed):")
        click.echo(table(waiting, ("files", "kind", "reason"), width=100) + "\n")
    if paused:
        click.echo(f"SUBMISSION PAUSED: {paused}")
        click.echo("(extraction goes on; raise the cap in [budget] and reload, or wait)\n")
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


def _storage(state_dir: Path) -> dict[str, Any]:
    """The state directory's free space and trouble, as its filesystem says now."""
    try:
        floor = opts().settings(watches_required=False).storage.min_free_mb
    except DocprocError:  # a watched folder is missing, say: the default floor
        floor = None
    free = free_bytes(state_dir)
    return {"state_dir": str(state_dir), "free_mb": None if free is None else free // MB,
            "trouble": state_dir_trouble(state_dir, floor)}  # fmt: skip


@main.group("config")
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


@main.group()
def ledger() -> None:
    """Query the ledger (read-only; safe while the daemon runs)."""


def output_options(func: F) -> F:
    """--json / --csv on a listing command (table by default)."""
    func = click.option("--csv", "fmt", flag_value="csv", help="CSV output.")(func)
    func = click.option("--json", "fmt", flag_value="json", help="JSON array output.")(func)
    return click.option("--table", "fmt", flag_value="table", default=True, hidden=True)(func)


@ledger.command("files")
@click.option("--state", help="Only files in this state (extracted, failed, retrying, ...).")
@output_options
@common_options
@handle_errors
def ledger_files(state: str | None, fmt: str) -> None:
    """Every file the ledger knows, with its state."""
    with opts().reader() as reader:
        rows = reader.files(state=state)
    click.echo(render(rows, FILE_COLUMNS, fmt))


def _find(reader: Ledger, ref: str) -> dict[str, Any]:
    row = reader.find_file(ref)
    if row is None:
        raise DocprocError(f"no file {ref!r} in the ledger")
    return row


@ledger.command("show")
@click.argument("ref")
@click.option("--json", "as_json_", is_flag=True, help="Machine-readable output.")
@common_options
@handle_errors
def ledger_show(ref: str, as_json_: bool) -> None:
    """Everything about one file (by PATH or ID), with its history."""
    with opts().reader() as reader:
        row = _find(reader, ref)
        history = reader.events(reader.file_subjects(row["id"]))
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
        row = _find(reader, ref)
        text_sha = reader.text_sha256(row["id"])
    if text_sha is None:
        raise DocprocError(f"{row['path']} has no extracted text (state: {row['state']})")
    store = TextStore(reader.path.parent / "text")
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
        rows = reader.events(limit=limit or None)
    click.echo(render(rows, EVENT_COLUMNS, fmt))


@ledger.command("verify")
@common_options
@handle_errors
def ledger_verify() -> None:
    """Check the event hash chain and the ledger's invariants; exit 1 if either fails."""
    with opts().reader() as reader:
        result, broken = reader.verify(), reader.violations()
    if result.ok:
        click.echo(f"ok: {result.events} events, hash chain intact")
    else:
        click.echo(f"BROKEN at event {result.broken_at}: {result.reason}", err=True)
    if not broken:
        click.echo("ok: every invariant holds (docproc.ledger_invariants)")
    for violation in broken:
        click.echo(f"VIOLATED {violation.name}: {violation.statement}", err=True)
        for example in violation.examples:
            click.echo(f"  e.g. {example}", err=True)
    if broken or not result.ok:
        sys.exit(1)


@ledger.command("retry")
@click.argument("refs", nargs=-1)
@common_options
@handle_errors
def ledger_retry(refs: tuple[str, ...]) -> None:
    """Send quarantined files (all, or these PATHs/IDs) to the provider again.

    Safe while the daemon runs: the change is one short transaction.
    """
    path = state_dir_only(opts().config, state_dir=opts().state_dir) / "ledger.db"
    if not path.exists():
        raise DocprocError(f"no ledger at {path}: nothing has been recorded yet")
    with Ledger(path, actor="cli") as writer:
        job_ids = [_job_of(writer, ref) for ref in refs]
        count = WorkLedger(writer).requeue_failed(job_ids or None)
    click.echo(f"requeued {count} job(s)")


def _job_of(reader: Ledger, ref: str) -> int:
    row = _find(reader, ref)
    if row["job_id"] is None:
        raise DocprocError(f"{row['path']} has no job to retry (state: {row['state']})")
    return int(row["job_id"])


@ledger.command("batches")
@click.option("--limit", type=int, default=50, show_default=True, help="Most recent N (0: all).")
@output_options
@common_options
@handle_errors
def ledger_batches(limit: int, fmt: str) -> None:
    """Batches, newest first: state, request counts, age, estimated and billed cost."""
    with opts().reader() as reader:
        rows = WorkLedger(reader).batches(limit or None)
    now = time.time()
    for row in rows:
        row["age"] = _age(now, row["created_at"])
    click.echo(render(rows, BATCH_COLUMNS, fmt))


@ledger.command("costs")
@click.option(
    "--by", type=click.Choice(["day", "model", "root", "batch"]), default="day",
    show_default=True, help="How to group the requests.",
)  # fmt: skip
@output_options
@common_options
@handle_errors
def ledger_costs(by: str, fmt: str) -> None:
    """Tokens and dollars billed, per day, model, root or batch (batch prices applied)."""
    key = "batch_id" if by == "batch" else by
    with opts().reader() as reader:
        rows = WorkLedger(reader).costs(key)
    click.echo(render(rows, (key, *COST_COLUMNS), fmt))


def _age(now: float, created_at: str | None) -> str:
    """How long ago, e.g. ``3h12m``."""
    if not created_at:
        return ""
    seconds = max(0, int(now - datetime.fromisoformat(created_at).timestamp()))
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds % 60:02d}s"


@main.command()
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


@ledger.command("path")
@common_options
@handle_errors
def ledger_path() -> None:
    """Print where the ledger file is."""
    click.echo(state_dir_only(opts().config, state_dir=opts().state_dir) / "ledger.db")
