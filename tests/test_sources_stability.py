"""The stability gate, with fake time: unit cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docproc.sources.stability import EMPTY_SETTLE_FACTOR, StabilityTracker

S = 1_000_000_000  # ns per second
WALL = 1_700_000_000.0  # wall clock = WALL + monotonic, in these tests


def fresh(now: float) -> int:
    """An mtime written at monotonic time ``now``."""
    return int((WALL + now) * S)


def observe(t: StabilityTracker[str], key: str, size: int, mtime_ns: int, now: float) -> None:
    t.observe(key, size, mtime_ns, now, WALL + now)


def test_released_after_settle_and_only_once() -> None:
    t: StabilityTracker[str] = StabilityTracker(5.0)
    observe(t, "a", 10, fresh(0), 0.0)
    assert t.pending == 1
    assert t.ready(4.9) == []
    assert t.ready(5.0) == [("a", 10, fresh(0))]
    assert t.pending == 0
    observe(t, "a", 10, fresh(0), 6.0)  # duplicate event / metadata touch
    assert t.pending == 0
    assert t.ready(20.0) == []


def test_any_change_resets_the_clock() -> None:
    t: StabilityTracker[str] = StabilityTracker(5.0)
    observe(t, "a", 10, fresh(0), 0.0)
    observe(t, "a", 10, fresh(0), 3.0)  # same values: the clock keeps running
    observe(t, "a", 20, fresh(4), 4.0)
    assert t.ready(8.9) == []
    assert t.ready(9.0) == [("a", 20, fresh(4))]
    observe(t, "a", 20, fresh(10), 10.0)  # touched after release: taken again
    assert t.ready(15.0) == [("a", 20, fresh(10))]


def test_old_mtime_on_first_sight_is_ready_at_once() -> None:
    t: StabilityTracker[str] = StabilityTracker(5.0)
    observe(t, "old", 10, fresh(-5), 0.0)
    observe(t, "young", 10, fresh(-4.9), 0.0)
    assert t.ready(0.0) == [("old", 10, fresh(-5))]


def test_old_mtime_does_not_skip_the_wait_once_a_change_was_seen() -> None:
    t: StabilityTracker[str] = StabilityTracker(5.0)
    observe(t, "a", 5, fresh(0), 0.0)
    observe(t, "a", 9, fresh(-100), 1.0)  # cp -p: data done, then the old mtime set
    assert t.ready(5.9) == []
    assert t.ready(6.0) == [("a", 9, fresh(-100))]


def test_empty_file_is_released_after_four_settle_times_and_a_grown_one_again() -> None:
    t: StabilityTracker[str] = StabilityTracker(2.0)
    observe(t, "scan.pdf", 0, fresh(0), 0.0)
    observe(t, "scan.pdf", 0, fresh(0), 1.0)
    observe(t, "scan.pdf", 4096, fresh(1.5), 1.5)  # the placeholder grows
    assert t.ready(3.0) == []
    assert t.ready(3.5) == [("scan.pdf", 4096, fresh(1.5))]
    u: StabilityTracker[str] = StabilityTracker(2.0)
    observe(u, "empty", 0, fresh(0), 0.0)
    assert u.settle_for(0) == EMPTY_SETTLE_FACTOR * 2.0
    assert u.ready(2.0) == []
    assert u.ready(7.9) == []
    assert u.ready(8.0) == [("empty", 0, fresh(0))]


def test_a_placeholder_filled_after_a_pause_is_one_version() -> None:
    """A scanner's 0-byte placeholder, filled after more than the settle time."""
    t: StabilityTracker[str] = StabilityTracker(2.0)
    released = []
    observe(t, "scan.pdf", 0, fresh(0), 0.0)
    for tick in range(1, 13):  # polls every second; content arrives at 5 s
        now = float(tick)
        if tick == 5:
            observe(t, "scan.pdf", 9000, fresh(now), now)
        released += t.ready(now)
    assert released == [("scan.pdf", 9000, fresh(5))]


def test_an_old_empty_file_waits_unless_older_than_the_empty_settle() -> None:
    t: StabilityTracker[str] = StabilityTracker(2.0)
    observe(t, "recent", 0, fresh(-3), 0.0)  # older than settle, not than 4x settle
    observe(t, "ancient", 0, fresh(-8), 0.0)
    assert t.ready(0.0) == [("ancient", 0, fresh(-8))]
    assert t.ready(8.0) == [("recent", 0, fresh(-3))]


def test_forget_drops_pending_and_released() -> None:
    t: StabilityTracker[str] = StabilityTracker(1.0)
    observe(t, "a", 1, fresh(0), 0.0)
    observe(t, "b", 1, fresh(0), 0.0)
    t.forget("a")
    assert "a" not in t
    assert t.ready(1.0) == [("b", 1, fresh(0))]
    assert "b" in t
    t.forget("b")
    observe(t, "b", 1, fresh(0), 1.5)  # same values, but forgotten: taken again
    assert t.ready(2.5) == [("b", 1, fresh(0))]


def test_negative_settle_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        StabilityTracker(-1.0)


# A file written at random moments (each write appends, stamps the mtime with
# the wall clock and is seen, as an event would make it), also observed at
# random moments (rescans), with ready() asked in between.
steps = st.lists(
    st.tuples(st.sampled_from(["write", "observe", "ready"]), st.floats(0.0, 3.0)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps, settle=st.floats(0.0, 5.0), age=st.floats(0.0, 20.0))
def test_never_released_within_settle_of_a_write_nor_twice(
    steps: list[tuple[str, float]], settle: float, age: float
) -> None:
    t: StabilityTracker[str] = StabilityTracker(settle)
    now, size, mtime, last_write = 0.0, 1, fresh(-age), -age
    released: list[tuple[int, int]] = []
    for action, dt in steps:
        now += dt
        if action == "write":
            size, mtime, last_write = size + 1, fresh(now), now
            observe(t, "f", size, mtime, now)
        elif action == "observe":
            observe(t, "f", size, mtime, now)
        else:
            for _key, r_size, r_mtime in t.ready(now):
                # What is released is what is on disk, and it has been still long enough.
                assert (r_size, r_mtime) == (size, mtime)
                assert now - last_write >= settle - 1e-6
                assert (r_size, r_mtime) not in released
                released.append((r_size, r_mtime))


@settings(max_examples=200, deadline=None)
@given(settle=st.floats(0.0, 5.0), start=st.floats(0.0, 100.0), wait=st.floats(0.0, 10.0))
def test_a_still_file_is_released_once_settle_has_passed(
    settle: float, start: float, wait: float
) -> None:
    t: StabilityTracker[str] = StabilityTracker(settle)
    observe(t, "f", 3, fresh(start), start)
    now = start + wait
    got = t.ready(now)
    assert (got == [("f", 3, fresh(start))]) is (now - start >= settle)
