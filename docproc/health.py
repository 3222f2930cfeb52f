"""What the running daemon reports about itself: one snapshot, two renderings.

The main loop computes a :class:`Snapshot` now and then (``Pipeline.snapshot``)
and hands the same value to systemd (:func:`status_line`, the ``STATUS=``
line) and to the optional Prometheus endpoint (:func:`prometheus_text`).
Both are pure functions of the snapshot, so they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


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
    line = ", ".join(parts)
    return f"{line}; submission paused: {s.paused}" if s.paused else line


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
    for f in fields(s.counters):
        name, text = _COUNTERS[f.name]
        out += _metric(name, "counter", text, getattr(s.counters, f.name))
    return "\n".join(out) + "\n"


def _metric(name: str, kind: str, text: str, value: float, sample: str | None = None) -> list[str]:
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}", sample or f"{name} {value}"]


def _label(value: str | None) -> str:
    text = value or ""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
