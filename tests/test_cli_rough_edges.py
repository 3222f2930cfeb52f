"""What a new user hits on a fresh clone (issue 14): each rough edge, through the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from docproc.config import load
from docproc.ledger.connection import open_ledger
from docproc.ledger.dispatch import DispatchLedger
from docproc.ledger.reports import CANNED, datasette_metadata
from docproc.models import Extraction, ProviderResult, ResultKind, TaskSpec, Usage
from docproc.output import render, table
from docproc.scan import scan
from tests.clitools import docproc
from tests.parts import extractions, files, sidecars

REPO = Path(__file__).resolve().parent.parent


def test_make_run_keeps_its_state_inside_the_checkout() -> None:
    dry = subprocess.run(["make", "-n", "run"], cwd=REPO, capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert f"--state-dir {REPO}/state run" in dry.stdout


def test_config_check_accepts_the_shipped_example(tmp_path: Path) -> None:
    out = docproc("config", "check", REPO / "config.example.toml", state=tmp_path, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"watch: {REPO}/examples/inbox" in out.stdout


def test_a_typod_table_alone_is_reported_as_an_unknown_key(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text('[[wathc]]\npath = "."\n')
    out = docproc("config", "check", config, state=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "docproc: config error: wathc: unknown key (did you mean 'watch'?)"
    )


def test_config_check_of_a_directory_says_so(tmp_path: Path) -> None:
    out = docproc("config", "check", tmp_path, state=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"docproc: config error: {tmp_path} is a directory, not a configuration file"
    )


def test_an_unknown_state_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    out = docproc("ledger", "files", "--state", "bogus", state=tmp_path)
    assert out.returncode == 2
    assert "'bogus' is not one of" in out.stderr
    assert "'written'" in out.stderr and "'conflict'" in out.stderr


def test_json_and_csv_together_are_refused(tmp_path: Path) -> None:
    for command in (["ledger", "files"], ["ledger", "batches"], ["ledger", "costs"]):
        out = docproc(*command, "--json", "--csv", state=tmp_path)
        assert out.returncode == 2, command
        assert "--json and --csv cannot be used together" in out.stderr


def test_a_bad_provider_is_a_usage_error_with_no_daemon_log_lines(tmp_path: Path) -> None:
    out = docproc("run", "--provider", "bogus", state=tmp_path, cwd=tmp_path)
    assert out.returncode == 2
    assert "'bogus' is not one of 'local', 'anthropic'" in out.stderr
    assert "daemon." not in out.stdout + out.stderr
    env_without_key = {k: v for k, v in os.environ.items()
                       if k != "ANTHROPIC_API_KEY"}  # fmt: skip
    out = docproc("run", "--once", "--provider", "anthropic", state=tmp_path, cwd=tmp_path,
                  env=env_without_key)  # fmt: skip
    assert out.returncode == 2
    assert "needs an API key" in out.stderr
    assert "daemon." not in out.stdout + out.stderr


def test_log_level_reaches_the_daemon_and_its_help_says_so(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    out = docproc("--log-level", "error", "run", "--once", state=tmp_path / "s", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "daemon.ready" not in out.stdout  # [log] level is info by default
    out = docproc("run", "--once", state=tmp_path / "s", cwd=tmp_path)
    assert "daemon.ready" in out.stdout
    help_text = " ".join(docproc("--help", state=tmp_path).stdout.split())
    assert "For `run` it overrides [log] level" in help_text


def test_scan_progress_knows_its_total_before_counting_and_ends_at_100(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(12):
        (folder / f"d{i}.txt").write_text(f"Document {i}. It says something. " * 3)
    (folder / "single.txt").write_text("A file named on the command line.")
    settings = load(None, state_dir=tmp_path / "state", watches_required=False)
    calls: list[tuple[int, int]] = []
    scan(settings, [folder, folder / "single.txt"], lambda d, t: calls.append((d, t)), settle=0)
    assert {total for _, total in calls} == {13}  # the same total from the first call on
    assert calls[-1] == (13, 13)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    calls.clear()
    scan(settings, [folder], lambda d, t: calls.append((d, t)), settle=0)  # nothing new
    assert calls[-1] == (0, 0)


def test_costs_are_rounded_for_people_and_raw_in_json() -> None:
    rows = [{"model": "m", "cost_usd": 0.0029265000000000003, "estimated_cost_usd": 12.3456},
            {"model": "n", "cost_usd": 0.00001, "estimated_cost_usd": None}]  # fmt: skip
    text = table(rows, ("model", "cost_usd", "estimated_cost_usd"))
    assert "0.0029 " in text + " " and "12.35" in text and "<0.0001" in text
    assert "0.0029265" not in text
    raw = json.loads(render(rows, ("model", "cost_usd"), "json"))
    assert raw[0]["cost_usd"] == 0.0029265000000000003


def _conflicted_ledger(path: Path) -> int:
    """A ledger with one file answered and in conflict; returns the file id."""
    with open_ledger(path) as ledger:
        work = DispatchLedger.on(ledger)
        root = files(ledger).ensure_root("file:///docs", kind="local", mode="events")
        files(ledger).record_version(
            root, Path("/docs/a.txt"), size=10, mtime_ns=1, sha256="a" * 64
        )
        extractions(ledger).record_extraction(Extraction("a" * 64, "native:text", "t" * 64, 100))
        task = work.jobs.register_task(TaskSpec())
        work.jobs.create_jobs(task, [root])
        (item,) = work.jobs.batch_items([job.job_id for job in work.jobs.ready_jobs(task)])
        batch = work.batches.create_batch(
            "local", [(item, "j1-a1")], 100, model="local-extractive-1"
        )
        work.batches.batch_submitted(batch, "local-1")
        usage = Usage(input_tokens=10, output_tokens=5)
        result = ProviderResult("j1-a1", ResultKind.SUCCEEDED, summary="S.", usage=usage,
                                model="local-extractive-1")  # fmt: skip
        work.results.apply_results([(result, 0)], max_attempts=3)
        reason = "a file docproc did not write is there; it is left untouched"
        sidecars(work.ledger).sidecar_problem(
            1, item.job_id, "file:///docs/a.txt.summary.md", "conflict", reason
        )
        return 1


def test_a_conflicted_file_shows_its_reason(tmp_path: Path) -> None:
    _conflicted_ledger(tmp_path / "ledger.db")
    (row,) = json.loads(docproc("ledger", "files", "--json", state=tmp_path).stdout)
    assert row["state"] == "conflict"
    assert row["error"] == "a file docproc did not write is there; it is left untouched"
    text = docproc("ledger", "files", "--state", "conflict", state=tmp_path).stdout
    assert "did not write" in text
    shown = docproc("ledger", "show", "1", state=tmp_path).stdout
    assert "error: a file docproc did not write is there" in shown


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_complete_commands(tmp_path: Path, shell: str) -> None:
    out = docproc("completion", shell, state=tmp_path)
    assert out.returncode == 0 and "_DOCPROC_COMPLETE" in out.stdout
    env = {**os.environ, "_DOCPROC_COMPLETE": f"{shell}_complete",
           "COMP_WORDS": "docproc ledger fi", "COMP_CWORD": "2"}  # fmt: skip
    if shell == "fish":
        env["COMP_CWORD"] = "fi"
    answer = docproc(state=tmp_path, env=env)
    assert "files" in answer.stdout


def test_datasette_canned_queries_answer_on_a_real_ledger(tmp_path: Path) -> None:
    _conflicted_ledger(tmp_path / "ledger.db")
    out = docproc("ledger", "datasette-metadata", state=tmp_path)
    metadata = json.loads(out.stdout)
    assert metadata == datasette_metadata("ledger")
    queries = metadata["databases"]["ledger"]["queries"]
    assert set(queries) == set(CANNED)
    db = sqlite3.connect(f"file:{tmp_path / 'ledger.db'}?mode=ro", uri=True)
    stuck = db.execute(queries["stuck_files"]["sql"]).fetchall()
    assert [(r[1], r[2]) for r in stuck] == [("/docs/a.txt", "conflict")]
    spend = db.execute(queries["spend_per_day_and_model"]["sql"]).fetchall()
    assert [(r[1], r[2]) for r in spend] == [("local-extractive-1", 1)]
    assert db.execute(queries["batches_in_flight"]["sql"]).fetchall()[0][4] == "submitted"
    history = db.execute(queries["file_history"]["sql"], {"path": "/docs/a.txt"}).fetchall()
    kinds = [r[3] for r in history]
    assert kinds[0] == "version.recorded" and "file.discovered" in kinds
    assert "extraction.succeeded" in kinds
    assert "job.done" in kinds and kinds[-1] == "sidecars.conflict"
    db.close()
