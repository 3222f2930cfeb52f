"""Batch planning: examples, then properties over random queues and fake time."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docproc.batching import Plan, effective_caps, plan_batches
from docproc.models import BatchLimits, ReadyJob


def jobs(*sizes: int, ready_at: float = 0.0) -> list[ReadyJob]:
    return [
        ReadyJob(job_id=i, request_bytes=size, ready_at=ready_at) for i, size in enumerate(sizes)
    ]


LIMITS = BatchLimits(max_requests=3, max_bytes=100, max_wait=60.0, max_in_flight=10)


# -- examples ---------------------------------------------------------------------


def test_empty_queue_plans_nothing() -> None:
    assert plan_batches([], LIMITS, now=1e9, in_flight=0, flush_all=True) == Plan([], [])


def test_young_small_queue_waits() -> None:
    assert plan_batches(jobs(10, 10), LIMITS, now=59.9, in_flight=0) == Plan([], [])


def test_age_flushes_everything_ready() -> None:
    assert plan_batches(jobs(10, 10), LIMITS, now=60.0, in_flight=0).batches == [[0, 1]]


def test_count_threshold_flushes_a_full_batch_and_keeps_the_young_rest() -> None:
    plan = plan_batches(jobs(1, 1, 1, 1), LIMITS, now=0.0, in_flight=0)
    assert plan.batches == [[0, 1, 2]]


def test_byte_threshold_flushes() -> None:
    assert plan_batches(jobs(60, 40), LIMITS, now=0.0, in_flight=0).batches == [[0, 1]]
    # 60 + 50 does not fit: the first job goes alone, the second waits
    assert plan_batches(jobs(60, 50), LIMITS, now=0.0, in_flight=0).batches == [[0]]


def test_flush_all_splits_at_the_caps() -> None:
    plan = plan_batches(jobs(1, 1, 1, 1, 1, 90, 20), LIMITS, now=0.0, in_flight=0, flush_all=True)
    assert plan.batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_hard_caps_win_over_soft_ones() -> None:
    limits = BatchLimits(max_requests=50, hard_max_requests=2, max_bytes=10**9, hard_max_bytes=30)
    assert effective_caps(limits) == (2, 30)
    plan = plan_batches(jobs(10, 10, 10, 25), limits, now=0.0, in_flight=0)
    assert plan.batches == [[0, 1], [2]]  # [3] alone is neither full nor old


def test_oversized_job_is_reported_not_batched() -> None:
    plan = plan_batches(jobs(10, 101, 10), LIMITS, now=0.0, in_flight=0, flush_all=True)
    assert plan == Plan(batches=[[0, 2]], oversized=[1])


def test_oversized_is_reported_even_when_nothing_is_due() -> None:
    plan = plan_batches(jobs(10, 500), LIMITS, now=0.0, in_flight=10)
    assert plan == Plan(batches=[], oversized=[1])


def test_in_flight_cap_limits_new_batches_oldest_first() -> None:
    limits = BatchLimits(max_requests=1, max_bytes=100, max_wait=0.0, max_in_flight=3)
    assert plan_batches(jobs(1, 1, 1, 1), limits, now=0.0, in_flight=1).batches == [[0], [1]]
    assert plan_batches(jobs(1, 1), limits, now=0.0, in_flight=3).batches == []
    assert plan_batches(jobs(1, 1), limits, now=0.0, in_flight=7).batches == []


def test_an_aged_job_late_in_the_queue_still_flushes_its_batch() -> None:
    queue = [ReadyJob(0, 1, ready_at=50.0), ReadyJob(1, 1, ready_at=0.0)]
    assert plan_batches(queue, LIMITS, now=60.0, in_flight=0).batches == [[0, 1]]


def test_caps_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_batches(jobs(1), BatchLimits(max_requests=0), now=0.0, in_flight=0)


# -- properties -------------------------------------------------------------------

limits_strategy = st.builds(
    BatchLimits,
    max_requests=st.integers(1, 8),
    max_bytes=st.integers(1, 400),
    max_wait=st.floats(0.0, 50.0),
    max_in_flight=st.integers(0, 5),
    hard_max_requests=st.integers(1, 10),
    hard_max_bytes=st.integers(1, 500),
)


@st.composite
def queues(draw: st.DrawFn) -> list[ReadyJob]:
    sizes = draw(st.lists(st.integers(0, 300), max_size=40))
    times = sorted(draw(st.lists(st.floats(0.0, 100.0), min_size=len(sizes), max_size=len(sizes))))
    return [
        ReadyJob(job_id=100 + i, request_bytes=s, ready_at=t)
        for i, (s, t) in enumerate(zip(sizes, times, strict=True))
    ]


def check_plan(plan: Plan, ready: list[ReadyJob], limits: BatchLimits, in_flight: int) -> None:
    """What holds for every plan: no job twice, order kept, caps respected."""
    max_requests, max_bytes = effective_caps(limits)
    sizes = {job.job_id: job.request_bytes for job in ready}
    planned = [job_id for batch in plan.batches for job_id in batch]
    assert len(planned) + len(plan.oversized) == len(set(planned) | set(plan.oversized))
    order = [job.job_id for job in ready if job.job_id in set(planned)]
    assert planned == order
    assert plan.oversized == [job.job_id for job in ready if job.request_bytes > max_bytes]
    assert len(plan.batches) <= max(0, limits.max_in_flight - in_flight)
    for batch in plan.batches:
        assert 1 <= len(batch) <= max_requests
        assert sum(sizes[job_id] for job_id in batch) <= max_bytes


@given(queues(), limits_strategy, st.floats(0.0, 200.0), st.integers(0, 6), st.booleans())
def test_every_plan_is_well_formed(
    ready: list[ReadyJob], limits: BatchLimits, now: float, in_flight: int, flush_all: bool
) -> None:
    plan = plan_batches(ready, limits, now, in_flight, flush_all=flush_all)
    check_plan(plan, ready, limits, in_flight)


@given(queues(), limits_strategy, st.floats(0.0, 200.0))
def test_flush_all_places_every_job_exactly_once_when_slots_allow(
    ready: list[ReadyJob], limits: BatchLimits, now: float
) -> None:
    unlimited = replace(limits, max_in_flight=10**6)
    plan = plan_batches(ready, unlimited, now, in_flight=0, flush_all=True)
    check_plan(plan, ready, unlimited, 0)
    placed = sorted([j for batch in plan.batches for j in batch] + plan.oversized)
    assert placed == sorted(job.job_id for job in ready)


@given(queues(), limits_strategy)
def test_when_all_jobs_are_old_every_job_is_placed(
    ready: list[ReadyJob], limits: BatchLimits
) -> None:
    unlimited = replace(limits, max_in_flight=10**6)
    now = max((job.ready_at for job in ready), default=0.0) + limits.max_wait + 1.0
    plan = plan_batches(ready, unlimited, now, in_flight=0)
    placed = sorted([j for batch in plan.batches for j in batch] + plan.oversized)
    assert placed == sorted(job.job_id for job in ready)


@given(queues(), limits_strategy, st.floats(0.0, 200.0))
def test_what_is_left_behind_would_not_trigger_a_flush(
    ready: list[ReadyJob], limits: BatchLimits, now: float
) -> None:
    unlimited = replace(limits, max_in_flight=10**6)
    plan = plan_batches(ready, unlimited, now, in_flight=0)
    taken = {j for batch in plan.batches for j in batch} | set(plan.oversized)
    rest = [job for job in ready if job.job_id not in taken]
    max_requests, max_bytes = effective_caps(limits)
    assert len(rest) < max_requests
    assert sum(job.request_bytes for job in rest) < max_bytes
    assert all(now - job.ready_at < limits.max_wait for job in rest)


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.floats(0.0, 300.0), st.integers(0, 120)), max_size=60),
    limits_strategy,
    st.floats(0.5, 10.0),
)
def test_no_job_waits_past_max_wait_plus_one_tick(
    arrivals: list[tuple[float, int]], limits: BatchLimits, tick: float
) -> None:
    """Model the daemon: a tick every ``tick`` seconds plans the queue and removes
    what was planned; with no in-flight cap, each job leaves within max_wait + tick."""
    unlimited = replace(limits, max_in_flight=10**6)
    arrivals = sorted(arrivals)
    all_jobs = [ReadyJob(i, size, at) for i, (at, size) in enumerate(arrivals)]
    queue: list[ReadyJob] = []
    left_at: dict[int, float] = {}
    pending = list(all_jobs)
    now = 0.0
    while pending or queue:
        queue += [job for job in pending if job.ready_at <= now]
        pending = [job for job in pending if job.ready_at > now]
        plan = plan_batches(queue, unlimited, now, in_flight=0)
        check_plan(plan, queue, unlimited, 0)
        gone = {j for batch in plan.batches for j in batch} | set(plan.oversized)
        left_at.update(dict.fromkeys(gone, now))
        queue = [job for job in queue if job.job_id not in gone]
        now += tick
    for job in all_jobs:
        assert left_at[job.job_id] <= job.ready_at + limits.max_wait + tick + 1e-9


def test_a_due_batch_below_the_minimum_is_set_apart() -> None:
    queue = jobs(10, 10, 10, 10, ready_at=0.0)
    plan = plan_batches(queue, LIMITS, now=100.0, in_flight=0, min_requests=2)
    assert plan.batches == [[0, 1, 2]] and plan.below_minimum == [[3]]
    young = plan_batches(jobs(10, ready_at=90.0), LIMITS, now=100.0, in_flight=0, min_requests=2)
    assert young == Plan()  # not due yet: neither sent nor set apart
