"""A pool of extraction worker processes with timeouts, a memory ceiling and recycling.

Why processes and not threads: a document can hang a parser, exhaust memory
or crash native code (PDFium, lxml). In a worker process each of those costs
one worker, which the pool kills or replaces, never the daemon.

Mechanics:

* Workers are started by a *forkserver* that has already imported the light
  extractors (:data:`PRELOAD`), so a new worker costs a fork, not a Python
  start-up; unstructured is imported by a worker only when it meets a file
  that needs it.
* The daemon talks to each worker over its own :func:`multiprocessing.Pipe`:
  an :class:`ExtractTask` goes in, an :class:`ExtractOutcome` comes out. Text
  never crosses the pipe; the worker writes it to the text store. Up to
  :data:`DEPTH` tasks are queued in a worker's pipe, so a worker never waits
  for the daemon to read a result before it starts on the next document
  (profiled: with one task at a time, workers idled for a daemon round trip
  per file). A task's timeout starts when the worker starts it, that is when
  the result before it arrived.
* Each worker leads its own session; a timeout or a close kills the whole
  session, so a hung OCR or LibreOffice child dies with its worker.
* :meth:`ExtractorPool.collect` waits on the pipes *and* the process sentinels
  with :func:`multiprocessing.connection.wait`, so a result, a crash and a
  per-task deadline all wake it up. No helper threads run in the daemon.
* A worker exits by itself after ``recycle_after`` tasks (bounding leaks in
  the libraries), ignores SIGINT (the daemon owns shutdown), runs under
  ``RLIMIT_AS`` and exits when the daemon dies.

As with any non-fork start method, a *script* that creates a pool must guard
its entry point with ``if __name__ == "__main__":``: multiprocessing re-runs
the main script in the forkserver and in each worker. (The ``docproc``
console script and ``python -m docproc`` are guarded.) Without the guard,
every worker dies at start and each task fails with "extractor process died".
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext, ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from docproc.errors import FailureKind, PermanentExtractionError
from docproc.extract import process, route
from docproc.models import (
    ExtractFailure,
    Extraction,
    ExtractLimits,
    ExtractOutcome,
    ExtractTask,
)
from docproc.textstore import TextStore, batched_sync_available

if TYPE_CHECKING:
    from docproc.extract.worker import Extractor

PRELOAD = ["docproc.extract.child"]
"""Modules the forkserver imports once; every worker forked from it inherits them."""

DEPTH = 8
"""Tasks queued in one worker's pipe at once (the first runs, the others wait)."""

LINGER = 0.1
"""Once an outcome is ready, collect() gathers more for this long (seconds) while
work is in flight, so the caller records a batch in one transaction, behind one
durability barrier, instead of one per document."""

STARTUP_SECONDS = 60.0
"""A worker that has not said it is ready after this long is killed; its first task fails."""

BATCH = 256
"""collect() returns as soon as this many outcomes are ready."""

_JOIN_SECONDS = 2.0


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    sent: int = 0  # tasks sent over its life; it exits after ``recycle_after``
    tasks: deque[ExtractTask] = field(default_factory=deque)  # sent, not answered
    started: float = field(default_factory=time.monotonic)  # spawned, or its first task began
    ready: bool = False  # it has said READY: until then no task has started

    @property
    def task(self) -> ExtractTask | None:
        """The task it is working on, if any."""
        return self.tasks[0] if self.tasks else None


class ExtractorPool:
    """Runs :func:`~docproc.extract.worker.run_task` in worker processes.

    Args:
        workers: the most worker processes alive at once (at least 1).
        limits: per-document limits; ``timeout_seconds`` is enforced here.
        text_dir: the :class:`~docproc.textstore.TextStore` root workers write to.
        recycle_after: tasks a worker runs before it is replaced.
        memory_limit_mb: address-space ceiling of each worker, or None for none.
        extra_extractors: suffix -> extractor tried before the normal routes,
            for tests that need a document that hangs or crashes; the daemon
            never passes it. Must be picklable (module-level functions).
        log_setup: called first in each worker to configure logging (picklable).
        start_method: ``"forkserver"`` (the default, and the only safe one in a
            process with threads, like the daemon), or ``"fork"`` for a
            single-threaded caller (``docproc scan``): the caller imports the
            readers and forks its workers at once, with no forkserver to start
            first (profiled: the forkserver's start-up was 0.8 s of a
            2,000-file scan's wall time on a loaded machine). With threads
            running, ``"fork"`` falls back to ``"forkserver"``.
        batch_sync: make texts durable with one ``syncfs`` per batch instead of
            an ``fsync`` per document (profiled: the fsync was most of a
            worker's time on a 2,000-file scan). For ``docproc scan``; the
            daemon keeps per-document fsyncs, because ``syncfs`` also waits for
            everyone else's writes on that filesystem (a 10 GB copy into a
            watched folder would stall the daemon's loop).

    Not thread-safe: one thread (the daemon's main loop) owns the pool.
    """

    def __init__(
        self,
        *,
        workers: int,
        limits: ExtractLimits,
        text_dir: Path,
        recycle_after: int = 200,
        memory_limit_mb: int | None = 2048,
        extra_extractors: Mapping[str, Extractor] | None = None,
        log_setup: Callable[[], object] | None = None,
        start_method: str = "forkserver",
        batch_sync: bool = False,
    ) -> None:
        self._ctx: ForkContext | ForkServerContext
        if start_method == "fork" and threading.active_count() == 1:
            self._ctx = multiprocessing.get_context("fork")
            # Import the readers once, here: every worker forked later (recycled
            # ones included) inherits them instead of importing them again.
            for module in PRELOAD:
                importlib.import_module(module)
        else:
            server = multiprocessing.get_context("forkserver")
            server.set_forkserver_preload(PRELOAD)
            self._ctx = server
            # Start the forkserver now: it imports the readers (about 0.5 s)
            # while the caller opens the ledger and walks its folders, instead
            # of making the first submit() wait for it.
            multiprocessing.forkserver.ensure_running()
        self._size = max(1, workers)
        # batch_sync: texts are made durable in batches, one syncfs per collect()
        # instead of an fsync per document in the workers (see textstore.py).
        batched = batch_sync and batched_sync_available()
        self._barrier = TextStore(text_dir) if batched else None
        self._config = process.WorkerConfig(
            limits=limits,
            text_dir=text_dir,
            recycle_after=max(1, recycle_after),
            memory_limit_mb=memory_limit_mb,
            extra=dict(extra_extractors or {}),
            log_setup=log_setup,
            sync_texts=self._barrier is None,
        )
        self._limits = limits
        self._queue: deque[ExtractTask] = deque()
        self._workers: list[_Worker] = []
        self._ready: list[ExtractOutcome] = []
        self._closed = False
        if isinstance(self._ctx, ForkContext):
            # Forking costs nothing to wait for: start the workers now, so they
            # import the readers while the caller opens its ledger and walks.
            while self._spawn() is not None:
                pass

    @property
    def in_flight(self) -> int:
        """Tasks queued or running."""
        return len(self._queue) + sum(len(w.tasks) for w in self._workers)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for status displays and tests)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def submit(self, task: ExtractTask) -> None:
        """Queue ``task``; it starts at once when a worker is free. Never blocks.

        Raises:
            RuntimeError: the pool is closed.
        """
        if self._closed:
            raise RuntimeError("ExtractorPool is closed")
        self._queue.append(task)
        self._dispatch()

    def collect(self, timeout: float) -> list[ExtractOutcome]:
        """Return the outcomes that are ready, waiting up to ``timeout`` seconds for one.

        While waiting, tasks over ``limits.timeout_seconds`` are killed and
        dead workers are replaced; each such task yields a permanent failure.
        With nothing in flight it simply waits ``timeout``, so a caller's
        loop can use it as its tick. The text of every returned
        :class:`Extraction` is on disk (the batch's durability barrier).
        """
        end = time.monotonic() + max(0.0, timeout)
        outcomes, self._ready = self._ready, []
        lingering = False
        while True:
            self._expire(outcomes)
            self._dispatch()
            now = time.monotonic()
            if outcomes and not lingering:
                lingering, end = True, min(end, now + LINGER) if timeout > 0 else now
            if (
                now >= end
                or self._closed
                or len(outcomes) >= BATCH
                or (outcomes and not self.in_flight)
            ):
                return self._durable(outcomes)
            self._wait(min(end, self._next_deadline()) - now, outcomes)

    def close(self) -> None:
        """Stop every worker promptly; queued and running tasks are dropped. Idempotent.

        Dropped tasks are not lost: the ledger still lists them as unextracted,
        and the daemon dispatches them again on its next start.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        for worker in self._workers:
            _signal_group(worker, signal.SIGTERM)
        for worker in self._workers:
            _stop(worker)
        self._workers.clear()

    def __enter__(self) -> ExtractorPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _durable(self, outcomes: list[ExtractOutcome]) -> list[ExtractOutcome]:
        """Sync the texts of this batch; if that fails, they are retried, not recorded."""
        if self._barrier is None or not any(isinstance(o, Extraction) for o in outcomes):
            return outcomes
        try:
            self._barrier.barrier()
        except OSError as exc:
            reason = f"text store could not be synced to disk ({exc.strerror or exc})"
            return [
                ExtractFailure(o.sha256, FailureKind.TRANSIENT, reason, o.extractor, o.seconds)
                if isinstance(o, Extraction)
                else o
                for o in outcomes
            ]
        return outcomes

    def _dispatch(self) -> None:
        """Hand queued tasks to workers, starting workers up to the pool size."""
        while self._queue and not self._closed:
            worker = self._idle() or self._spawn() or self._least_loaded()
            if worker is None:
                return
            task = self._queue.popleft()
            try:
                worker.conn.send(task)
            except OSError:  # it died; put the task back, report its running one lost
                self._queue.appendleft(task)
                self._lose(worker, self._ready, _died(worker))
                continue
            if not worker.tasks and worker.ready:
                worker.started = time.monotonic()
            worker.tasks.append(task)
            worker.sent += 1

    def _idle(self) -> _Worker | None:
        return next((w for w in self._workers if not w.tasks and self._accepts(w)), None)

    def _least_loaded(self) -> _Worker | None:
        open_ = [w for w in self._workers if len(w.tasks) < DEPTH and self._accepts(w)]
        return min(open_, key=lambda w: len(w.tasks), default=None)

    def _accepts(self, worker: _Worker) -> bool:
        """A worker exits after ``recycle_after`` tasks: never send it more."""
        return worker.sent < self._config.recycle_after

    def _spawn(self) -> _Worker | None:
        # A worker that has been sent its last task (it exits after it) does not
        # count: its successor starts now, not after a gap (profiled: recycling
        # every 200 documents idled a core for each worker's start-up).
        if sum(1 for w in self._workers if self._accepts(w)) >= self._size:
            return None
        ours, theirs = self._ctx.Pipe(duplex=True)
        started = self._ctx.Process(
            target=process.run_worker,
            args=(theirs, self._config),
            name="docproc-extract",
            daemon=True,
        )
        started.start()
        theirs.close()  # the child holds its own copy; ours must not keep the pipe open
        worker = _Worker(started, ours)
        self._workers.append(worker)
        return worker

    def _wait(self, seconds: float, outcomes: list[ExtractOutcome]) -> None:
        """Sleep until a pipe or sentinel is ready, or ``seconds`` pass."""
        waitables: list[Connection | int] = []
        for worker in self._workers:
            waitables += [worker.conn, worker.process.sentinel]
        if not waitables:
            time.sleep(max(0.0, seconds))
            return
        ready = set(multiprocessing.connection.wait(waitables, timeout=max(0.0, seconds)))
        for worker in list(self._workers):
            if worker.conn in ready or worker.process.sentinel in ready:
                self._service(worker, outcomes)

    def _service(self, worker: _Worker, outcomes: list[ExtractOutcome]) -> None:
        """Take a worker's results, or report its task lost if the process died."""
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                worker.started = time.monotonic()  # the next task starts now
                if message == process.READY:
                    worker.ready = True
                    continue
                outcomes.append(message)
                worker.tasks.popleft()
        except (EOFError, OSError):
            pass  # it died mid-message; the liveness check below reports it
        if not worker.tasks and not self._accepts(worker):
            self._remove(worker)  # it exits by itself after its last task
        elif not worker.process.is_alive():
            self._lose(worker, outcomes, _died(worker))

    def _expire(self, outcomes: list[ExtractOutcome]) -> None:
        """Kill workers (and their children) whose task has run past the timeout."""
        now = time.monotonic()
        limit = self._limits.timeout_seconds
        for worker in list(self._workers):
            if not worker.ready and now - worker.started >= STARTUP_SECONDS:
                _signal_group(worker, signal.SIGKILL)
                reason = f"extraction worker did not start within {STARTUP_SECONDS:g} s"
                self._lose(worker, outcomes, reason)
            elif worker.ready and worker.tasks and now - worker.started >= limit:
                _signal_group(worker, signal.SIGKILL)
                self._lose(worker, outcomes, f"extraction timed out after {limit:g} s")

    def _lose(self, worker: _Worker, outcomes: list[ExtractOutcome], reason: str) -> None:
        """The worker is gone: its running task failed, the ones behind it go back first."""
        self._remove(worker)
        if not worker.tasks:
            return
        task = worker.tasks.popleft()
        self._queue.extendleft(reversed(worker.tasks))
        worker.tasks.clear()
        elapsed = time.monotonic() - worker.started
        failure = ExtractFailure(
            task.sha256, FailureKind.PERMANENT, reason, _extractor_name(task), elapsed
        )
        outcomes.append(failure)

    def _remove(self, worker: _Worker) -> None:
        self._workers.remove(worker)
        _stop(worker)

    def _next_deadline(self) -> float:
        limit = self._limits.timeout_seconds
        deadlines = [
            w.started + (limit if w.ready else STARTUP_SECONDS)
            for w in self._workers
            if w.tasks or not w.ready
        ]
        return min(deadlines, default=float("inf"))


def _signal_group(worker: _Worker, signum: int) -> None:
    """Signal the worker's session: the worker and any OCR or soffice child."""
    pid = worker.process.pid
    if pid is not None and worker.process.exitcode is None:
        process.kill_session(pid, signum)


def _stop(worker: _Worker) -> None:
    """Join a worker that is exiting or was signalled; kill its group if it lingers."""
    worker.process.join(_JOIN_SECONDS)
    if worker.process.is_alive():
        _signal_group(worker, signal.SIGKILL)
        worker.process.join(_JOIN_SECONDS)
    worker.conn.close()
    if worker.process.exitcode is not None:  # close() refuses a process stuck in the kernel
        worker.process.close()


def _extractor_name(task: ExtractTask) -> str | None:
    """The extractor the lost task was routed to, for the ledger (None if unknown)."""
    try:
        name = route.route(task.path)
    except PermanentExtractionError:
        return None
    return None if name == route.SNIFF else name  # only the bytes would have told


def _died(worker: _Worker) -> str:
    worker.process.join(_JOIN_SECONDS)
    return f"extractor process died (exit code {worker.process.exitcode})"
