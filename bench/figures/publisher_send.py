"""Figure 14: ``statepump.Publisher.send`` of one event on an open connection, p50 and p99 (emulator).

The bundled emulator runs in its own process (``bench/hub_throughput.py``'s
``emulator()``, one partition). One ``Publisher`` (no sidecar: syntax checks
only) sends ``set`` events one after the other, each awaited, and each
send's time is from the call to its sequence number; every number must be
the next one. Floor, in the same rounds, alternating with them: the SDK's
own ``send_batch`` of a one-event batch on an open async producer, which
learns no sequence number. The figure is the median over rounds of each
round's p50 and p99.
"""

from __future__ import annotations

import asyncio
import time

from azure.eventhub import EventData
from azure.eventhub.aio import EventHubProducerClient

from bench.figure import Figure, Size, spread
from bench.measure import Stats, percentile
from statepump import Publisher

GOAL_P50_MS = 5.0


async def _rounds(cs: str, rounds: int, per_round: int) -> tuple[list[float], list[float], list[float], list[float]]:
    p50s, p99s, floor50, floor99 = [], [], [], []
    async with (
        Publisher(connection_string=cs, author="bench") as publisher,
        EventHubProducerClient.from_connection_string(cs) as producer,
    ):
        expected = None
        for _ in range(20):  # warm-up: both links opened, the first batches sized
            expected = await publisher.set("bench/publisher", 0) + 1
            batch = await producer.create_batch(partition_id="0")
            batch.add(EventData(b"{}"))
            await producer.send_batch(batch)
            expected += 1
        for _ in range(rounds):
            ours, bare = [], []
            for i in range(per_round):
                started = time.perf_counter()
                number = await publisher.set("bench/publisher", i)
                ours.append((time.perf_counter() - started) * 1e3)
                if number != expected:
                    raise RuntimeError(f"Publisher.send returned {number}, not the event's number {expected}")
                batch = await producer.create_batch(partition_id="0")
                batch.add(EventData(b"{}"))
                started = time.perf_counter()
                await producer.send_batch(batch)
                bare.append((time.perf_counter() - started) * 1e3)
                expected = number + 2
            p50s.append(percentile(ours, 0.5))
            p99s.append(percentile(ours, 0.99))
            floor50.append(percentile(bare, 0.5))
            floor99.append(percentile(bare, 0.99))
    return p50s, p99s, floor50, floor99


def run(size: Size) -> Figure:
    from bench.hub_throughput import emulator

    rounds, per_round = max(3, size.runs), max(100, size.gets // 10)
    with emulator() as cs:
        p50s, p99s, floor50, floor99 = asyncio.run(_rounds(cs, rounds, per_round))
    p50, p99, f50, f99 = Stats.of(p50s), Stats.of(p99s), Stats.of(floor50), Stats.of(floor99)
    ms = "{:,.2f}"
    return Figure(
        "14",
        "`Publisher.send` of one event, open connection (emulator)",
        f"p50 {spread(p50.median, p50.min, p50.max, ms)} ms, p99 {spread(p99.median, p99.min, p99.max, ms)} ms",
        f"goal: p50 ≤ {GOAL_P50_MS:g} ms",
        f"p50 {p50.median / GOAL_P50_MS:.2f}× the goal; floor: p50 {p50.median / f50.median:.2f}×",
        f"p50 ≤ {GOAL_P50_MS:g} ms",
        p50.median <= GOAL_P50_MS,
        (
            f"{rounds} rounds of {per_round:,} sends each, after 20 warm-up sends; each send awaited before the "
            "next, each returned its exact sequence number.",
            "A send is three round trips to the hub: the partition's count on the held management link (while the "
            "batch is built), the send, and the count again (the counts prove which numbers the hub gave; another "
            "writer in between makes the send read its events back instead).",
        ),
        floor=f"the SDK's `send_batch` on an open producer: p50 {f50.median:,.2f} ms, p99 {f99.median:,.2f} ms",
    )
