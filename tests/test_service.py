"""docproc as a systemd service: the unit file, and the daemon as a real subprocess
talking sd_notify to a socket the test binds, logging JSON, keeping its secret."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from docproc.extract.route import soffice_available, tesseract_available
from tests import docformats
from tests.clitools import AS_ORDINARY_USER, docproc
from tests.daemonrun import DaemonProcess, write_config
from tests.notifysock import NotifySocket

UNIT = Path(__file__).parent.parent / "systemd" / "docproc.service"
INSTALLED = "/opt/docproc/venv/bin/docproc"
TEXT = (
    "The records office reviewed the storage contracts on Monday. "
    "Every contract will be scanned before the end of the month. "
    "Old paper copies go to the county archive after the review. "
    "Questions about access go to the duty archivist."
)


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def service_env(sock: NotifySocket | None, watchdog_usec: int = 0, **extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    if sock is not None:
        env.update(NOTIFY_SOCKET=sock.address, WATCHDOG_USEC=str(watchdog_usec))
    return env


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


# -- the unit file ------------------------------------------------------------


def test_unit_file_verifies_and_its_exposure_is_at_most_2(tmp_path: Path) -> None:
    text = UNIT.read_text()
    # verify checks that ExecStart exists; the only change is where the program is.
    assert text.count(INSTALLED) == 1
    program = Path(sys.executable).parent / "docproc"
    assert os.access(program, os.X_OK), program
    unit = tmp_path / "docproc.service"
    unit.write_text(text.replace(INSTALLED, str(program)))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)],
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert (verify.returncode, verify.stderr) == (0, ""), verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    print(security.stdout)
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", security.stdout)
    assert found, security.stdout + security.stderr
    assert float(found.group(1)) <= 2.0


def test_unit_file_has_the_service_contract() -> None:
    text = UNIT.read_text()
    d = directives(text)
    one = {key: values[-1] for key, values in d.items()}
    assert one["Type"] == "notify"
    assert "-HUP $MAINPID" in one["ExecReload"]
    assert int(one["WatchdogSec"]) > 0
    assert one["Restart"] == "on-failure"
    assert one.get("DynamicUser") == "yes" or one["User"] not in ("", "root", "nobody")
    for key in ("StateDirectory", "CacheDirectory", "MemoryMax"):
        assert one[key], key
    expected = {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                "PrivateDevices": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
                "UMask": "0077"}  # fmt: skip
    assert {key: one.get(key) for key in expected} == expected
    assert set(one["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "@system-service" in d["SystemCallFilter"]
    assert one["LoadCredential"].startswith("ANTHROPIC_API_KEY:")
    assert "MemoryDenyWriteExecute" not in d
    assert "#     ReadWritePaths=/srv/documents/inbox" in text  # how to add a watched folder


# -- sd_notify ----------------------------------------------------------------


def test_ready_status_watchdog_reload_and_stop(
    inbox: Path, tmp_path: Path, notify: NotifySocket
) -> None:
    daemon = DaemonProcess(write_config(tmp_path, [inbox]), env=service_env(notify, 3_000_000))
    try:
        ready = notify.wait_for("READY")
        assert "daemon.ready" in daemon.output()  # recovery done, sources started
        assert ready["STATUS"].startswith("0 queued, 0 in flight (0 batches)")
        (inbox / "a.txt").write_text(TEXT)
        daemon.until(lambda: daemon.states().get("a.txt") == "written")
        status = notify.wait_for("STATUS", alive=lambda: daemon.proc.poll() is None,
                                 after=notify.received("READY")[-1][0])  # fmt: skip
        while "1 written today" not in status["STATUS"]:
            status = notify.wait_for("STATUS", seconds=30, after=notify.received("STATUS")[-1][0])
        assert status["STATUS"].endswith("spend $0.00 today")  # the local provider is free

        pings = wait_for_pings(notify, 6)
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert min(gaps) >= 1.4, gaps  # half of WATCHDOG_USEC (1.5 s), never more often
        assert max(gaps) < 3.0, gaps  # and never late enough for systemd to act

        asked = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        daemon.signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING", seconds=30)
        assert asked <= int(reloading["MONOTONIC_USEC"]) <= asked + 30_000_000
        reloaded_at = notify.received("RELOADING")[-1][0]
        assert notify.wait_for("READY", seconds=30, after=reloaded_at)["READY"] == "1"

        stop_at = time.monotonic()
        assert daemon.stop() == 0
    finally:
        daemon.stop()
    assert notify.wait_for("STOPPING", seconds=10, after=stop_at) == {"STOPPING": "1"}
    assert int(notify.wait_for("EXTEND_TIMEOUT_USEC", seconds=10)["EXTEND_TIMEOUT_USEC"]) > 0


def wait_for_pings(notify: NotifySocket, count: int, seconds: float = 60.0) -> list[float]:
    deadline = time.monotonic() + seconds
    while len(notify.received("WATCHDOG")) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    pings = [at for at, _ in notify.received("WATCHDOG")]
    assert len(pings) >= count, pings
    return pings


def test_a_stalled_loop_stops_the_watchdog_pings(
    inbox: Path, tmp_path: Path, notify: NotifySocket
) -> None:
    """Another process holding the ledger's write lock stalls the main loop for real.

    The daemon's other threads (observer, provider) keep running; only the
    loop is stuck in its next transaction, and the pings stop with it.
    """
    daemon = DaemonProcess(write_config(tmp_path, [inbox]), env=service_env(notify, 2_000_000))
    try:
        notify.wait_for("READY")
        wait_for_pings(notify, 2)
        holder = sqlite3.connect(daemon.state / "ledger.db", isolation_level=None, timeout=30)
        try:
            holder.execute("BEGIN IMMEDIATE")
            held_at = time.monotonic()
            (inbox / "while-locked.txt").write_text(TEXT)  # the loop will want to record it
            time.sleep(6.0)
            released_at = time.monotonic()
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        resumed = notify.wait_for("WATCHDOG", seconds=10, after=released_at)
        assert resumed == {"WATCHDOG": "1"}
        pings = [at for at, _ in notify.received("WATCHDOG")]
        first_after = min(at for at in pings if at > released_at)
        last_before = max(at for at in pings if at < first_after)
        assert last_before < held_at + 2.0  # the pings stopped while the lock was held
        assert first_after - last_before > 3.0  # past WatchdogSec (2 s): systemd would restart
        daemon.until(lambda: daemon.states().get("while-locked.txt") == "written")
    finally:
        assert daemon.stop() == 0


# -- logs, secrets, status, metrics --------------------------------------------

EXPECTED_EVENTS = {
    "source.mode", "metrics.listening", "daemon.ready", "source.rescan", "batch.submitted",
    "batch.applied", "daemon.reloaded", "daemon.stopping", "daemon.stopped",
}  # fmt: skip


def test_json_logs_status_metrics_and_the_api_key_appears_nowhere(
    inbox: Path, tmp_path: Path
) -> None:
    in_env, in_credential = f"sk-ant-env-{uuid.uuid4().hex}", f"sk-ant-cred-{uuid.uuid4().hex}"
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "ANTHROPIC_API_KEY").write_text(in_credential + "\n")
    config = write_config(tmp_path, [inbox], extra='[metrics]\nlisten = "127.0.0.1:0"\n')
    env = service_env(None, ANTHROPIC_API_KEY=in_env, CREDENTIALS_DIRECTORY=str(creds))
    (inbox / "a.txt").write_text(TEXT)
    daemon = DaemonProcess(config, env=env)
    try:
        daemon.until(lambda: daemon.states().get("a.txt") == "written")
        (inbox / "b.md").write_text("# Minutes\n\n" + TEXT.replace("Monday", "Friday"))
        daemon.until(lambda: daemon.states().get("b.md") == "written")
        status = docproc("status", "--json", state=daemon.state)  # another shell, read-only
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["files"] == {"written": 2}
        metrics = scrape_until(daemon, "docproc_written_today 2")
        assert "# TYPE docproc_batches_in_flight gauge" in metrics
        daemon.signal(signal.SIGHUP)
        daemon.until(lambda: "daemon.reloaded" in daemon.output())
    finally:
        assert daemon.stop() == 0
    lines = daemon.output().splitlines()
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    assert all({"event", "level", "timestamp"} <= record.keys() for record in records)
    assert {record["event"] for record in records} >= EXPECTED_EVENTS

    secret_in_file = tmp_path / "secret.toml"
    secret_in_file.write_text(f'[task]\napi_key = "{in_env}"\n[[watch]]\npath = "{inbox}"\n')
    refused = docproc("config", "check", str(secret_in_file), state=daemon.state)
    assert refused.returncode == 2
    assert "secrets are never read from the config file" in refused.stderr
    written = [status.stdout, status.stderr, metrics, refused.stdout, refused.stderr]
    for secret in (in_env, in_credential):
        assert not [p for p in everything_written(tmp_path, skip=(creds, secret_in_file))
                    if secret.encode() in p[1]]  # fmt: skip
        assert not [text for text in written if secret in text]


def scrape_until(daemon: DaemonProcess, wanted: str, seconds: float = 30.0) -> str:
    found = re.search(r'"address": "127\.0\.0\.1:(\d+)"', daemon.output())
    assert found, daemon.tail()
    url = f"http://127.0.0.1:{found.group(1)}/metrics"
    deadline = time.monotonic() + seconds
    while True:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: str = response.read().decode()
        if wanted in body or time.monotonic() > deadline:
            assert wanted in body, body
            return body
        time.sleep(0.5)


def everything_written(root: Path, skip: tuple[Path, ...]) -> Iterator[tuple[Path, bytes]]:
    """Every file under ``root`` with its bytes (decompressed when gzip), ``skip`` aside."""
    for path in root.rglob("*"):
        if path.is_file() and not any(path.is_relative_to(s) for s in skip):
            data = path.read_bytes()
            yield path, gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


# -- what the sandbox forbids, the daemon does not need -------------------------


def test_runs_with_a_read_only_home_and_its_own_temp_dir(inbox: Path, tmp_path: Path) -> None:
    """DynamicUser/ProtectSystem-like: HOME and the working directory are read-only.

    Root is stripped of the capabilities that bypass file modes, so a write to
    HOME fails for real; extraction workers must not need it, nor Tesseract,
    nor LibreOffice (which writes a profile under HOME unless told otherwise).
    """
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    (inbox / "notes.txt").write_text(TEXT)
    (inbox / "table.csv").write_text("name,role\nAda,archivist\nGrace,records officer\n")
    (inbox / "page.html").write_text(f"<html><body><p>{TEXT}</p></body></html>")
    expected = {"table.csv": "native:csv"}
    if tesseract_available():
        docformats.write_scan(inbox / "scan.png")
        expected["scan.png"] = "ocr:tesseract"
    if soffice_available():
        docformats.write_odt(tmp_path / "letter.odt", [TEXT, TEXT, TEXT])
        subprocess.run(
            ["soffice", f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}", "--headless",
             "--convert-to", "doc", "--outdir", str(inbox), str(tmp_path / "letter.odt")],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        expected["letter.doc"] = "soffice:doc"
    home.chmod(0o555)
    env = {key: value for key, value in os.environ.items() if not key.startswith("XDG_")}
    env.update(HOME=str(home), TMPDIR=str(tmp))
    daemon = DaemonProcess(write_config(tmp_path, [inbox]), env=env, prefix=AS_ORDINARY_USER,
                           cwd=home)  # fmt: skip
    try:
        daemon.until(lambda: set(daemon.states().values()) == {"written"} and
                     len(daemon.states()) == 2 + len(expected), seconds=180)  # fmt: skip
        extractors = dict(daemon.query("SELECT path, extractor FROM file_status"))
    finally:
        assert daemon.stop() == 0
        home.chmod(0o755)
    assert {name: extractors[str(inbox / name)] for name in expected} == expected
    assert list(home.iterdir()) == []
    assert all(json.loads(line) for line in daemon.output().splitlines())  # workers' lines too
