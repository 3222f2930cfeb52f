"""What the running daemon reports about itself: one snapshot, two renderings.

The main loop computes a :class:`Snapshot` now and then (``Pipeline.snapshot``)
and hands the same value to systemd (:func:`status_line`, the ``STATUS=``
line) and to the optional Prometheus endpoint (:func:`prometheus_text`).
Both are pure functions of the snapshot, so they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from docproc.storage import KINDS


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
    # sidecars waiting for another try: (fault kind, reason, files), most files first
    sidecars_waiting: tuple[tuple[str, str, int], ...] = ()
    intake_paused: str | None = None  # why no new work is taken (low space); None: it is
    ledger_unwritable: str | None = None  # "ledger not writable: ..." while backing off
    state_free_bytes: int | None = None  # free space on the state directory's filesystem


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
    return f"{s.ledger_unwritable}; {line}" if s.ledger_unwritable else line


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
