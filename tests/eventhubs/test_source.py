"""EventHubSource against the in-process emulator, through the real SDK over loopback."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from statepump.core.events import Event
from statepump.emulator import Emulator
from statepump.eventhubs.failures import Backoff, HubRejected, PartitionStolen
from statepump.sources.eventhub import EventHubSource
from tests.eventhubs.hub import drain, numbered, put, read_until

pytestmark = pytest.mark.emulator

FAST = Backoff(initial=0.05, maximum=0.5, jitter=0.5, max_seconds=10.0)


def source_for(emulator: Emulator, made: list[EventHubSource], **kwargs: object) -> EventHubSource:
    kwargs.setdefault("max_wait", 0.5)
    kwargs.setdefault("retry", FAST)
    source = EventHubSource(connection_string=emulator.connection_string, **kwargs)  # type: ignore[arg-type]
    made.append(source)
    return source


async def test_ten_thousand_events_arrive_in_order_exactly_once(
    emulator: Emulator, sources: list[EventHubSource]
) -> None:
    bodies = numbered(10_000)
    await put(emulator.connection_string, bodies)
    source = source_for(emulator, sources, prefetch=1000, max_batch_size=500)
    events = await read_until(source, -1, 9_999)
    assert [e.sequence for e in events] == list(range(10_000))
    assert [e.body for e in events] == bodies
    assert all(len(batch) <= 500 for batch in [events[i : i + 500] for i in range(0, 10_000, 500)])
    assert source.duplicates_dropped == 0 and source.reconnects == 0
    assert source.last_enqueued is not None and source.last_enqueued[0] == 9_999


async def test_batches_respect_max_batch_size(emulator: Emulator, sources: list[EventHubSource]) -> None:
    await put(emulator.connection_string, numbered(1_000))
    source = source_for(emulator, sources, prefetch=1000, max_batch_size=64)
    sizes: list[int] = []
    async with asyncio.timeout(30):
        async for batch in source.read(-1):
            sizes.append(len(batch))
            if sum(sizes) >= 1_000:
                break
    assert sum(sizes) == 1_000 and max(sizes) <= 64


async def test_read_starts_right_after_an_exact_sequence_number(
    emulator: Emulator, sources: list[EventHubSource]
) -> None:
    await put(emulator.connection_string, numbered(5_000))
    source = source_for(emulator, sources)
    events = await read_until(source, 4_321, 4_999)
    assert events[0].sequence == 4_322
    assert [e.sequence for e in events] == list(range(4_322, 5_000))
    assert events[0].body == numbered(1, 4_322)[0]


async def test_live_tail_and_idle_beat(emulator: Emulator, sources: list[EventHubSource]) -> None:
    await put(emulator.connection_string, numbered(3))
    source = source_for(emulator, sources, max_wait=0.2)
    seen: list[Event] = []
    idle = 0
    async with asyncio.timeout(30):
        async for batch in source.read(2):
            if not batch:
                idle += 1
                if idle == 2:
                    await put(emulator.connection_string, numbered(2, 3))
                continue
            seen.extend(batch)
            if len(seen) >= 2:
                break
    assert idle >= 2
    assert [e.sequence for e in seen] == [3, 4]


async def test_event_fields_are_converted(emulator: Emulator, sources: list[EventHubSource]) -> None:
    from azure.eventhub import EventData
    from azure.eventhub.aio import EventHubProducerClient

    producer = EventHubProducerClient.from_connection_string(emulator.connection_string)
    async with producer:
        batch = await producer.create_batch(partition_key="tenant-7")
        event = EventData(b"\x00binary\xff")
        event.properties = {"kind": "test", "n": 3}
        batch.add(event)
        await producer.send_batch(batch)
    partition = "0" if emulator.partition_info("0")["last_enqueued_sequence_number"] == 0 else "1"
    source = source_for(emulator, sources, partition=partition)
    (got,) = await read_until(source, -1, 0)
    assert got.body == b"\x00binary\xff"
    assert got.partition_key == "tenant-7" and got.partition == partition
    assert dict(got.properties) == {"kind": "test", "n": 3}
    assert got.enqueued_time.utcoffset() is not None and got.offset


async def test_retention_moves_the_beginning_and_reads_start_at_the_earliest_kept(
    emulator: Emulator, sources: list[EventHubSource], caplog: pytest.LogCaptureFixture
) -> None:
    await put(emulator.connection_string, numbered(100))
    emulator.expire("0", 40)
    source = source_for(emulator, sources)
    bounds = await source.bounds()
    assert (bounds.first, bounds.last) == (40, 99)
    events = await read_until(source, -1, 99)
    assert events[0].sequence == 40
    # From inside the expired range: the gap is delivered (the fold reports it) and logged.
    caplog.set_level(logging.WARNING, logger="statepump")
    events = await read_until(source, 10, 99)
    assert events[0].sequence == 40 and [e.sequence for e in events] == list(range(40, 100))
    assert any("expected event 11" in r.getMessage() and "sent 40" in r.getMessage() for r in caplog.records)


async def test_bounds_of_an_empty_and_of_a_fully_expired_partition(
    emulator: Emulator, sources: list[EventHubSource]
) -> None:
    source = source_for(emulator, sources, partition="1")
    fresh = await source.bounds()
    assert (fresh.first, fresh.last, fresh.empty) == (0, -1, True)
    await put(emulator.connection_string, numbered(5), partition="1")
    emulator.expire("1", 5)
    expired = await source.bounds()
    assert expired.empty and expired.last == 4 and expired.first == 5


async def test_two_partitions_are_read_independently(emulator: Emulator, sources: list[EventHubSource]) -> None:
    await put(emulator.connection_string, numbered(300), partition="0")
    await put(emulator.connection_string, numbered(120, 1000), partition="1")
    zero = source_for(emulator, sources, partition="0")
    one = source_for(emulator, sources, partition="1")
    got0, got1 = await asyncio.gather(read_until(zero, -1, 299), read_until(one, 59, 119))
    assert [e.sequence for e in got0] == list(range(300)) and {e.partition for e in got0} == {"0"}
    assert [e.sequence for e in got1] == list(range(60, 120)) and {e.partition for e in got1} == {"1"}
    assert got1[0].body == numbered(1, 1060)[0]


async def test_a_higher_owner_level_steals_and_the_first_reader_reports(
    emulator: Emulator, sources: list[EventHubSource]
) -> None:
    """Decision: a stolen reader raises PartitionStolen instead of reconnecting (which would steal back)."""
    await put(emulator.connection_string, numbered(10))
    first = source_for(emulator, sources, owner_level=1)
    second = source_for(emulator, sources, owner_level=2)
    reading = first.read(-1)
    batch: list[Event] = []
    while not batch:
        batch = list(await anext(reading))
    assert [e.sequence for e in batch] == list(range(10))
    events = await read_until(second, -1, 9)
    assert [e.sequence for e in events] == list(range(10))
    with pytest.raises(PartitionStolen) as caught:
        await drain(reading)
    message = str(caught.value)
    assert "partition 0 of 127.0.0.1:" in message and "/hub" in message and "higher owner level" in message
    assert first.reconnects == 0
    # The thief keeps reading.
    await put(emulator.connection_string, numbered(1, 10))
    assert [e.sequence for e in await read_until(second, 9, 10)] == [10]


async def test_unknown_partition_is_reported_not_retried(emulator: Emulator, sources: list[EventHubSource]) -> None:
    source = source_for(emulator, sources, partition="7")
    with pytest.raises(HubRejected, match=r"partition 7 of 127\.0\.0\.1"):
        await source.bounds()
    with pytest.raises(HubRejected, match="does not exist"):
        await drain(source.read(-1))
    assert source.reconnects == 0


async def test_closing_ends_a_read_in_progress(emulator: Emulator, sources: list[EventHubSource]) -> None:
    source = source_for(emulator, sources, max_wait=30.0)
    batches: list[int] = []

    async def consume() -> None:
        async for batch in source.read(-1):
            batches.append(len(batch))

    task = asyncio.create_task(consume())
    await put(emulator.connection_string, numbered(1))
    async with asyncio.timeout(10):
        while not any(batches):
            await asyncio.sleep(0.02)
    await source.close()
    async with asyncio.timeout(5):
        await task
    assert [n for n in batches if n] == [1]  # (an empty beat says the hub kept the link)
    with pytest.raises(RuntimeError, match="closed"):
        await source.bounds()


async def test_server_closing_the_connection_is_survived(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A graceful close from the server (as the service's idle or forced closes) mid-stream."""
    caplog.set_level(logging.WARNING, logger="statepump.sources")
    hub = Emulator(port=0, partitions=1, data_dir=tmp_path / "data")
    await hub.start()
    source = EventHubSource(connection_string=hub.connection_string, max_wait=0.2, retry=FAST, prefetch=100)
    try:
        await put(hub.connection_string, numbered(500))
        reading = source.read(-1)
        got: list[Event] = []
        async with asyncio.timeout(30):
            while len(got) < 100:
                got.extend(await anext(reading))
        await hub.stop()  # closes every connection with an AMQP error, then listens again on the same port
        await hub.start()
        await put(hub.connection_string, numbered(100, 500))
        async with asyncio.timeout(60):
            while not got or got[-1].sequence < 599:
                got.extend(await anext(reading))
        await reading.aclose()
    finally:
        await source.close()
        await hub.stop()
    assert [e.sequence for e in got] == list(range(600))
    assert [e.body for e in got] == numbered(600)
    assert source.reconnects >= 1
    assert any("reconnect attempt 1" in r.getMessage() for r in caplog.records)


async def test_namespace_and_credential_build_clients_without_connecting() -> None:
    from azure.identity.aio import ClientSecretCredential

    from statepump.eventhubs.connection import HubEndpoint

    given = ClientSecretCredential("tenant", "client", "not-a-secret")
    endpoint = HubEndpoint(fully_qualified_namespace="ns.servicebus.windows.net", eventhub="orders", credential=given)
    client = endpoint.consumer("$Default")
    assert client.eventhub_name == "orders"
    await client.close()
    await endpoint.close()  # a given credential belongs to the caller: still usable, not replaced
    assert endpoint._credential is given
    await given.close()

    default = HubEndpoint(fully_qualified_namespace="ns.servicebus.windows.net", eventhub="orders")
    producer = default.producer()
    assert type(default._credential).__name__ == "DefaultAzureCredential"
    await producer.close()
    await default.close()
    assert default._credential is None
