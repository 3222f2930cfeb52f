"""The daemon against Vertex AI batch prediction: a real process, the GCS and Vertex test servers.

Nothing is mocked: the daemon reaches both servers over HTTP on 127.0.0.1,
with a token file, or with Application Default Credentials (a service-account
key whose token endpoint is the test server) and ``STORAGE_EMULATOR_HOST``.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.bedrockserver import invented_quote
from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, crashed_when, held_after, write_config
from tests.gcsserver import CallFaults, FakeGcs
from tests.test_daemon_anthropic import document, finished, kinds
from tests.vertexserver import LOCATION, PROJECT, FakeVertex, JobFaults, Tokens

pytestmark = pytest.mark.slow
MODEL = "claude-sonnet-4-5@20250929"
BUCKET = "docproc-staging"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def gcs() -> Iterator[FakeGcs]:
    with FakeGcs(auth=lambda header: header == "Bearer test-token") as server:
        server.store.bucket(BUCKET)
        yield server


def vertex_config(
    tmp_path: Path, inbox: Path, fake: FakeVertex, gcs: FakeGcs | None, extra: str = "",
    batch: str = "", ledger: str | None = None,
) -> Path:  # fmt: skip
    """A config for the test servers: a token file, unless ``gcs`` is None (then ADC and
    STORAGE_EMULATOR_HOST, set by the test)."""
    token = tmp_path / "token"
    token.write_text("test-token\n")
    access = f'access_token_file = "{token}"\nstorage_endpoint = "{gcs.url}"' if gcs else ""
    return write_config(
        tmp_path,
        [inbox],
        f"""
[task]
provider = "vertex"
model = "{MODEL}"
max_attempts = 4
retry_backoff = 0.3
[vertex]
project = "{PROJECT}"
location = "{LOCATION}"
staging = "gs://{BUCKET}/docproc/"
api_endpoint = "{fake.url}"
{access}
{extra}""",
        batch=batch,
        ledger=ledger,
    )


def answered_custom_ids(daemon: DaemonProcess) -> set[str]:
    rows = daemon.query("SELECT custom_id FROM requests WHERE input_tokens > 0")
    return {row[0] for row in rows}


def test_five_hundred_documents_through_jobs_and_faults(
    inbox: Path, tmp_path: Path, gcs: FakeGcs
) -> None:
    gcs.state.faults = CallFaults(script={"upload": ["503"]}, rate=0.02,
                                  ops=("list", "get", "delete"))  # fmt: skip
    gcs.state.faults.seed(7)
    faults = CallFaults(
        script={"create": ["429", "drop_after", "503"], "get": ["500", "drop", "429"]},
        rate=0.03, kinds=("429", "500", "503", "drop"),
    )  # fmt: skip
    job_faults = JobFaults(endings=["partial", "succeeded", "failed", "expired", "missing"],
                           record_errors=0.03, no_response=0.02)  # fmt: skip
    with FakeVertex(gcs.store, faults=faults, job_faults=job_faults, phase_seconds=0.1,
                    seed=5) as fake:  # fmt: skip
        for i in range(500):
            (inbox / f"doc{i:03d}.txt").write_text(document(i))
        config = vertex_config(tmp_path, inbox, fake, gcs, batch="max_requests = 120")
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()
            daemon.until(lambda: finished(daemon) == 500, seconds=240)
            daemon.until(lambda: not gcs.store.names(BUCKET, "docproc/"), seconds=30)
        finally:
            assert daemon.stop() == 0
    states = Counter(daemon.states().values())
    assert states["written"] + states["failed"] == 500, states
    assert states["written"] >= 450, states
    failed = daemon.query("SELECT error FROM file_status WHERE state = 'failed'")
    assert all(error for (error,) in failed)
    assert fake.violations == [] and fake.errors == [] and gcs.state.errors == []
    assert gcs.state.unconditional == [] and gcs.store.overwrites == 0
    # Nothing paid twice: every request answered at most once, in one job.
    assert max(fake.billed.values()) == 1
    assert set(fake.billed) == answered_custom_ids(daemon)
    labels = [job.labels["docproc_batch"] for job in fake.jobs.values()]
    assert len(labels) == len(set(labels))  # one job per ledger batch, whatever the faults
    assert 429 in fake.calls("create")  # the quota of four jobs, or the scripted one
    assert "batch.reconciled" in daemon.output()  # the lost create was found by its label
    detail = daemon.query("SELECT provider_detail FROM batches WHERE provider_status ="
                          " 'JOB_STATE_PARTIALLY_SUCCEEDED'")  # fmt: skip
    assert detail and "partial failure" in detail[0][0] and "incompleteCount" in detail[0][0]
    sample = json.loads((inbox / "doc007.txt.docproc.json").read_text())
    assert sample["provider"]["name"] == "vertex" and sample["cost_usd"] > 0
    assert all(h["quote"] in document(7) for h in sample["highlights"])
    assert invented_quote("x")[:20] not in json.dumps(sample)


def test_kill_9_between_label_and_job_name_makes_one_job_paid_once(
    inbox: Path, tmp_path: Path, gcs: FakeGcs, ledger_url: str | None
) -> None:
    """(Vertex's representative on both engines.)"""
    created, release = threading.Event(), threading.Event()
    with FakeVertex(gcs.store) as fake:
        create = fake.state.jobs.create
        # the job exists; the daemon dies before it hears its name
        fake.state.jobs.create = held_after(create, created, release)  # type: ignore[method-assign]
        for i in range(30):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = vertex_config(tmp_path, inbox, fake, gcs, ledger=ledger_url)
        daemon = crashed_when(config, created, release)
        fake.state.jobs.create = create  # type: ignore[method-assign]
        planned = daemon.query("SELECT state, submit_token, provider_batch_id, create_attempts"
                               " FROM batches")  # fmt: skip
        assert [(s, name, n) for s, _, name, n in planned] == [("planned", None, 1)]
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()
            daemon.until(lambda: finished(daemon) == 30, seconds=90)
        finally:
            assert daemon.stop() == 0
    assert fake.violations == []
    (job,) = fake.jobs.values()
    assert job.labels == {"docproc_batch": planned[0][1], "docproc_attempt": "1"}
    assert daemon.query("SELECT provider_batch_id, create_attempts FROM batches") == [
        (job.name, 2)  # the second attempt found the first's job and made none
    ]
    assert max(fake.billed.values()) == 1 and len(fake.billed) == 30
    assert Counter(daemon.states().values()) == {"written": 30}


def test_json_mode_round_trips_through_the_daemon(
    inbox: Path, tmp_path: Path, gcs: FakeGcs
) -> None:
    with FakeVertex(gcs.store, job_faults=JobFaults(no_json=0.2), seed=9) as fake:
        for i in range(20):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = vertex_config(tmp_path, inbox, fake, gcs, 'structured = "json"')
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()
            daemon.until(lambda: finished(daemon) == 20, seconds=90)
        finally:
            assert daemon.stop() == 0
    states = Counter(daemon.states().values())
    assert states["written"] >= 16 and states["written"] + states["failed"] == 20, states
    failed = daemon.query("SELECT error FROM file_status WHERE state = 'failed'")
    assert all("invalid_output" in error for (error,) in failed)  # prose twice: quarantined
    (first, *_) = fake.jobs.values()
    assert "tools" not in json.dumps(first.body)
    retried = daemon.query("SELECT COUNT(*) FROM requests WHERE error_type = 'invalid_output'")
    assert retried[0][0] > 0  # prose instead of JSON: sent once more, then answered
    name = next(name for name, state in daemon.states().items() if state == "written")
    sample = json.loads((inbox / f"{name}.docproc.json").read_text())
    number = int(name.removeprefix("doc").removesuffix(".txt"))
    assert sample["summary"].startswith(f"Document {number}") and sample["highlights"]
    assert all(h["quote"] in document(number) for h in sample["highlights"])
    assert fake.violations == []


def service_account_key(path: Path, token_uri: str) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    path.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
        "private_key": pem, "client_email": f"docproc@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": token_uri,
    }))  # fmt: skip
    return path


def test_application_default_credentials_refresh_before_expiry_and_stay_secret(
    inbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tokens said to live 4 minutes: google-auth takes one as stale 3m45s before it
    # expires, so each is used for ~15 s; the server honours them for 20 s only. The job
    # runs ~40 s, polled all along: a token not refreshed ahead of its expiry is refused.
    tokens = Tokens(lifetime=240.0, honoured=20.0)
    with FakeGcs() as gcs, FakeVertex(gcs.store, tokens=tokens, phase_seconds=10.0) as fake:
        gcs.store.bucket(BUCKET)
        key = service_account_key(tmp_path / "key.json", f"{fake.url}/token")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url.removeprefix("http://"))
        for i in range(6):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = vertex_config(tmp_path, inbox, fake, None)
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()
            daemon.until(lambda: finished(daemon) == 6, seconds=90)
        finally:
            assert daemon.stop() == 0
    assert Counter(daemon.states().values()) == {"written": 6}
    assert tokens.grants >= 3 and tokens.refused == []
    log = daemon.output()
    assert not any(token in log for token in tokens.issued)


def test_a_denied_permission_pauses_submission_and_status_says_why(
    inbox: Path, tmp_path: Path, gcs: FakeGcs
) -> None:
    with FakeVertex(gcs.store, faults=CallFaults(script={"create": ["403"] * 5})) as fake:
        for i in range(5):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = vertex_config(tmp_path, inbox, fake, gcs)
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()
            daemon.until(lambda: "submission.paused" in kinds(daemon))
            status = docproc("status", "--config", str(config), state=tmp_path / "state")
        finally:
            assert daemon.stop() == 0
    assert "SUBMISSION PAUSED" in status.stdout and "PERMISSION_DENIED" in status.stdout
    assert "next try at" in status.stdout
    assert "failed" not in daemon.states().values() and fake.jobs == {}


def test_cancel_from_the_command_line_cancels_the_job(
    inbox: Path, tmp_path: Path, gcs: FakeGcs
) -> None:
    # RUNNING lasts one phase: long enough for a `docproc cancel` process to start and
    # reach the daemon on a loaded machine (1 s was not: the job ended first).
    with FakeVertex(gcs.store, phase_seconds=4.0) as fake:
        for i in range(25):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = vertex_config(tmp_path, inbox, fake, gcs, batch="max_requests = 25")
        daemon = DaemonProcess(config)
        try:
            daemon.wait_ready()
            daemon.until(lambda: bool(daemon.query(
                "SELECT 1 FROM batches WHERE provider_status = 'JOB_STATE_RUNNING'")))  # fmt: skip
            done = docproc("cancel", "1", "--config", str(config), state=tmp_path / "state")
            assert done.returncode == 0, done.stderr
            daemon.until(lambda: "batch.applied" in kinds(daemon), seconds=60)
        finally:
            assert daemon.stop() == 0
    job: Any
    (job,) = fake.jobs.values()
    assert job.state == "JOB_STATE_CANCELLED"
    status = daemon.query("SELECT provider_status FROM batches WHERE id = 1")
    assert status == [("JOB_STATE_CANCELLED",)]
    requeued = daemon.query(
        "SELECT COUNT(*) FROM events WHERE kind = 'job.requeued' AND detail LIKE '%canceled%'"
    )
    assert 0 < requeued[0][0] < 25  # a cancelled job keeps what it answered
