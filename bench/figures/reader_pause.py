"""Figure 7: the longest pause a reader thread sees while the pump catches up.

A pump in thread mode (as in a Flask or Django app) starts from a snapshot of
the N-key state and catches up ``catchup_events`` events from an in-memory
source, with its garbage-collection policy as shipped (automatic collection
paused, :class:`statepump.core.collector.Collector` on its default interval). A
reader thread reads ``pump.state[key]`` every 0.5 ms; the figure is the
longest interval between two consecutive reads, from the first version after
the snapshot to 0.2 s after the reader first sees the last one. The scheduled full collection, which does not fall
inside a catch-up this short, is timed on its own.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import dataset
from bench.figure import Figure, Size, spread
from bench.measure import Stats, percentile
from statepump.core.collector import Collector
from statepump.core.configops import config
from statepump.core.events import Version
from statepump.core.fold import fold
from statepump.pump import Pump
from statepump.sources.memory import MemorySource
from statepump.stores.directory import DirectoryStore
from statepump.stores.snapshots import write_snapshot

GOAL_MS = 10.0
GOAL_IDLE = 3.0  # x the idle reader's longest interval, same run: the pause the catch-up adds
READ_EVERY_S = 0.0005
AFTER_READY_S = 0.2


def catch_up_once(store_root: Path, events: list[Any], probe: str) -> tuple[float, float, int, float]:
    """One catch-up; returns (longest gap ms, p99 gap ms, reads, catch-up seconds)."""
    source = MemorySource(live=True)
    for event in events:
        source.append(event.body, enqueued_time=event.enqueued_time)
    last = len(events) - 1
    pump: Pump[Any] = Pump(source, store=DirectoryStore(store_root, "hub", "0"), eventhub="hub")
    gaps: list[float] = []
    window: list[float] = []
    stop = threading.Event()

    def reader() -> None:
        while pump.version.sequence < 0 and not stop.is_set():
            time.sleep(0.001)
        started = prev = reached = time.perf_counter_ns()
        ends: int | None = None
        while not stop.is_set() and (ends is None or prev < ends):
            version = pump.version
            version.state.get(probe)
            now = time.perf_counter_ns()
            gaps.append((now - prev) / 1e6)
            prev = now
            if ends is None and version.sequence >= last:
                # Past the last version too: releasing the version it replaced is the catch-up's work.
                reached, ends = now, now + int(AFTER_READY_S * 1e9)
            time.sleep(READ_EVERY_S)
        window.append((reached - started) / 1e9)  # the catch-up as the reader saw it

    thread = threading.Thread(target=reader, name="bench-reader")
    thread.start()
    pump.start_in_thread()
    try:
        pump.wait_for_sync(last, timeout=600)
        thread.join(timeout=AFTER_READY_S + 30)  # the reader ends on its own, AFTER_READY_S past the last version
    finally:
        stop.set()
        thread.join()
        pump.stop_in_thread()
    if pump.version.sequence != last:
        raise AssertionError(f"the catch-up did not finish (at {pump.version.sequence} of {last})")
    if not gaps:  # over before the reader's first read: the whole catch-up was one pause
        gaps.append(window[0] * 1e3)
    return max(gaps), percentile(gaps, 0.99), len(gaps), window[0]


def idle_reader(duration: float) -> tuple[float, float]:
    """The same reader with nothing else running in the process: the machine's own scheduling jitter."""
    gaps = []
    deadline = time.perf_counter_ns() + int(duration * 1e9)
    prev = time.perf_counter_ns()
    while prev < deadline:
        time.sleep(READ_EVERY_S)
        now = time.perf_counter_ns()
        gaps.append((now - prev) / 1e6)
        prev = now
    return max(gaps), percentile(gaps, 0.99)


def run(size: Size) -> Figure:
    n = size.keys
    state = dataset.state(n)
    events = dataset.set_events(size.catchup_events + 1, n)
    probe = dataset.key(n // 2)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-pause-") as tmp:
        store = DirectoryStore(Path(tmp), "hub", "0")
        # The snapshot holds the state after event 0; the catch-up applies 1..catchup_events.
        asyncio.run(write_snapshot(store, Version(state, 0, dataset.T0, "0"), config, eventhub="hub", events_folded=n))
        for i in range(size.warmup + size.runs):
            result = catch_up_once(Path(tmp), events, probe)
            if i >= size.warmup:
                results.append(result)
        # The same catch-up with a 1 ms GIL switch interval (the default is 5 ms): a proposal for thread mode.
        default_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.001)
        try:
            short = [catch_up_once(Path(tmp), events, probe) for _ in range(max(2, size.runs // 2))]
        finally:
            sys.setswitchinterval(default_interval)
    idle = [idle_reader(r[3]) for r in results]
    idle_longest = Stats.of([i[0] for i in idle])
    short_longest = Stats.of([r[0] for r in short])
    longest = Stats.of([r[0] for r in results])
    p99 = Stats.of([r[1] for r in results])
    rate = Stats.of([size.catchup_events / r[3] for r in results])

    # The scheduled collections (Collector, default every 300 s) with the state alive: the first one,
    # and the next after the catch-up's events (the Collector freezes what survives each one).
    first, later = [], []
    for _ in range(max(2, size.runs // 2)):
        scheduled = Collector(interval=1e-9)
        scheduled.start()
        try:
            scheduled.maybe_collect()
            first.append(scheduled.last_pause_seconds * 1e3)
            version: Version[Any] = Version(state, 0, dataset.T0, "0")
            version = fold(version, events[1:], config, applied_at=dataset.T0).version
            scheduled.maybe_collect()
            later.append(scheduled.last_pause_seconds * 1e3)
            del version
        finally:
            scheduled.stop()
    full, next_one = Stats.of(first), Stats.of(later)
    return Figure(
        "7",
        f"longest pause seen by a reader thread during a {size.catchup_events:,}-event catch-up "
        f"({n:,}-key state, thread mode, collection policy as shipped)",
        spread(longest.median, longest.min, longest.max, "{:,.1f}") + " ms",
        f"the same reader with no catch-up (machine jitter): {idle_longest.median:,.1f} ms",
        f"{longest.median / idle_longest.median:.1f}× the jitter",
        f"≤ {GOAL_MS:g} ms and ≤ {GOAL_IDLE:g}× the idle reader's longest interval",
        longest.median <= GOAL_MS and longest.median <= GOAL_IDLE * idle_longest.median,
        (
            f"p99 interval between reads {p99.median:,.2f} ms; reads every {READ_EVERY_S * 1e3:g} ms; "
            f"catch-up ran at {rate.median:,.0f} events/s with the reader attached; {size.runs} catch-ups after "
            f"{size.warmup} warm-up.",
            f"With a 1 ms GIL switch interval (`sys.setswitchinterval(0.001)`, default 5 ms) the longest pause is "
            f"{spread(short_longest.median, short_longest.min, short_longest.max, '{:,.1f}')} ms.",
            f"The idle reader's p99 interval is {Stats.of([i[1] for i in idle]).median:,.2f} ms: on a shared, loaded "
            "machine the reader thread waits for a CPU as well as for the GIL.",
            f"The scheduled collection (`gc_interval`, default 300 s, outside this catch-up) pauses the process "
            f"{spread(full.median, full.min, full.max, '{:,.0f}')} ms the first time (every object of this "
            f"benchmark process, the anchors' data included), then "
            f"{spread(next_one.median, next_one.min, next_one.max, '{:,.0f}')} ms for the next one after "
            f"{size.catchup_events:,} events, because the Collector freezes the survivors of each collection.",
        ),
    )
