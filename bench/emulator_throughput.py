"""Events/s the async SDK receives from the emulator on one partition, and live latency.

Run: ``.venv/bin/python bench/emulator_throughput.py [--events 50000] [--prefetch 1000 2000 3000] [--external]``

Throughput: N events (83-byte bodies) are sent to partition 0 first, then one
async ``receive_batch`` reads them all from ``-1``; the figure is N divided by
the time from the first to the last event received.

Latency: with an async receiver tailing ``@latest``, events are sent one at
a time and the send-acknowledged -> received time is recorded. The async SDK
polls every 50 ms, which dominates that figure, so the emulator's own share is
reported separately, measured inside the server from the producer's transfer
arriving to the consumer's transfer being written to the socket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: devservices is beside bench/

from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient as AsyncConsumer
from azure.eventhub.aio import EventHubProducerClient as AsyncProducer

from devservices.emulator import EmulatorProcess
from statepump.emulator import Emulator, listener

BODY = b'{"op":"set","path":"/feature/flags/alpha","value":true,"at":"2026-01-01T00:00:00Z"}'


async def stop(consumer: AsyncConsumer, task: asyncio.Task[None]) -> None:
    # The SDK's receive task sleeps out its load-balancing interval (30 s) after
    # close(); cancelling it is the prompt way to end it.
    await consumer.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def fill(connection_string: str, events: int) -> None:
    async with AsyncProducer.from_connection_string(connection_string) as producer:
        sent = 0
        while sent < events:
            batch = await producer.create_batch(partition_id="0")
            while sent < events:
                try:
                    batch.add(EventData(BODY))
                except ValueError:
                    break
                sent += 1
            await producer.send_batch(batch)


async def throughput(connection_string: str, events: int, prefetch: int) -> float:
    consumer = AsyncConsumer.from_connection_string(connection_string, "$Default")
    received = 0
    first = last = 0.0
    done = asyncio.Event()
    expected = 0

    async def on_batch(_context: object, batch: list[EventData]) -> None:
        nonlocal received, first, last, expected
        for event in batch:
            if event.sequence_number != expected:
                raise AssertionError(f"expected {expected}, got {event.sequence_number}")
            expected += 1
        if received == 0:
            first = time.perf_counter()
        received += len(batch)
        last = time.perf_counter()
        if received >= events:
            done.set()

    task = asyncio.create_task(
        consumer.receive_batch(
            on_batch, partition_id="0", starting_position="-1", prefetch=prefetch, max_batch_size=prefetch
        )
    )
    await asyncio.wait_for(done.wait(), 600)
    await stop(consumer, task)
    return (received - 1) / (last - first)


async def latency(connection_string: str, samples: int) -> list[float]:
    """Send -> received through the async clients, one event at a time, in ms."""
    consumer = AsyncConsumer.from_connection_string(connection_string, "$Default")
    arrived: dict[int, float] = {}
    ready = asyncio.Event()

    async def on_event(_context: object, event: EventData | None) -> None:
        if event is not None:
            arrived[int(event.body_as_str())] = time.perf_counter()

    async def on_init(_context: object) -> None:
        ready.set()

    task = asyncio.create_task(
        consumer.receive(on_event, partition_id="1", starting_position="@latest", on_partition_initialize=on_init)
    )
    await asyncio.wait_for(ready.wait(), 30)
    sent: dict[int, float] = {}
    async with AsyncProducer.from_connection_string(connection_string) as producer:
        for i in range(-1, samples):
            await producer.send_event(EventData(str(i)), partition_id="1")
            sent[i] = time.perf_counter()
            deadline = time.monotonic() + 5
            while i not in arrived and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a dict
                await asyncio.sleep(0.0005)
    await stop(consumer, task)
    return [(arrived[i] - sent[i]) * 1000 for i in sent if i in arrived and i >= 0]


def instrument(emulator: Emulator) -> list[float]:
    """Record, per delivered event, the time from its transfer arriving to its delivery being written."""
    samples: list[float] = []
    arrived: dict[tuple[str, int], float] = {}
    current = [0.0]
    hub = emulator.hub
    assert hub is not None
    original_publish = hub.publish
    original_data = listener.AmqpClient.data_received
    original_pump = listener.AmqpClient._scheduled_pump

    def publish(partition: str, events: Any) -> Any:
        records = original_publish(partition, events)
        for record in records:
            arrived[(partition, record.sequence)] = current[0]
        return records

    def data_received(self: listener.AmqpClient, data: bytes) -> None:
        current[0] = time.perf_counter()
        original_data(self, data)

    def scheduled_pump(self: listener.AmqpClient) -> None:
        before = {id(c): c.next_sequence for c in self.consumers}
        original_pump(self)  # sends and writes to the socket
        now = time.perf_counter()
        for consumer in self.consumers:
            for sequence in range(before.get(id(consumer), consumer.next_sequence), consumer.next_sequence):
                start = arrived.pop((consumer.partition, sequence), None)
                if start is not None:
                    samples.append((now - start) * 1000)

    hub.publish = publish  # type: ignore[method-assign]
    listener.AmqpClient.data_received = data_received  # type: ignore[method-assign]
    listener.AmqpClient._scheduled_pump = scheduled_pump  # type: ignore[method-assign]
    return samples


async def external_throughput(events: int, prefetches: list[int]) -> None:
    """The same read against ``python -m statepump.emulator`` in its own process (as ``statepump emulator``)."""
    process = EmulatorProcess.on_free_ports()
    await asyncio.to_thread(process.start)
    try:
        connection_string = process.connection_string
        await fill(connection_string, events)
        for prefetch in prefetches:
            rate = await throughput(connection_string, events, prefetch)
            print(f"emulator in its own process, prefetch {prefetch}: {events} events, {rate:,.0f} events/s")
    finally:
        process.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--prefetch", type=int, nargs="+", default=[1000, 2000, 3000])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--external", action="store_true", help="also measure an emulator in its own process")
    args = parser.parse_args()
    emulator = Emulator(partitions=2)
    await emulator.start()
    try:
        await fill(emulator.connection_string, args.events)
        for prefetch in args.prefetch:
            rate = await throughput(emulator.connection_string, args.events, prefetch)
            print(f"emulator in the same process, prefetch {prefetch}: {args.events} events, {rate:,.0f} events/s")
        inside_samples = instrument(emulator)
        lat = await latency(emulator.connection_string, args.samples)
        inside = sorted(inside_samples)
        lat.sort()
        print(
            f"async send -> async receive (SDK polls every 50 ms), {len(lat)} samples: "
            f"p50 {statistics.median(lat):.2f} ms, p99 {lat[int(len(lat) * 0.99) - 1]:.2f} ms"
        )
        if inside:
            print(
                f"emulator's own share (transfer in -> transfer out): p50 {statistics.median(inside):.3f} ms, "
                f"max {inside[-1]:.3f} ms"
            )
    finally:
        await emulator.stop()
    if args.external:
        await external_throughput(args.events, args.prefetch)


if __name__ == "__main__":
    asyncio.run(main())
