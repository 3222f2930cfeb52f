"""Commands that cost money, priced first: ``docproc estimate`` and ``docproc reprocess``."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from docproc.cli.common import common_options, handle_errors, opts, output_options
from docproc.cli.operations import ask, wait_option
from docproc.compose import make_provider, make_request_builder, task_for
from docproc.config import PROVIDERS, Settings, ledger_password
from docproc.errors import DocprocError, LedgerBusy
from docproc.estimate import Estimate, estimate
from docproc.ledger.connection import open_ledger
from docproc.ledger.selection import Selected, SelectionLedger
from docproc.ledger.uris import file_uri
from docproc.models import TaskSpec
from docproc.output import as_csv, as_json, usd
from docproc.textstore import TextStore

ESTIMATE_COLUMNS = (
    "documents", "already_summarised", "unreadable", "input_tokens", "output_tokens",
    "batch_usd", "live_usd", "cache_saving_usd", "max_batch_usd", "model", "exact",
)  # fmt: skip


@click.command("estimate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--provider", type=click.Choice(PROVIDERS), help="Price for this provider.")
@click.option("--model", help="Price for this model (default: the task's).")
@click.option("--exact", is_flag=True,
              help="Count input tokens with the provider's token-counting endpoint (needs the"
              " key; free) instead of locally.")  # fmt: skip
@output_options
@common_options
@handle_errors
def estimate_command(
    paths: tuple[Path, ...], provider: str | None, model: str | None, exact: bool, fmt: str
) -> None:
    """What summarising PATHS (files or folders; default: every live file) would cost.

    Folders and files not yet read are taken in and extracted first, as
    `docproc scan` does. Nothing is sent. Documents already summarised under
    the task cost nothing and are counted apart.
    """
    settings = opts().settings(watches_required=False)
    task = task_for(settings, provider, model)
    on_disk = [p for p in paths if p.exists()]
    if on_disk:
        _scan(settings, on_disk)
    with open_ledger(settings.ledger_location, readonly=True, password=ledger_password()) as reader:
        selection = SelectionLedger(reader)
        chosen = _select(selection, paths, task)
        result = _price(settings, task, chosen, selection.output_history(task.model), exact)
    _show(result, fmt)


def _scan(settings: Settings, paths: list[Path]) -> None:
    """Read what is new under ``paths`` into the ledger, unless another process writes
    it (the daemon): then the estimate is of what the ledger holds, and says so."""
    from docproc.scan import scan  # the pipeline is heavy; only this path needs it

    try:
        scan(settings, paths)
    except LedgerBusy as busy:
        click.echo(f"note: {busy.holder or 'another process'} writes this ledger, so files it"
                   " has not read yet are left out: this estimates what it holds",
                   err=True)  # fmt: skip


def _select(selection: SelectionLedger, paths: tuple[Path, ...], task: TaskSpec) -> list[Selected]:
    refs = [str(p) for p in paths if not p.is_dir()]
    folders = [str(p.absolute()) for p in paths if p.is_dir()]
    file_ids = selection.file_ids(refs, folders)
    if paths and not file_ids:
        raise DocprocError("no live file in the ledger under " + ", ".join(map(str, paths)))
    return selection.versions(file_ids, task.fingerprint)


def _price(
    settings: Settings,
    task: TaskSpec,
    chosen: list[Selected],
    history: tuple[int, float],
    exact: bool,
) -> Estimate:
    provider = make_request_builder(settings, task.provider)
    if exact and task.provider == "anthropic":
        provider = make_provider(settings, task.provider)  # the key is needed to count
    store = TextStore(settings.text_dir)
    if not exact:
        return estimate(chosen, task=task, provider=provider, prices=settings.prices,
                        history=history, store=store)  # fmt: skip
    with click.progressbar(length=max(1, len(chosen)), label="counting tokens",
                           file=sys.stderr) as bar:  # fmt: skip
        return estimate(chosen, task=task, provider=provider, prices=settings.prices,
                        history=history, store=store, exact=True,
                        progress=lambda done, _: bar.update(done - bar.pos))  # fmt: skip


def _show(result: Estimate, fmt: str) -> None:
    row = result.as_dict()
    if fmt == "json":
        click.echo(as_json(row))
    elif fmt == "csv":
        click.echo(as_csv([row], list(row)), nl=False)
    else:
        click.echo(describe(result))


def describe(e: Estimate) -> str:
    """The estimate for people."""
    how = "counted by the provider" if e.exact else "estimated locally"
    lines = [
        f"{e.documents} document(s) to summarise with {e.provider} {e.model}"
        f" ({e.already_summarised} already summarised under this task: $0;"
        f" {e.unreadable} without text: not sent)",
        f"input tokens:  {e.input_tokens:,} ({how}; {e.prefix_tokens:,} of each request are the"
        " shared prompt and tool)",
        f"output tokens: {e.output_tokens:,} ({e.output_basis})",
        f"batch price:   ${usd(e.batch_usd)}   (live calls would cost ${usd(e.live_usd)})",
    ]
    if e.cacheable:
        lines.append(f"prompt cache:  up to ${usd(e.cache_saving_usd)} less, if every request"
                     " after the first reads the shared prompt from the cache")  # fmt: skip
    else:
        lines.append("prompt cache:  no saving: the shared prompt is shorter than the model's"
                     " minimum cacheable length")  # fmt: skip
    lines.append(f"at most:       ${usd(e.max_batch_usd)} (every answer at max_tokens; what the"
                 " budget reserves)")  # fmt: skip
    return "\n".join(lines)


@click.command("reprocess")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--root", "roots", multiple=True, metavar="URI_OR_PATH",
              help="Every live file under this watched root (repeatable).")  # fmt: skip
@click.option("--all", "everything", is_flag=True, help="Every live file.")
@click.option("--dry-run", is_flag=True, help="Print the estimate; queue nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@wait_option
@common_options
@handle_errors
def reprocess(
    paths: tuple[Path, ...],
    roots: tuple[str, ...],
    everything: bool,
    dry_run: bool,
    yes: bool,
    wait: float,
) -> None:
    """Summarise PATHS (files or folders) again under the current [task], on purpose.

    A changed [task] (prompt, model, max_tokens) never resends anything by
    itself; this does, for what you select, after showing what it would cost
    and asking (--yes for scripts). The budget caps still apply. The ledger
    records who asked and the estimate; sidecars are replaced only when the
    new results are written.
    """
    if not (paths or roots or everything):
        raise click.UsageError("name PATHs, --root or --all")
    settings = opts().settings(watches_required=False)
    task = settings.task
    with open_ledger(settings.ledger_location, readonly=True, password=ledger_password()) as reader:
        selection = SelectionLedger(reader)
        folders = [str(p.absolute()) for p in paths if p.is_dir()]
        file_ids = selection.file_ids([str(p) for p in paths if not p.is_dir()], folders,
                                      [_root_uri(r) for r in roots])  # fmt: skip
        if not file_ids:
            raise DocprocError("nothing selected: no live file in the ledger matches")
        chosen = [_again(s) for s in selection.versions(file_ids, task.fingerprint)]
        result = _price(settings, task, chosen, selection.output_history(task.model), False)
    click.echo(describe(result))
    if dry_run:
        click.echo("dry run: nothing queued")
        return
    _confirm(yes, result)
    detail = {"task": task.fingerprint, "version_ids": [s.version_id for s in chosen
              if s.state == "extracted" and not s.in_flight], "documents": result.documents,
              "max_batch_usd": result.max_batch_usd}  # fmt: skip
    ask("reprocess", detail, wait=wait, what=f"reprocessing of {result.documents} document(s)",
        estimated=result.batch_usd)  # fmt: skip


def _again(item: Selected) -> Selected:
    """For reprocessing, a summarised version costs like any other."""
    return replace(item, summarised=False)


def _root_uri(root: str) -> str:
    return root if "://" in root else file_uri(Path(root).absolute())


def _confirm(yes: bool, result: Estimate) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError("not a terminal: pass --yes to confirm (or --dry-run)")
    click.confirm(
        f"Queue {result.documents} document(s) for about ${usd(result.batch_usd)}?", abort=True
    )
