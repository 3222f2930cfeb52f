"""The daemon against Bedrock batch inference: a real process, moto's S3, the Bedrock test server.

Nothing mocks boto3: the daemon reaches moto's S3 server and the Bedrock test
server over HTTP on 127.0.0.1 through boto3's own endpoint variables
(``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_BEDROCK``,
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``), with dummy credentials.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from docproc.providers.bedrock_records import custom_id_of
from tests.bedrockserver import FakeBedrock, Faults, Limits, invented_quote
from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, crashed_when, held_after, write_config
from tests.s3server import Moto
from tests.test_daemon_anthropic import document, finished, kinds

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_env")]
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ROLE = "arn:aws:iam::123456789012:role/docproc-batch"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def bucket(moto: Moto) -> str:
    return moto.bucket(moto.client())


@contextmanager
def bedrock_server(
    moto: Moto, monkeypatch: pytest.MonkeyPatch, **kwargs: Any
) -> Iterator[FakeBedrock]:
    """The Bedrock test server, with boto3's endpoint variables pointing at it and moto."""
    with FakeBedrock(moto.url, **kwargs) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK", fake.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url)
        yield fake


def bedrock_config(
    tmp_path: Path, inbox: Path, bucket: str, extra: str = "", batch: str = "",
    ledger: str | None = None,
) -> Path:  # fmt: skip
    return write_config(
        tmp_path,
        [inbox],
        f"""
[task]
provider = "bedrock"
model = "{MODEL}"
max_attempts = 4
retry_backoff = 0.3
[bedrock]
region = "us-east-1"
role_arn = "{ROLE}"
staging = "s3://{bucket}/docproc/"
min_records = 20
{extra}""",
        batch=batch,
        ledger=ledger,
    )


def test_five_hundred_documents_through_job_and_record_faults(
    inbox: Path, tmp_path: Path, bucket: str, moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = Faults(
        script={"create": ["throttle", "drop_after_create", "quota"], "get": ["500", "drop"]},
        rate=0.03, endings=["partial", "completed", "failed", "expired"],
        record_errors=0.03, no_json=0.03,
    )  # fmt: skip
    with bedrock_server(moto, monkeypatch, faults=faults, limits=Limits(min_records=20),
                        phase_seconds=0.1, seed=5) as fake:  # fmt: skip
        for i in range(500):
            (inbox / f"doc{i:03d}.txt").write_text(document(i))
        config = bedrock_config(tmp_path, inbox, bucket, batch="max_requests = 120")
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()  # the ledger is made before the test reads it
            daemon.until(lambda: finished(daemon) == 500, seconds=240)
        finally:
            assert daemon.stop() == 0
    states = Counter(daemon.states().values())
    assert states["written"] + states["failed"] == 500, states
    assert states["written"] >= 450, states
    failed = daemon.query("SELECT error FROM file_status WHERE state = 'failed'")
    assert all(error for (error,) in failed)
    assert fake.violations == [] and fake.errors == []
    # Nothing paid twice: every record answered at most once, in one job.
    assert max(fake.billed.values()) == 1
    billed = {custom_id_of(rid) for rid in fake.billed}
    answered = {row[0] for row in daemon.query(
        "SELECT custom_id FROM requests r JOIN batches b ON b.id = r.batch_id"
        " WHERE b.tier = 'batch' AND r.input_tokens > 0")}  # fmt: skip
    assert billed == answered
    tokens = [job.token for job in fake.jobs.values()]
    assert len(tokens) == len(set(tokens))  # one job per ledger batch, whatever the faults
    assert "batch.reconciled" in daemon.output()  # the lost create was found by its name
    sample = json.loads((inbox / "doc007.txt.docproc.json").read_text())
    assert sample["provider"]["name"] == "bedrock" and sample["cost_usd"] > 0
    assert all(h["quote"] in document(7) for h in sample["highlights"])
    assert invented_quote("x")[:20] not in json.dumps(sample)


def test_kill_9_between_token_and_arn_makes_one_job_paid_once(
    inbox: Path, tmp_path: Path, bucket: str, moto: Moto, monkeypatch: pytest.MonkeyPatch,
    ledger_url: str | None,
) -> None:  # fmt: skip
    """(Bedrock's representative on both engines.)"""
    created, release = threading.Event(), threading.Event()
    with bedrock_server(moto, monkeypatch, limits=Limits(min_records=20)) as fake:
        create = fake.state.jobs.create
        # the daemon dies before it hears the ARN
        fake.state.jobs.create = held_after(create, created, release)  # type: ignore[method-assign]
        for i in range(30):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = bedrock_config(tmp_path, inbox, bucket, ledger=ledger_url)
        daemon = crashed_when(config, created, release)
        fake.state.jobs.create = create  # type: ignore[method-assign]
        planned = daemon.query("SELECT state, submit_token, provider_batch_id FROM batches")
        assert [(state, arn) for state, _, arn in planned] == [("planned", None)]
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()  # the ledger is made before the test reads it
            daemon.until(lambda: finished(daemon) == 30, seconds=90)
        finally:
            assert daemon.stop() == 0
    assert fake.violations == []
    (job,) = fake.jobs.values()
    assert job.token == planned[0][1]
    assert max(fake.billed.values()) == 1 and len(fake.billed) == 30
    assert Counter(daemon.states().values()) == {"written": 30}


def test_a_small_folder_goes_live_and_waits_when_told_to(
    inbox: Path, tmp_path: Path, bucket: str, moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bedrock_server(moto, monkeypatch, limits=Limits(min_records=100)) as fake:
        for i in range(12):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = bedrock_config(tmp_path, inbox, bucket, 'below_minimum = "wait"\n')
        config.write_text(config.read_text().replace("min_records = 20", "min_records = 100"))
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()  # the ledger is made before the test reads it
            daemon.until(lambda: "submission.waiting" in kinds(daemon))
            daemon.until(lambda: Counter(daemon.states().values())["queued"] == 12)
            status = docproc("status", "--config", str(config), state=tmp_path / "state")
            assert "at least 100 requests" in status.stdout, status.stdout
        finally:
            assert daemon.stop() == 0
        assert fake.jobs == {} and not fake.state.live_billed
        config.write_text(config.read_text().replace('below_minimum = "wait"', ""))
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()  # the ledger is made before the test reads it
            daemon.until(lambda: Counter(daemon.states().values())["written"] == 12)
        finally:
            assert daemon.stop() == 0
    assert fake.jobs == {} and sum(fake.state.live_billed.values()) == 12
    assert fake.violations == []
    args = ("ledger", "costs", "--by", "tier", "--json", "--config", str(config))
    costs = json.loads(docproc(*args, state=tmp_path / "state").stdout)
    assert [(c["tier"], c["requests"]) for c in costs] == [("live", 12)]
    assert costs[0]["cost_usd"] > 0


def test_a_missing_bucket_pauses_submission_and_status_says_when_it_tries_again(
    inbox: Path, tmp_path: Path, moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bedrock_server(moto, monkeypatch, limits=Limits(min_records=20)) as fake:
        for i in range(25):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = bedrock_config(tmp_path, inbox, "docproc-no-such-bucket")
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()  # the ledger is made before the test reads it
            daemon.until(lambda: "submission.paused" in kinds(daemon))
            status = docproc("status", "--config", str(config), state=tmp_path / "state")
        finally:
            assert daemon.stop() == 0
    assert "SUBMISSION PAUSED" in status.stdout and "bucket does not exist" in status.stdout
    assert "next try at" in status.stdout
    assert "failed" not in daemon.states().values() and fake.jobs == {}


def test_cancel_from_the_command_line_stops_the_job(
    inbox: Path, tmp_path: Path, bucket: str, moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bedrock_server(
        moto, monkeypatch, limits=Limits(min_records=20), phase_seconds=1.0
    ) as fake:
        for i in range(25):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = bedrock_config(tmp_path, inbox, bucket)
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()  # the ledger is made before the test reads it
            daemon.until(lambda: bool(daemon.query(
                "SELECT 1 FROM batches WHERE state = 'submitted'")))  # fmt: skip
            done = docproc("cancel", "1", "--config", str(config), state=tmp_path / "state")
            assert done.returncode == 0, done.stderr
            daemon.until(lambda: "batch.applied" in kinds(daemon), seconds=60)
        finally:
            assert daemon.stop() == 0
    (job,) = fake.jobs.values()
    assert job.status == "Stopped"
    status = daemon.query("SELECT provider_status FROM batches WHERE id = 1")
    assert status == [("Stopped",)]
    requeued = daemon.query(
        "SELECT COUNT(*) FROM events WHERE kind = 'job.requeued' AND detail LIKE '%canceled%'"
    )
    assert 0 < requeued[0][0] < 25  # a stopped job keeps what it answered
