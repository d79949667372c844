"""Figure 2b: catch-up from the hub through the SDK, emulator -> pump, against one throughput unit's egress.

The bundled emulator runs in its own process (``bench/hub_throughput.py``'s
``emulator()``: in memory, one partition, a free loopback port); the
partition is preloaded with ``catchup_events`` config ``set`` events on the
N-key state's keys. statepump: a :class:`~statepump.pump.Pump` over
:class:`~statepump.sources.eventhub.EventHubSource` (the production source,
default prefetch), no snapshot, timed from start to ready, i.e. connection,
receive, convert and fold. Anchor: the egress limit of one Standard
throughput unit, 4,096 events/s (a constant, not measured).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench import dataset
from bench.figure import Figure, Size, spread
from bench.measure import seconds
from statepump.pump import Pump
from statepump.sources.eventhub import EventHubSource

EGRESS_PER_TU = 4_096
GOAL = 2 * EGRESS_PER_TU


def run(size: Size) -> Figure:
    from bench.hub_throughput import emulator, preload

    count = size.catchup_events
    bodies = dataset.set_bodies(count, size.keys)
    keys: list[int] = []
    with emulator() as connection_string:
        preload_seconds = preload(connection_string, bodies)

        def catch_up() -> None:
            async def go() -> None:
                pump: Pump[Any]
                async with Pump(EventHubSource(connection_string=connection_string)) as pump:
                    await pump.wait_ready(timeout=600)
                    if pump.version.sequence != count - 1:
                        raise AssertionError(f"ready at {pump.version.sequence}, expected {count - 1}")
                    keys.append(len(pump.state))

            asyncio.run(go())

        took = seconds(catch_up, runs=max(2, min(size.runs, 3)), warmup=size.warmup)
    rate = took.rate(count)
    return Figure(
        "2b",
        f"catch-up from the hub through the SDK (emulator → pump, {count:,} events, no snapshot, start to ready)",
        spread(rate.median, rate.min, rate.max) + " events/s",
        f"one Standard throughput unit's egress: {EGRESS_PER_TU:,} events/s",
        f"{rate.median / EGRESS_PER_TU:.1f}× one TU",
        f"≥ 2× one TU ({GOAL:,} events/s)",
        rate.median >= GOAL,
        (
            f"Includes connecting, the SDK's receive and conversion, and the fold into a state of {keys[-1]:,} keys; "
            f"{took.runs} runs after {size.warmup} warm-up. Preloading the partition took {preload_seconds:,.1f} s "
            f"({count / preload_seconds:,.0f} events/s sent).",
            "The emulator runs in its own process on the same 2 cores; `bench/hub_throughput.py` measures the source "
            "alone.",
        ),
    )
