"""Figure 11: a pre-fork worker's read of one key from its relay-fed pump, against the socket GET of figure 5.

The worker's pump (``statepump.components.make_worker_pump``'s wiring: a
``RelaySource`` and a ``RelayStore`` on the sidecar's Unix socket) loads the
sidecar's snapshot and follows its feed, on a thread as in a gunicorn worker;
a read is what a request handler does: take ``pump.version`` once and look the
key up in its state. The anchor, in the same run and against the same sidecar
process (``bench/socket_get.py``), is ``statepump.client``'s ``GET`` of that key.
Each sample is one call timed with ``perf_counter_ns``; the timer's own cost is
included (the figure errs high) and measured in the same run as the floor.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figure import Figure, Size, spread
from bench.measure import Stats, percentile

GOAL_P50_US = 1.0


def run(size: Size) -> Figure:
    from bench import socket_get
    from statepump.pump import Pump
    from statepump.sources.relay import RelaySource
    from statepump.stores.relaystore import RelayStore

    keys = min(size.keys, 100_000)
    reads = max(size.gets * 10, 10_000)
    ours_p50, ours_p99, anchor_p50, timer_p50 = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        sidecar, socket_path = socket_get.start_statepump(Path(tmp), keys, None)
        try:
            upstreams = [str(socket_path)]
            pump: Pump[Any] = Pump(RelaySource(upstreams), store=RelayStore(upstreams, "hub", "0"))
            pump.start_in_thread(name="bench-worker-pump")
            try:
                pump.wait_for_sync(1, timeout=60)
                segments = socket_get.KEY_PATH.split("/")
                clock = time.perf_counter_ns
                for _ in range(max(3, size.runs)):
                    samples = []
                    for _ in range(reads):
                        started = clock()
                        version = pump.version  # the one read a handler makes
                        value = version.state
                        for segment in segments:
                            value = value[segment]
                        samples.append(clock() - started)
                    empty = []
                    for _ in range(reads):  # the floor: the same loop timing nothing but itself
                        started = clock()
                        empty.append(clock() - started)
                    timer_p50.append(percentile([ns / 1e3 for ns in empty], 0.5))
                    us = [ns / 1e3 for ns in samples]
                    ours_p50.append(percentile(us, 0.5))
                    ours_p99.append(percentile(us, 0.99))
                    get = [ns / 1e3 for ns in socket_get.latencies("statepump", socket_path, size.gets)]
                    anchor_p50.append(percentile(get, 0.5))
                assert value == socket_get.VALUE
            finally:
                pump.stop_in_thread()
        finally:
            sidecar.terminate()
            sidecar.wait(10)
    p50, p99, a50, t50 = Stats.of(ours_p50), Stats.of(ours_p99), Stats.of(anchor_p50), Stats.of(timer_p50)
    fmt = "{:,.2f}"
    return Figure(
        "11",
        f"a pre-fork worker's read of one key from its relay-fed pump ({keys:,}-key state)",
        f"p50 {spread(p50.median, p50.min, p50.max, fmt)} µs, p99 {spread(p99.median, p99.min, p99.max, fmt)} µs",
        f"socket `GET` of the same key (`statepump.client`, figure 5's path): p50 {a50.median:,.1f} µs",
        f"{a50.median / p50.median:,.0f}× faster at p50",
        f"p50 ≤ {GOAL_P50_US:g} µs",
        p50.median <= GOAL_P50_US,
        (
            f"{p50.runs} rounds of {reads:,} reads, each round beside {size.gets:,} socket GETs against the same "
            "sidecar process; the pump follows the sidecar's feed on a thread, as in a gunicorn worker.",
            "The floor is the timing loop alone (two perf_counter_ns calls and an append): the read itself costs "
            "the measured p50 less the floor.",
        ),
        floor=f"the timer alone: p50 {t50.median:,.2f} µs",
    )
