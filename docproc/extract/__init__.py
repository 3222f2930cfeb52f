"""Extraction: documents to text, in worker processes with limits.

Use :class:`ExtractorPool` from the daemon; :func:`run_task` is the same work
in the calling process (tests, one-off tools). Which extractor reads which
file is decided in :mod:`docproc.extract.route`. ``run_task`` is imported on
first use: the daemon's process needs only the pool, never the readers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docproc.extract.pool import ExtractorPool

if TYPE_CHECKING:
    from docproc.extract.worker import run_task

__all__ = ["ExtractorPool", "run_task"]


def __getattr__(name: str) -> Any:
    if name == "run_task":
        from docproc.extract.worker import run_task

        return run_task
    raise AttributeError(name)
