"""What the running daemon reports about itself: one snapshot, two renderings.

The main loop computes a :class:`Snapshot` now and then (``Pipeline.snapshot``)
and hands the same value to systemd (:func:`status_line`, the ``STATUS=``
line) and to the optional Prometheus endpoint (:func:`prometheus_text`).
Both are pure functions of the snapshot, so they always agree.

:class:`TickFailures` tells a passing hiccup from a stuck daemon: a tick that
fails again for a cause that failed a tick minutes before makes the daemon *stuck*, which the
snapshot carries (``STATUS=``, ``/metrics``), the ledger records (``docproc
status``) and the loop answers by no longer feeding systemd's watchdog.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path

import structlog

from docproc.errors import brief
from docproc.storage import KINDS

log = structlog.get_logger()

_PACKAGE = Path(__file__).resolve().parent
STUCK_WINDOW_S = 300.0  # a cause failing again within this is a stuck loop
OUTAGE_FIRST_S, OUTAGE_CAP_S = 1.0, 10.0  # waits while the ledger refuses writes


@dataclass(slots=True)
class StageCounters:
    """Work done per stage since the process started (Prometheus counters)."""

    taken: int = 0  # intake: file versions recorded in the ledger
    extracted: int = 0  # extraction: text stored
    extract_failed: int = 0  # extraction: failed (retried or quarantined)
    answered: int = 0  # dispatch: jobs answered by the provider
    published: int = 0  # publish: files whose sidecars were handled


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The daemon's state at one moment, as operators see it."""

    settling: int = 0  # files waiting to stand still
    extracting: int = 0  # documents queued for or in extraction workers
    queued: int = 0  # jobs waiting for a batch (including backoff)
    in_flight: int = 0  # jobs in batches at the provider
    failed: int = 0  # jobs quarantined
    batches_in_flight: int = 0
    oldest_batch_age: float | None = None  # seconds since the oldest open batch was planned
    written_today: int = 0  # files whose sidecars were written since 00:00 UTC
    spend_today: float | None = None  # USD since 00:00 UTC; None: the provider has no costs
    paused: str | None = None  # why submission is paused; None: it is not
    counters: StageCounters = field(default_factory=StageCounters)
    stuck: str | None = None  # why the loop is stuck (the same failure, tick after tick)
    # sidecars waiting for another try: (fault kind, reason, files), most files first
    sidecars_waiting: tuple[tuple[str, str, int], ...] = ()
    intake_paused: str | None = None  # why no new work is taken (low space); None: it is
    ledger_unwritable: str | None = None  # "ledger not writable: ..." while backing off
    state_free_bytes: int | None = None  # free space on the state directory's filesystem


@dataclass
class TickFailures:
    """Failed ticks of the main loop, and whether they mean the daemon is stuck.

    Stuck: a tick fails for a cause (exception type and the docproc line it
    came from; the message may differ, e.g. an id) that already failed a tick
    within ``window`` seconds. Not merely "two in a row": a stage that only
    looks every few seconds (planning, a publishing pass) fails on every look
    with idle ticks between, and that loop is just as stuck. It stays stuck
    until ``window`` seconds pass without a failure.
    """

    window: float = STUCK_WINDOW_S
    consecutive: int = 0  # failed ticks since the last good one
    stuck: str | None = None  # why the daemon is stuck; None: it is not
    _last: dict[str, float] = field(default_factory=dict)  # cause -> when it last failed

    def failed(self, exc: BaseException, now: float) -> bool:
        """Count a failed tick at ``now`` (monotonic); True when it makes the daemon stuck."""
        site = failure_site(exc)
        cause = f"{type(exc).__module__}.{type(exc).__qualname__}@{site}"
        self._last = {c: at for c, at in self._last.items() if now - at <= self.window}
        again = cause in self._last
        self._last[cause] = now
        self.consecutive += 1
        if not again:
            return False
        became = self.stuck is None
        self.stuck = f"ticks keep failing with {brief(exc, 300)} (at {site})"
        return became

    def succeeded(self, now: float) -> bool:
        """Count a good tick; True when it ends a stuck spell (``window`` without failures)."""
        self.consecutive = 0
        if self.stuck is None or any(now - at <= self.window for at in self._last.values()):
            return False
        self.stuck = None
        return True


@dataclass
class LedgerOutage:
    """The ledger refusing writes (a full or read-only disk): a known state, not a failure.

    The loop waits :data:`OUTAGE_FIRST_S` after the first refusal, doubling to
    :data:`OUTAGE_CAP_S`, and says why (``reason``) until a tick goes through.
    """

    reason: str | None = None  # "ledger not writable: ..." while it lasts
    _next: float = OUTAGE_FIRST_S

    def refused(self, reason: str) -> float:
        """Count a refused tick (logged when the reason is new); how long to wait."""
        new = reason != self.reason
        delay = OUTAGE_FIRST_S if new else self._next
        if new:
            log.error("ledger.unwritable", reason=reason, retry_in_s=delay)
        self.reason, self._next = reason, min(OUTAGE_CAP_S, delay * 2)
        return delay

    def over(self) -> bool:
        """A tick went through: True when that ends an outage (logged)."""
        if self.reason is None:
            return False
        log.info("ledger.writable_again", was=self.reason)
        self.reason, self._next = None, OUTAGE_FIRST_S
        return True


def failure_site(exc: BaseException) -> str:
    """Where an exception came from: ``file.py:line`` of the innermost docproc frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(_PACKAGE)]
    where = (ours or frames)[-1:]
    return f"{Path(where[0].filename).name}:{where[0].lineno}" if where else "?"


def status_line(s: Snapshot) -> str:
    """One line for ``systemctl status``: queue, in flight, written, spend, pause."""
    batches = f"{s.batches_in_flight} batch" + ("" if s.batches_in_flight == 1 else "es")
    if s.oldest_batch_age is not None:
        batches += f", oldest {_age(s.oldest_batch_age)}"
    parts = [
        f"{s.queued:,} queued",
        f"{s.in_flight:,} in flight ({batches})",
        f"{s.extracting:,} extracting",
        f"{s.written_today:,} written today",
        "spend n/a" if s.spend_today is None else f"spend ${s.spend_today:,.2f} today",
    ]
    if s.failed:
        parts.append(f"{s.failed:,} failed")
    if s.sidecars_waiting:
        waiting = sum(files for _, _, files in s.sidecars_waiting)
        parts.append(f"{waiting:,} sidecars retrying ({s.sidecars_waiting[0][1]})")
    line = ", ".join(parts)
    if s.paused:
        line = f"{line}; submission paused: {s.paused}"
    if s.intake_paused:
        line = f"new work paused: {s.intake_paused}; {line}"
    if s.ledger_unwritable:
        line = f"{s.ledger_unwritable}; {line}"
    return f"STUCK: {s.stuck}; {line}" if s.stuck else line


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


_GAUGES = (
    ("settling", "docproc_intake_settling", "Files waiting to stand still."),
    ("extracting", "docproc_extract_in_flight", "Documents queued for or in extraction workers."),
    ("queued", "docproc_jobs_queued", "Jobs waiting for a batch (including backoff)."),
    ("in_flight", "docproc_jobs_in_flight", "Jobs in batches at the provider."),
    ("failed", "docproc_jobs_failed", "Jobs quarantined after their last attempt."),
    ("batches_in_flight", "docproc_batches_in_flight", "Batches submitted and not yet applied."),
    ("written_today", "docproc_written_today", "Files given sidecars since 00:00 UTC."),
)
_COUNTERS = {
    "taken": ("docproc_intake_versions_total", "File versions recorded by intake."),
    "extracted": ("docproc_extract_done_total", "Documents whose text was extracted."),
    "extract_failed": ("docproc_extract_failed_total", "Extractions that failed."),
    "answered": ("docproc_dispatch_answered_total", "Jobs answered by the provider."),
    "published": ("docproc_publish_files_total", "Files whose sidecars were handled."),
}


def prometheus_text(s: Snapshot) -> str:
    """The snapshot in the Prometheus text exposition format (version 0.0.4)."""
    out: list[str] = []
    for attr, name, text in _GAUGES:
        out += _metric(name, "gauge", text, getattr(s, attr))
    age = s.oldest_batch_age or 0.0
    out += _metric("docproc_batch_oldest_age_seconds", "gauge",
                   "Age of the oldest batch in flight (0: none).", round(age, 3))  # fmt: skip
    if s.spend_today is not None:
        out += _metric("docproc_spend_today_usd", "gauge", "Provider spend since 00:00 UTC.",
                       s.spend_today)  # fmt: skip
    paused = f'docproc_submission_paused{{reason="{_label(s.paused)}"}} 1' if s.paused else None
    out += _metric("docproc_submission_paused", "gauge", "1 while submission is paused.",
                   0, sample=paused)  # fmt: skip
    stuck = f'docproc_stuck{{reason="{_label(s.stuck)}"}} 1' if s.stuck else None
    out += _metric("docproc_stuck", "gauge",
                   "1 while the main loop fails tick after tick for the same cause.",
                   0, sample=stuck)  # fmt: skip
    out += _storage_metrics(s)
    for f in fields(s.counters):
        name, text = _COUNTERS[f.name]
        out += _metric(name, "counter", text, getattr(s.counters, f.name))
    return "\n".join(out) + "\n"


def _storage_metrics(s: Snapshot) -> list[str]:
    by_kind = dict.fromkeys(KINDS, 0)
    for kind, _, files in s.sidecars_waiting:
        by_kind[kind] = by_kind.get(kind, 0) + files
    name = "docproc_sidecars_retrying"
    out = [f"# HELP {name} Files whose sidecars wait for another try, by fault kind.",
           f"# TYPE {name} gauge"]  # fmt: skip
    out += [f'{name}{{kind="{_label(kind)}"}} {files}' for kind, files in by_kind.items()]
    for attr, metric, text in (
        ("intake_paused", "docproc_intake_paused", "1 while no new work is taken (low space)."),
        ("ledger_unwritable", "docproc_ledger_unwritable", "1 while ledger writes fail."),
    ):
        reason = getattr(s, attr)
        sample = f'{metric}{{reason="{_label(reason)}"}} 1' if reason else None
        out += _metric(metric, "gauge", text, 0, sample=sample)
    if s.state_free_bytes is not None:
        text = "Free space on the state directory's filesystem."
        out += _metric("docproc_state_free_bytes", "gauge", text, s.state_free_bytes)
    return out


def _metric(name: str, kind: str, text: str, value: float, sample: str | None = None) -> list[str]:
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}", sample or f"{name} {value}"]


def _label(value: str | None) -> str:
    text = value or ""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
