"""Extraction: documents to text, in worker processes with limits.

Use :class:`ExtractorPool` from the daemon; :func:`run_task` is the same work
in the calling process (tests, one-off tools). Which extractor reads which
file is decided in :mod:`docproc.extract.route`.
"""

from __future__ import annotations

from docproc.extract.pool import ExtractorPool
from docproc.extract.worker import run_task

__all__ = ["ExtractorPool", "run_task"]
