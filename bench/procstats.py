"""Per-process figures read from /proc, shared by the benchmarks (Linux only)."""

from __future__ import annotations

import collections
import os
import threading

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None  # gone meanwhile


def _ppids() -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc."""
    out: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat_fields(int(name))) is not None:
            out[int(name)] = int(fields[1])
    return out


def descendants(root: int) -> dict[int, int]:
    """Descendants of ``root`` mapped to their depth (children 1, grandchildren 2, ...)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid, ppid in _ppids().items():
        children[ppid].append(pid)
    depth, todo = {}, [(root, 0)]
    while todo:
        pid, level = todo.pop()
        for child in children.get(pid, []):
            depth[child] = level + 1
            todo.append((child, level + 1))
    return depth


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far, 0 if it is gone."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / TICKS


def vmhwm_kb(pid: int) -> int:
    """Peak resident set size (VmHWM) of ``pid`` in KiB, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class ProcessSampler(threading.Thread):
    """Samples a process and its descendants (peak RSS, CPU, depth) until stopped.

    A process's last moments before it exits are not seen, so CPU figures of
    short-lived children are a slight undercount.
    """

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.depth: dict[int, int] = {pid: 0}
        self.peak_kb: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.children_sum_kb = 0  # peak over samples of the sum over live descendants
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> None:
        total = 0
        for pid, depth in {self.pid: 0, **descendants(self.pid)}.items():
            kb = vmhwm_kb(pid)
            self.depth[pid] = depth
            self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), kb)
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu_seconds(pid))
            total += kb if depth else 0
        self.children_sum_kb = max(self.children_sum_kb, total)

    def pids(self, min_depth: int, max_depth: int = 99) -> set[int]:
        return {pid for pid, d in self.depth.items() if min_depth <= d <= max_depth}

    def max_kb(self, min_depth: int, max_depth: int = 99) -> int:
        return max([0, *(self.peak_kb.get(p, 0) for p in self.pids(min_depth, max_depth))])

    def cpu_sum(self, min_depth: int, max_depth: int = 99) -> float:
        return sum(self.cpu.get(pid, 0.0) for pid in self.pids(min_depth, max_depth))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
