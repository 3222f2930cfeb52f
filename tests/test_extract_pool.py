"""ExtractorPool with real worker processes: batches, timeouts, crashes, recycling, shutdown.

Misbehaving documents are planted through ``extra_extractors``: module-level
functions below, mapped to made-up suffixes. The worker processes import this
module to unpickle them; the daemon never passes extra extractors, so no file
name can reach this code in production.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pytest_socket

from docproc.errors import FailureKind
from docproc.extract import ExtractorPool
from docproc.models import ExtractFailure, Extraction, ExtractLimits, ExtractOutcome, ExtractTask
from docproc.textstore import TextStore
from tests.docgen import make_mixed_corpus

pytestmark = pytest.mark.slow
MakePool = Callable[..., ExtractorPool]


def hang(_data: bytes) -> str:
    time.sleep(3600)
    return ""


def exit_abruptly(_data: bytes) -> str:
    os._exit(3)


def sigkill_self(_data: bytes) -> str:
    os.kill(os.getpid(), signal.SIGKILL)
    return ""


def hog_memory(_data: bytes) -> str:
    return str(len(bytearray(4 * 1024**3)))  # far over the test's 512 MB ceiling


def report_pid(_data: bytes) -> str:
    return f"pid {os.getpid()}"


def hang_in_helper(data: bytes) -> str:
    """Like a hung tesseract or soffice: a helper in its own process group that never ends."""
    helper = subprocess.Popen(["sleep", "300"], process_group=0)
    Path(data.decode().split()[-1]).write_text(str(helper.pid))
    helper.wait()
    return ""


HOOKS = {
    ".hang": hang,
    ".exit": exit_abruptly,
    ".sigkill": sigkill_self,
    ".hog": hog_memory,
    ".pid": report_pid,
    ".helper": hang_in_helper,
}


def task_for(path: Path) -> ExtractTask:
    return ExtractTask(hashlib.sha256(path.read_bytes()).hexdigest(), path)


def planted(folder: Path, suffix: str, tag: str = "") -> ExtractTask:
    path = folder / f"planted{tag}{suffix}"
    path.write_text(f"content {suffix} {tag}")
    return task_for(path)


def collect_all(pool: ExtractorPool, count: int, within: float) -> dict[str, ExtractOutcome]:
    """Collect ``count`` outcomes, failing the test after ``within`` seconds."""
    outcomes: dict[str, ExtractOutcome] = {}
    deadline = time.monotonic() + within
    while len(outcomes) < count:
        assert time.monotonic() < deadline, f"only {len(outcomes)} of {count} outcomes arrived"
        for outcome in pool.collect(0.5):
            outcomes[outcome.sha256] = outcome
    return outcomes


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], within: float) -> list[int]:
    deadline = time.monotonic() + within
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture(autouse=True)
def _allow_unix_sockets() -> None:
    """The forkserver hands each new worker over an AF_UNIX socket; pytest-socket
    (configured for loopback hosts only) would block that connect. Unix sockets
    cannot reach the network, so allowing them keeps the offline guarantee."""
    pytest_socket.socket_allow_hosts(["127.0.0.1", "::1", "localhost"], allow_unix_socket=True)


@pytest.fixture
def make_pool(tmp_path: Path) -> Iterator[MakePool]:
    """Pools with the test hooks and a text dir under tmp_path; all closed afterwards."""
    pools: list[ExtractorPool] = []

    def factory(**kwargs: object) -> ExtractorPool:
        options: dict[str, object] = {
            "workers": 2,
            "limits": ExtractLimits(),
            "text_dir": tmp_path / "text",
            "extra_extractors": HOOKS,
        }
        options.update(kwargs)
        pool = ExtractorPool(**options)  # type: ignore[arg-type]  # keyword bag
        pools.append(pool)
        return pool

    yield factory
    for pool in pools:
        pool.close()


def test_mixed_batch_all_succeed(make_pool: MakePool, tmp_path: Path) -> None:
    corpus = make_mixed_corpus(tmp_path, 27)
    pool = make_pool()
    tasks = [task_for(p) for p in corpus]
    for task in tasks:
        pool.submit(task)
    assert pool.in_flight == len(tasks)
    outcomes = collect_all(pool, len(tasks), within=60)
    assert pool.in_flight == 0
    store = TextStore(tmp_path / "text")
    for path, said in corpus.items():
        outcome = outcomes[task_for(path).sha256]
        assert isinstance(outcome, Extraction), outcome
        text = store.get(outcome.text_sha256)
        assert [s for s in said if s not in text] == [], path.name


def test_hung_task_times_out_and_the_others_finish(make_pool: MakePool, tmp_path: Path) -> None:
    pool = make_pool(limits=ExtractLimits(timeout_seconds=1.5))
    stuck = planted(tmp_path, ".hang")
    pool.submit(stuck)
    fine = [planted(tmp_path, ".pid", str(i)) for i in range(5)]
    for task in fine:
        pool.submit(task)
    started = time.monotonic()
    outcomes = collect_all(pool, 6, within=30)
    failure = outcomes[stuck.sha256]
    assert isinstance(failure, ExtractFailure)
    assert (failure.kind, failure.reason) == (
        FailureKind.PERMANENT,
        "extraction timed out after 1.5 s",
    )
    assert 1.4 < time.monotonic() - started < 10
    assert all(isinstance(outcomes[t.sha256], Extraction) for t in fine), outcomes


@pytest.mark.parametrize(("suffix", "code"), [(".exit", 3), (".sigkill", -9)])
def test_worker_death_fails_the_task_and_the_pool_keeps_working(
    make_pool: MakePool, tmp_path: Path, suffix: str, code: int
) -> None:
    pool = make_pool(workers=1)
    doomed = planted(tmp_path, suffix)
    after = planted(tmp_path, ".pid", "after")
    pool.submit(doomed)
    pool.submit(after)
    outcomes = collect_all(pool, 2, within=30)
    failure = outcomes[doomed.sha256]
    assert isinstance(failure, ExtractFailure)
    assert (failure.kind, failure.reason) == (
        FailureKind.PERMANENT,
        f"extractor process died (exit code {code})",
    )
    assert isinstance(outcomes[after.sha256], Extraction)


def test_worker_killed_from_outside_is_reported(make_pool: MakePool, tmp_path: Path) -> None:
    pool = make_pool(workers=1)
    stuck = planted(tmp_path, ".hang")
    pool.submit(stuck)
    [pid] = pool.pids
    os.kill(pid, signal.SIGKILL)
    [failure] = collect_all(pool, 1, within=10).values()
    assert isinstance(failure, ExtractFailure)
    assert failure.reason == "extractor process died (exit code -9)"


def test_memory_ceiling_fails_one_document(make_pool: MakePool, tmp_path: Path) -> None:
    pool = make_pool(workers=1, memory_limit_mb=512)
    greedy = planted(tmp_path, ".hog")
    pool.submit(greedy)
    [failure] = collect_all(pool, 1, within=30).values()
    assert isinstance(failure, ExtractFailure)
    assert failure.reason == "document needs more memory than the worker's ceiling"


def test_workers_are_recycled_after_n_tasks(make_pool: MakePool, tmp_path: Path) -> None:
    pool = make_pool(workers=1, recycle_after=2)
    tasks = [planted(tmp_path, ".pid", str(i)) for i in range(5)]
    for task in tasks:
        pool.submit(task)
    outcomes = collect_all(pool, 5, within=30)
    store = TextStore(tmp_path / "text")
    pids = set()
    for task in tasks:
        outcome = outcomes[task.sha256]
        assert isinstance(outcome, Extraction), outcome
        pids.add(store.get(outcome.text_sha256))
    assert len(pids) == 3  # 2 + 2 + 1 tasks


def test_close_leaves_no_worker_processes(make_pool: MakePool, tmp_path: Path) -> None:
    pool = make_pool(workers=2)
    pool.submit(planted(tmp_path, ".hang", "a"))
    pool.submit(planted(tmp_path, ".hang", "b"))
    pids = pool.pids
    assert len(pids) == 2
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 5
    assert wait_gone(pids, within=5) == []
    pool.close()  # idempotent
    with pytest.raises(RuntimeError):
        pool.submit(planted(tmp_path, ".pid"))


def test_collect_with_nothing_in_flight_waits_its_timeout(make_pool: MakePool) -> None:
    pool = make_pool()
    started = time.monotonic()
    assert pool.collect(0.2) == []
    assert 0.15 < time.monotonic() - started < 2


def test_workers_exit_when_the_daemon_dies(tmp_path: Path) -> None:
    """A worker stuck in a document must not outlive a daemon killed with SIGKILL."""
    script = textwrap.dedent(
        f"""
        import hashlib, sys, time
        from pathlib import Path
        sys.path[:0] = {sys.path!r}
        from docproc.extract import ExtractorPool
        from docproc.models import ExtractLimits, ExtractTask
        from test_extract_pool import HOOKS
        path = Path({str(tmp_path / "stuck.hang")!r})
        path.write_text("x")
        pool = ExtractorPool(workers=1, limits=ExtractLimits(), text_dir=Path({str(tmp_path)!r}),
                             extra_extractors=HOOKS)
        pool.submit(ExtractTask(hashlib.sha256(b"x").hexdigest(), path))
        print(pool.pids[0], flush=True)
        time.sleep(60)
        """
    )
    daemon = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout is not None
        worker_pid = int(daemon.stdout.readline())
        assert alive(worker_pid)
    finally:
        daemon.kill()
        daemon.wait(timeout=10)
        if daemon.stdout is not None:
            daemon.stdout.close()
    assert wait_gone([worker_pid], within=10) == []


def test_a_hung_helper_dies_with_its_timed_out_worker(make_pool: MakePool, tmp_path: Path) -> None:
    """A hanging OCR or LibreOffice child costs its worker and itself, nothing else."""
    pool = make_pool(limits=ExtractLimits(timeout_seconds=2))
    marker = tmp_path / "helper.pid"
    path = tmp_path / "stuck.helper"
    path.write_text(f"content {marker}")
    stuck = task_for(path)
    pool.submit(stuck)
    fine = planted(tmp_path, ".pid", "after")
    pool.submit(fine)
    outcomes = collect_all(pool, 2, within=30)
    failure = outcomes[stuck.sha256]
    assert isinstance(failure, ExtractFailure)
    assert failure.reason == "extraction timed out after 2 s"
    assert isinstance(outcomes[fine.sha256], Extraction)
    helper = int(marker.read_text())
    assert wait_gone([helper], within=10) == [], "the helper outlived its worker"


def test_batch_sync_turns_a_failed_sync_into_retries(
    make_pool: MakePool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With batch_sync, texts are synced per batch; an I/O error there records nothing as done."""
    from docproc.textstore import TextStore, batched_sync_available

    if not batched_sync_available():
        pytest.skip("no syncfs here: workers fsync each text instead")
    pool = make_pool(batch_sync=True)
    ok = planted(tmp_path, ".pid", "synced")
    pool.submit(ok)
    assert isinstance(collect_all(pool, 1, within=30)[ok.sha256], Extraction)

    def broken(_self: TextStore) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(TextStore, "barrier", broken)
    failing = planted(tmp_path, ".pid", "unsynced")
    pool.submit(failing)
    outcome = collect_all(pool, 1, within=30)[failing.sha256]
    assert isinstance(outcome, ExtractFailure)
    assert outcome.kind is FailureKind.TRANSIENT
    assert outcome.reason == "text store could not be synced to disk (Input/output error)"
