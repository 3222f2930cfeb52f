"""Pure batch planning: which ready jobs go into which batch, and when.

:func:`plan_batches` decides; it does no I/O and never reads the clock, so the
pipeline passes ``now`` and the number of batches already in flight, and the
tests drive it with fake time (STYLE habit 6).

The rule, in the words of DESIGN.md: flush when the ready jobs reach
``max_requests``, or their request bytes reach ``max_bytes``, or the oldest has
waited ``max_wait`` — whichever comes first. Made precise:

1. The caps are ``min(max_requests, hard_max_requests)`` requests and
   ``min(max_bytes, hard_max_bytes)`` bytes per batch. A job larger than the
   byte cap alone can never be sent; it is returned in :attr:`Plan.oversized`
   at once, so the pipeline can quarantine it with a reason.
2. The other ready jobs are packed greedily, in ready order, into *chunks*:
   a chunk closes when the next job would break a cap. Every chunk but the
   last is therefore *full* (the count or the bytes reached a cap); the last
   is full only if it reaches a cap exactly.
3. A chunk is flushed when it is full, when its oldest job has waited
   ``max_wait`` (``now - ready_at >= max_wait``), or when ``flush_all`` is set
   (``docproc run --once``). So an aged job flushes *its* chunk — everything
   ready with it, up to the caps — but a young remainder after a full batch
   keeps waiting to fill up instead of going out as a needlessly small batch;
   it leaves at the latest when its own oldest job ages.
4. At most ``max_in_flight - in_flight`` batches are returned; chunks are
   taken in order, so the oldest work goes first, and the rest waits for a
   later call.
5. A flushed chunk smaller than ``min_requests`` (a provider's minimum batch
   size, e.g. Bedrock's minimum records per job) is returned apart, in
   :attr:`Plan.below_minimum`: the caller sends it another way (a live API)
   or leaves its jobs waiting for more.

Request sizes are whatever the caller measured (the serialised request, plus
one byte for the separator in the create body is a fair measure); the planner
only adds them up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from docproc.models import BatchLimits, ReadyJob


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with the ready jobs now.

    Attributes:
        batches: job ids per batch to submit now, each batch in ready order,
            the batches in ready order too.
        oversized: ids of jobs bigger than the byte cap on their own; they can
            never be batched and should be quarantined.
        below_minimum: batches due now but smaller than ``min_requests``.
    """

    batches: list[list[int]] = field(default_factory=list)
    oversized: list[int] = field(default_factory=list)
    below_minimum: list[list[int]] = field(default_factory=list)


def effective_caps(limits: BatchLimits) -> tuple[int, int]:
    """Return ``(max requests, max bytes)`` per batch: the stricter of soft and hard.

    Raises:
        ValueError: if either cap is below 1.
    """
    max_requests = min(limits.max_requests, limits.hard_max_requests)
    max_bytes = min(limits.max_bytes, limits.hard_max_bytes)
    if max_requests < 1 or max_bytes < 1:
        raise ValueError(f"batch caps must be at least 1, got {max_requests}, {max_bytes}")
    return max_requests, max_bytes


def plan_batches(
    ready: Sequence[ReadyJob],
    limits: BatchLimits,
    now: float,
    in_flight: int,
    *,
    flush_all: bool = False,
    min_requests: int = 1,
) -> Plan:
    """Decide which ready jobs to submit now (see the module docstring for the rule).

    Args:
        ready: the queued jobs, oldest first as the pipeline keeps them; ids unique.
        limits: the flush thresholds and the provider's hard caps.
        now: the current time on the same clock as ``ReadyJob.ready_at``.
        in_flight: batches already submitted and not yet ended.
        flush_all: flush every ready job now, whatever the thresholds say.
        min_requests: the smallest batch the provider takes.

    Returns:
        A :class:`Plan`. Every job appears at most once in it; jobs not in it
        stay queued for a later call.
    """
    max_requests, max_bytes = effective_caps(limits)
    sendable = [job for job in ready if job.request_bytes <= max_bytes]
    oversized = [job.job_id for job in ready if job.request_bytes > max_bytes]
    slots = max(0, limits.max_in_flight - in_flight)
    plan = Plan(oversized=oversized)
    chunks = _pack(sendable, max_requests, max_bytes)
    for index, chunk in enumerate(chunks[:slots]):
        last = index == len(chunks) - 1
        if flush_all or not last or _due(chunk, max_requests, max_bytes, now, limits.max_wait):
            small = len(chunk) < min_requests
            (plan.below_minimum if small else plan.batches).append([job.job_id for job in chunk])
    return plan


def _pack(jobs: Sequence[ReadyJob], max_requests: int, max_bytes: int) -> list[list[ReadyJob]]:
    """Split ``jobs`` in order into chunks within both caps; every job fits alone."""
    chunks: list[list[ReadyJob]] = []
    current: list[ReadyJob] = []
    size = 0
    for job in jobs:
        if current and (len(current) >= max_requests or size + job.request_bytes > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(job)
        size += job.request_bytes
    if current:
        chunks.append(current)
    return chunks


def _due(chunk: list[ReadyJob], max_requests: int, max_bytes: int, now: float, wait: float) -> bool:
    """Whether the last chunk must go now: it reached a cap, or its oldest job aged.

    (Every other chunk was closed because the next job did not fit: always due.)
    """
    if len(chunk) >= max_requests or sum(job.request_bytes for job in chunk) >= max_bytes:
        return True
    return now - min(job.ready_at for job in chunk) >= wait
