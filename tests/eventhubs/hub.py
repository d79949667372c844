"""Test helpers: put events into an emulator partition through the SDK, and read a source until a point."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient

from statepump.core.events import Event
from statepump.sources.eventhub import EventHubSource


async def put(connection_string: str, bodies: Sequence[bytes], partition: str = "0") -> None:
    """Send ``bodies`` to ``partition`` in as few batches as fit."""
    producer = EventHubProducerClient.from_connection_string(connection_string)
    async with producer:
        batch = await producer.create_batch(partition_id=partition)
        for body in bodies:
            try:
                batch.add(EventData(body))
            except ValueError:
                await producer.send_batch(batch)
                batch = await producer.create_batch(partition_id=partition)
                batch.add(EventData(body))
        if len(batch):
            await producer.send_batch(batch)


def numbered(count: int, start: int = 0) -> list[bytes]:
    return [b'{"op":"set","path":"k%d","value":%d}' % (i, i) for i in range(start, start + count)]


async def read_until(source: EventHubSource, after: int, last: int, timeout: float = 60.0) -> list[Event]:
    """Everything ``source.read(after)`` delivers until event ``last`` arrived (fails after ``timeout``)."""
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        async for batch in source.read(after):
            events.extend(batch)
            if events and events[-1].sequence >= last:
                return events
    raise AssertionError("the read ended")


async def drain(batches: AsyncIterator[Sequence[Event]], timeout: float = 30.0) -> int:
    """Read ``batches`` to their end (a live read ends only by raising); the number of events seen."""
    seen = 0
    async with asyncio.timeout(timeout):
        async for batch in batches:
            seen += len(batch)
    return seen


async def stop_receiving(receiving: asyncio.Task[Any], consumer: Any, client: EventHubConsumerClient) -> None:
    """Cancel a raw SDK ``consumer.receive`` task and close its consumer and client."""
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):  # still receiving until cancelled, not ended on its own
        await receiving
    await consumer.close()
    await client.close()
