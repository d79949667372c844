"""The reference a fault test compares against: everything the hub holds, folded from scratch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from azure.eventhub import EventData, EventHubProducerClient
from pyrsistent import thaw

from statepump.core.configops import config
from statepump.core.events import Event
from statepump.core.fold import fold
from statepump.core.reducer import Reducer
from statepump.sources.eventhub import EventHubSource
from statepump.stores.snapshots import initial_version


async def read_everything(connection_string: str, partition: str = "0", timeout: float = 60.0) -> list[Event]:
    """Every event of the partition, read through the real SDK from its beginning to its last."""
    source = EventHubSource(connection_string=connection_string, partition=partition)
    try:
        bounds = await source.bounds()
        events: list[Event] = []
        if bounds.last < bounds.first:
            return events
        async with asyncio.timeout(timeout):
            async for batch in source.read(bounds.first - 1):
                events.extend(batch)
                if events and events[-1].sequence >= bounds.last:
                    return events
        raise AssertionError("the hub read ended early")
    finally:
        await source.close()


def replay(events: Sequence[Event], reducer: Reducer[Any] = config) -> Any:
    """The JSON form of the fold of ``events`` (which must start at 0 and be contiguous)."""
    assert [e.sequence for e in events] == list(range(len(events))), "the hub itself has a gap or a duplicate"
    result = fold(initial_version(reducer, "0"), events, reducer, applied_at=datetime.now(UTC))
    assert result.stopped is None and not result.skipped
    return thaw(result.version.state)


def send(connection_string: str, bodies: Sequence[bytes], partition: str = "0") -> None:
    """Send ``bodies`` to ``partition`` in as few batches as fit (blocking SDK client)."""
    producer = EventHubProducerClient.from_connection_string(connection_string, retry_total=0)
    with producer:
        batch = producer.create_batch(partition_id=partition)
        for body in bodies:
            try:
                batch.add(EventData(body))
            except ValueError:
                producer.send_batch(batch)
                batch = producer.create_batch(partition_id=partition)
                batch.add(EventData(body))
        if len(batch):
            producer.send_batch(batch)
