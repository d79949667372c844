"""Timing and memory accounting: several runs after a warm-up, reported as median with min and max.

Times come from ``time.perf_counter_ns``; memory from the process's own
accounting (``/proc/self/statm`` resident pages, ``tracemalloc``).

>>> s = Stats.of([3.0, 1.0, 2.0])
>>> (s.median, s.min, s.max)
(2.0, 1.0, 3.0)
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Stats:
    """Median, min and max of several measurements (in one unit, decided by the caller)."""

    median: float
    min: float
    max: float
    runs: int

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        if not values:
            raise ValueError("no measurements")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def scaled(self, factor: float) -> Stats:
        """The same measurements times ``factor`` (e.g. seconds -> milliseconds)."""
        return Stats(self.median * factor, self.min * factor, self.max * factor, self.runs)

    def rate(self, count: int) -> Stats:
        """``count`` per unit of these measurements (durations in seconds -> events/s): min and max swap."""
        return Stats(count / self.median, count / self.max, count / self.min, self.runs)


def seconds(
    fn: Callable[[], object], *, runs: int, warmup: int = 1, setup: Callable[[], object] | None = None
) -> Stats:
    """Wall time of ``fn()`` in seconds over ``runs`` runs after ``warmup`` unmeasured ones.

    ``setup`` runs before each call, untimed.
    """
    values = []
    for i in range(warmup + runs):
        if setup is not None:
            setup()
        start = time.perf_counter_ns()
        fn()
        elapsed = time.perf_counter_ns() - start
        if i >= warmup:
            values.append(elapsed / 1e9)
    return Stats.of(values)


def interleaved(steps: Sequence[Callable[[], object]], *, runs: int, warmup: int = 1) -> list[list[float]]:
    """Wall times in seconds of each of ``steps``, run in turn in every round, so all see the same machine.

    One list per step, in order, of ``runs`` times each after ``warmup`` unmeasured rounds; each
    round's times stand side by side, so the lists also give each round's own ratio.

    >>> [len(times) for times in interleaved([lambda: None, lambda: None], runs=3)]
    [3, 3]
    """
    times: list[list[float]] = [[] for _ in steps]
    for i in range(warmup + runs):
        for step, into in zip(steps, times, strict=True):
            started = time.perf_counter_ns()
            step()
            if i >= warmup:
                into.append((time.perf_counter_ns() - started) / 1e9)
    return times


def rss_bytes() -> int:
    """This process's resident set size, from ``/proc/self/statm``."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values``, nearest rank.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.0
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))
    return ordered[rank]
