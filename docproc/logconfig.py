"""structlog, configured once per process.

JSON lines when the stream is not a terminal or is systemd's journal
(``JOURNAL_STREAM`` names it), readable console output on a terminal; the
``[log] format`` key can force either. Commands log to stderr so that their
output (tables, JSON, CSV) on stdout stays clean for pipes; the daemon, which
prints nothing else, logs to stdout (:func:`for_daemon`), as journald expects.

Event names are stable (``daemon.ready``, ``batch.submitted``...): dashboards
and ``journalctl`` filters match on them. Values given as ``redact`` (the
secrets this process holds) are masked in every line, tracebacks included, and so
are the tokens learnt later (:mod:`docproc.redaction`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import structlog

from docproc import redaction

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
REDACTED = "[redacted]"


class _FromStdlib(logging.Handler):
    """Library messages sent through :mod:`logging` (unstructured, pdfminer...) as
    ``library.log`` lines in our format, instead of bare text on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            fields["exc_info"] = record.exc_info
        structlog.get_logger().log(record.levelno, "library.log", **fields)


def capture_stdlib(level: int = logging.WARNING) -> None:
    """Route the standard library's logging (warnings and up) through structlog."""
    root = logging.getLogger()
    root.handlers = [_FromStdlib()]
    root.setLevel(level)


class _Redacting:
    """Wraps the renderer: masks each secret (and its JSON-escaped form) in the output,
    those given at start and those learnt since (:mod:`docproc.redaction`)."""

    def __init__(self, renderer: structlog.typing.Processor, secrets: Sequence[str]) -> None:
        self._renderer = renderer
        self._given = tuple(secrets)
        self._learnt: tuple[str, ...] = ()
        self._secrets = _forms(self._given)

    def __call__(self, logger: Any, name: str, event_dict: structlog.typing.EventDict) -> Any:
        line = self._renderer(logger, name, event_dict)
        learnt = redaction.learnt()
        if learnt != self._learnt:
            self._learnt, self._secrets = learnt, _forms(self._given + learnt)
        if isinstance(line, str):
            for secret in self._secrets:
                line = line.replace(secret, REDACTED)
        return line


def _forms(secrets: Sequence[str]) -> list[str]:
    """Each secret as written and JSON-escaped, longest first."""
    forms = {form for s in secrets if s for form in (s, json.dumps(s)[1:-1])}
    return sorted(forms, key=len, reverse=True)


def configure(
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    *,
    journal_stream: str = "",
    redact: Sequence[str] = (),
) -> str:
    """Set up structlog for this process; returns the format chosen (json or console).

    Args:
        level: debug, info, warning or error.
        fmt: auto, json or console.
        stream: where lines go (stderr by default).
        journal_stream: ``$JOURNAL_STREAM`` (``device:inode``); when it is
            ``stream``, auto means JSON.
        redact: values that must never appear in a log line.
    """
    out = stream or sys.stderr
    journal = _is_journal(out, journal_stream)
    use_json = fmt == "json" or (fmt == "auto" and (journal or not out.isatty()))
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info
            if use_json
            else structlog.processors.StackInfoRenderer(),
            _Redacting(renderer, redact),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.ERROR)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    return "json" if use_json else "console"


def for_daemon(
    level: str, fmt: str, *, journal_stream: str = "", redact: Sequence[str] = ()
) -> str:
    """The daemon and its worker processes: lines on stdout (journald keeps them),
    libraries' own logging included."""
    chosen = configure(level, fmt, sys.stdout, journal_stream=journal_stream, redact=redact)
    capture_stdlib()
    return chosen


def _is_journal(stream: TextIO, journal_stream: str) -> bool:
    """Whether ``stream`` is the journal systemd connected (``JOURNAL_STREAM`` = dev:inode)."""
    if not journal_stream:
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):  # no real file descriptor (a test's StringIO)
        return False
    return journal_stream == f"{info.st_dev}:{info.st_ino}"
