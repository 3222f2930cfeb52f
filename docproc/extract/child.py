"""The body of an extraction worker process (the pool's side is in ``pool.py``).

This module is preloaded by the pool's forkserver, so everything it imports
(the native extractors, lxml, pypdfium2) is already in memory when a worker
is forked; a worker forked straight from ``docproc scan`` imports it at its
start, before it says READY. It must stay free of unstructured, which is
imported lazily.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import threading
from multiprocessing.connection import Connection

import structlog

from docproc.extract.process import READY, WorkerConfig, kill_session
from docproc.extract.worker import run_task
from docproc.textstore import TextStore


def main(conn: Connection, config: WorkerConfig) -> None:
    """Serve tasks from ``conn`` until told to stop, the pipe closes, or recycling.

    Protocol: send :data:`~docproc.extract.process.READY` once started, then
    receive an :class:`~docproc.models.ExtractTask` (or None to stop) and send
    back its :class:`~docproc.models.ExtractOutcome`. After
    ``recycle_after`` tasks the worker exits with status 0 and the pool starts
    a fresh one, which bounds whatever memory the libraries leak or cache.
    """
    # The daemon owns shutdown: a Ctrl-C in its terminal reaches the whole
    # process group, and must not kill documents half-way; the pool stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Lead a session of our own: helpers (tesseract, soffice) start in their
    # own process groups inside it, and the pool kills the whole session, so
    # a hung OCR or LibreOffice child dies with us.
    os.setsid()
    if config.log_setup is not None:
        config.log_setup()
    structlog.contextvars.bind_contextvars(worker_pid=os.getpid())
    _exit_with_parent()
    limit_memory(config.memory_limit_mb)
    conn.send(READY)  # a task's timeout starts now, not while this process was starting
    store = TextStore(config.text_dir, sync=config.sync_texts)
    for _ in range(config.recycle_after):
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the daemon closed the pipe or died
        if task is None:
            return
        with structlog.contextvars.bound_contextvars(sha256=task.sha256, path=str(task.path)):
            conn.send(run_task(task, config.limits, store, config.extra))


def limit_memory(megabytes: int | None) -> None:
    """Cap this process's address space (``RLIMIT_AS``) at ``megabytes``.

    RLIMIT_AS counts virtual reservations, not resident memory. Measured with
    unstructured 0.27.35 + spaCy + pandas imported and a partition done, a
    worker's peak virtual size is about 400 MB (numba/llvmlite are not imported
    on our paths), so the 2048 MB default leaves room for large documents
    while stopping a runaway parser long before the machine swaps. Exceeding
    it surfaces as ``MemoryError``, which ``run_task`` reports as a permanent
    failure of that one document.
    """
    if not megabytes:
        return
    wanted = megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))


def _exit_with_parent() -> None:
    """Exit at once when the daemon dies, even in the middle of a hung document.

    The idle case needs nothing (``recv`` raises EOFError), but a worker stuck
    in a parser never calls ``recv``. multiprocessing hands every child a
    sentinel that becomes readable when the parent goes away; a daemon thread
    waits on it.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        # Orphaned: nothing to flush, the pipe is gone. Take any OCR or soffice
        # child with us (the kill reaches this process too).
        kill_session(os.getpid(), signal.SIGKILL)
        os._exit(70)  # EX_SOFTWARE

    threading.Thread(target=watch, name="docproc-parent-watch", daemon=True).start()
