"""What the pool and its workers share, kept light so the daemon never imports the readers.

The daemon's process holds the pool (``pool.py``); the readers (lxml,
PDFium, Pillow...) are imported by the forkserver (``child.py`` is preloaded
there) and inherited by every worker it forks. This module is all the pool
needs of the worker side: its configuration, the entry point (a trampoline
into ``child.main``), and the session kill.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from docproc.models import ExtractLimits

if TYPE_CHECKING:
    from docproc.extract.worker import Extractor

READY = "ready"
"""A worker's first message: it has started (imports done) and takes tasks."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, sent to it once when it starts."""

    limits: ExtractLimits
    text_dir: Path
    recycle_after: int
    memory_limit_mb: int | None
    extra: dict[str, Extractor] = field(default_factory=dict)
    # False: texts are not fsynced one by one; the pool's barrier makes them durable.
    sync_texts: bool = True
    # Configures logging in the worker like the daemon's (picklable: a
    # module-level function or a partial of one); None: structlog's defaults.
    log_setup: Callable[[], object] | None = None


def run_worker(conn: Connection, config: WorkerConfig) -> None:
    """A worker process's entry point (``child`` is already imported in the forkserver)."""
    from docproc.extract import child

    child.main(conn, config)


def kill_session(sid: int, signum: int) -> None:
    """Signal every process of session ``sid``: a worker and every helper it started.

    Helpers lead process groups of their own (so a helper's timeout kills
    what it forked), which a signal to the worker's group would miss; the
    session holds them all. Read from /proc (Linux); elsewhere only ``sid``.
    """
    members = [sid]
    try:
        names = os.listdir("/proc")  # noqa: PTH208 - thousands of entries; no Path per pid
    except OSError:
        names = []
    for name in names:
        if name.isdigit() and int(name) != sid and _session_of(int(name)) == sid:
            members.append(int(name))
    for pid in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _session_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[3]) if len(fields) > 3 else None
