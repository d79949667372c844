"""Figure 2b: catch-up from the hub through the SDK, emulator -> pump, against one throughput unit's egress.

The bundled emulator runs in its own process (``bench/hub_throughput.py``'s
``emulator()``: in memory, one partition, a free loopback port); the
partition is preloaded with ``catchup_events`` config ``set`` events on the
N-key state's keys. statepump: a :class:`~statepump.pump.Pump` over
:class:`~statepump.sources.eventhub.EventHubSource` (the production source,
default prefetch), no snapshot, timed from start to ready, i.e. connection,
receive, convert and fold (the pump's shutdown after is not counted). Anchor: the
egress limit of one Standard throughput unit, 4,096 events/s (a constant, not
measured). Floor, interleaved with the pump's runs: the SDK's own receive loop
on the same emulator and the same events, an async ``EventHubConsumerClient``
``receive_batch`` with the source's prefetch and batch size and a callback that
only counts, timed from creating the client to the last event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench import dataset
from bench.figure import Figure, Size, spread
from bench.measure import Stats
from statepump.pump import Pump
from statepump.sources.eventhub import EventHubSource

EGRESS_PER_TU = 4_096
GOAL = 2 * EGRESS_PER_TU
GOAL_FLOOR = 0.8  # x the bare SDK loop's rate


async def bare_sdk(connection_string: str, count: int) -> float:
    """Seconds for the SDK's own receive loop to hand over ``count`` events from the start (close not counted)."""
    from azure.eventhub.aio import EventHubConsumerClient

    defaults = EventHubSource(connection_string=connection_string)
    prefetch, batch_size = defaults.prefetch, defaults.max_batch_size
    await defaults.close()
    began = time.perf_counter_ns()
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    seen = 0

    async def on_batch(_context: Any, events: list[Any]) -> None:
        nonlocal seen
        seen += len(events)
        if seen >= count and not done.done():
            done.set_result((time.perf_counter_ns() - began) / 1e9)

    client = EventHubConsumerClient.from_connection_string(connection_string, consumer_group="$Default")
    task = asyncio.ensure_future(
        client.receive_batch(
            on_batch, partition_id="0", starting_position="-1", max_batch_size=batch_size, prefetch=prefetch
        )
    )
    try:
        return await asyncio.wait_for(done, 600)
    finally:
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run(size: Size) -> Figure:
    from bench.hub_throughput import emulator, preload

    count = size.catchup_events
    bodies = dataset.set_bodies(count, size.keys)
    keys: list[int] = []
    with emulator() as connection_string:
        preload_seconds = preload(connection_string, bodies)

        def catch_up() -> float:
            async def go() -> float:
                began = time.perf_counter_ns()
                pump: Pump[Any]
                async with Pump(EventHubSource(connection_string=connection_string)) as pump:
                    await pump.wait_ready(timeout=600)
                    ready = (time.perf_counter_ns() - began) / 1e9
                    if pump.version.sequence != count - 1:
                        raise AssertionError(f"ready at {pump.version.sequence}, expected {count - 1}")
                    keys.append(len(pump.state))
                return ready  # leaving the block closes the SDK's links: shutdown, not catch-up

            return asyncio.run(go())

        runs = max(2, min(size.runs, 3))
        ours_s: list[float] = []
        bare_s: list[float] = []
        for i in range(size.warmup + runs):  # interleaved: the same machine for both
            mine, theirs = catch_up(), asyncio.run(bare_sdk(connection_string, count))
            if i >= size.warmup:
                ours_s.append(mine)
                bare_s.append(theirs)
    took, bare = Stats.of(ours_s), Stats.of(bare_s)
    rate, floor = took.rate(count), bare.rate(count)
    to_floor = rate.median / floor.median
    return Figure(
        "2b",
        f"catch-up from the hub through the SDK (emulator → pump, {count:,} events, no snapshot, start to ready)",
        spread(rate.median, rate.min, rate.max) + " events/s",
        f"one Standard throughput unit's egress: {EGRESS_PER_TU:,} events/s",
        f"{rate.median / EGRESS_PER_TU:.1f}× one TU, {to_floor:.2f}× the bare SDK loop",
        f"≥ 2× one TU ({GOAL:,} events/s) and ≥ {GOAL_FLOOR:g}× the bare SDK loop",
        rate.median >= GOAL and to_floor >= GOAL_FLOOR,
        (
            f"Includes connecting, the SDK's receive and conversion, and the fold into a state of {keys[-1]:,} keys; "
            f"{took.runs} runs after {size.warmup} warm-up. Preloading the partition took {preload_seconds:,.1f} s "
            f"({count / preload_seconds:,.0f} events/s sent).",
            "The emulator runs in its own process on the same 2 cores; `bench/hub_throughput.py` measures the source "
            "alone.",
            f"The floor, the SDK's own `receive_batch` loop counting events and nothing else: "
            f"{spread(floor.median, floor.min, floor.max)} events/s, connection included, interleaved with the "
            "pump's runs; the gap to it is statepump's conversion to `Event`s, the sequence checks and the fold.",
        ),
        floor=f"the SDK's bare `receive_batch` loop: {floor.median:,.0f} events/s",
    )
