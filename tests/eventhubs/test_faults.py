"""Faults the real service produces, against a real emulator process: restarts, outages, the retry budget."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubProducerClient

from devservices import free_port
from devservices.emulator import EmulatorProcess
from statepump.core.events import Event
from statepump.emulator import Emulator
from statepump.eventhubs.failures import Backoff, HubUnreachable
from statepump.sources.eventhub import EventHubSource
from tests.eventhubs.hub import drain, numbered, put, read_until
from tests.fixtures.proxy import LoopbackProxy

pytestmark = pytest.mark.emulator

NOWHERE_KEY = "c2VjcmV0LWtleS1uZXZlci1sb2dnZWQ="


async def produce(
    hub: EmulatorProcess, batch_size: int, rate: float, sent: list[int], stop: asyncio.Event
) -> None:
    """Send numbered events to partition 0 at about ``rate`` events/s until ``stop`` is set, retrying a
    batch until the hub accepts it. ``sent`` gets the count after each accepted batch."""
    producer: EventHubProducerClient | None = None
    index = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        while not stop.is_set():
            await asyncio.sleep(max(0.0, started + index / rate - loop.time()))  # pacing, not a wait for a condition
            bodies = numbered(batch_size, index)
            try:
                if producer is None:
                    producer = EventHubProducerClient.from_connection_string(hub.connection_string, retry_total=0)
                batch = await producer.create_batch(partition_id="0")
                for body in bodies:
                    batch.add(EventData(body))
                await producer.send_batch(batch)
                index += len(bodies)
                sent.append(index)
            except Exception:
                # The hub is down: a fresh client once it is back (a lost ack may store a batch twice,
                # which is the hub's content, and the reader must deliver exactly that).
                if producer is not None:
                    with contextlib.suppress(Exception):
                        await producer.close()
                producer = None
                await asyncio.sleep(0.1)  # retry interval of a producer polling for the hub
    finally:
        if producer is not None:
            await producer.close()


async def test_emulator_killed_and_restarted_mid_stream_no_duplicate_no_gap(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="statepump.sources")
    hub = emulator_process(tmp_path / "data", partitions=1)
    source = EventHubSource(
        connection_string=hub.connection_string,
        prefetch=300,
        max_batch_size=100,
        max_wait=0.3,
        retry=Backoff(initial=0.05, maximum=0.5, max_seconds=60),
    )
    # The producer runs until the last kill is behind it and 1,000 more events went out, so every
    # kill falls while events flow however slowly a loaded machine reads them.
    at_least, kills, step = 10_000, 3, 2_000
    sent: list[int] = []
    delivered: list[Event] = []
    stop = asyncio.Event()
    producer = asyncio.create_task(produce(hub, 50, 1000.0, sent, stop))

    async def consume() -> None:
        async for batch in source.read(-1):
            delivered.extend(batch)
            if producer.done() and delivered and delivered[-1].sequence >= last_sequence[0]:
                return

    last_sequence = [1 << 62]
    consumer = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(240):
            for kill in range(1, kills + 1):
                # Kill while events flow: after the reader has seen more.
                while len(delivered) < kill * step and not consumer.done():
                    await asyncio.sleep(0.02)
                assert not consumer.done(), consumer
                assert not producer.done(), producer
                await asyncio.to_thread(hub.kill)
                await asyncio.to_thread(hub.start)
            after_kills = sent[-1] if sent else 0
            while not sent or sent[-1] < max(at_least, after_kills + 1_000):
                assert not producer.done(), producer
                await asyncio.sleep(0.02)
            stop.set()
            await producer
            total = sent[-1]
            last_sequence[0] = (await source.bounds()).last
            await consumer
    finally:
        producer.cancel()
        consumer.cancel()
        await source.close()

    numbers = [e.sequence for e in delivered]
    assert numbers == list(range(last_sequence[0] + 1)), "duplicates or gaps were delivered"
    assert last_sequence[0] + 1 >= total
    assert source.reconnects >= kills
    assert sum("reconnect attempt" in r.getMessage() for r in caplog.records) >= kills
    # What was delivered is exactly what the hub holds: a fresh reader sees the same events.
    fresh = EventHubSource(connection_string=hub.connection_string, max_wait=0.3)
    try:
        replay = await read_until(fresh, -1, last_sequence[0])
    finally:
        await fresh.close()
    assert [(e.sequence, e.body) for e in replay] == [(e.sequence, e.body) for e in delivered]
    assert set(numbered(total)) <= {e.body for e in delivered}


def unreachable_source(retry: Backoff) -> tuple[EventHubSource, int]:
    port = free_port()  # nothing listens there
    cs = (
        f"Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName=reader;SharedAccessKey={NOWHERE_KEY};"
        "EntityPath=hub;UseDevelopmentEmulator=true"
    )
    return EventHubSource(connection_string=cs, max_wait=0.2, retry=retry), port


async def test_unreachable_longer_than_the_budget_is_one_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    source, port = unreachable_source(Backoff(initial=0.05, maximum=0.2, max_seconds=1.5))
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        with pytest.raises(HubUnreachable) as from_bounds:
            await source.bounds()
        assert 1.5 <= loop.time() - started < 10
        started = loop.time()
        with pytest.raises(HubUnreachable) as from_read:
            await drain(source.read(-1))
        assert 1.5 <= loop.time() - started < 15
    finally:
        await source.close()
    for caught in (from_bounds, from_read):
        message = str(caught.value)
        assert f"partition 0 of 127.0.0.1:{port}/hub" in message
        assert "unreachable" in message and "retry budget 1.5 s" in message
        assert NOWHERE_KEY not in message
    assert source.reconnects >= 2
    assert NOWHERE_KEY not in caplog.text
    assert any("retry" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


async def test_budget_by_attempts() -> None:
    source, _ = unreachable_source(Backoff(initial=0.01, maximum=0.02, max_attempts=2, max_seconds=None))
    try:
        with pytest.raises(HubUnreachable, match="3 failed attempts"):
            await source.bounds()
    finally:
        await source.close()


async def test_hub_down_at_start_within_the_budget_comes_up(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="statepump.sources")
    hub = emulator_process(tmp_path / "data", partitions=1)
    await put(hub.connection_string, numbered(25))
    await asyncio.to_thread(hub.stop)
    source = EventHubSource(
        connection_string=hub.connection_string,
        max_wait=0.2,
        retry=Backoff(initial=0.05, maximum=0.3, max_seconds=60),
    )
    try:
        reading = asyncio.create_task(read_until(source, -1, 24, timeout=90))
        async with asyncio.timeout(30):
            while not any("reconnect attempt 2" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.02)
        await asyncio.to_thread(hub.start)
        events = await reading
        bounds = await source.bounds()
    finally:
        await source.close()
    assert [e.sequence for e in events] == list(range(25))
    assert [e.body for e in events] == numbered(25)
    assert (bounds.first, bounds.last) == (0, 24)
    assert source.reconnects >= 2


async def read_into(source: EventHubSource, events: list[Event]) -> None:
    async for batch in source.read(-1):
        events.extend(batch)


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def reconnect_warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum("reconnect attempt" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


@contextlib.asynccontextmanager
async def lost_while_a_session_opens(
    emulator: Emulator, budget: float
) -> AsyncIterator[tuple[LoopbackProxy, EventHubSource, list[Event], asyncio.Task[None]]]:
    """A source reading ``emulator`` through a proxy, past its first 10 events, when the proxy cuts
    every connection and admits one more.

    The SDK's event processor opens one connection to claim the partition and
    another for the receive link: the next session claims, then fails to open
    its link; the sessions after it fail at the claim. Yields the proxy, the
    source (``budget`` seconds of retries), the events it delivered, and the
    task reading them.
    """
    await put(emulator.connection_string, numbered(10))
    proxy = LoopbackProxy(emulator.port)
    port = await proxy.start()
    source = EventHubSource(
        connection_string=emulator.connection_string.replace(f":{emulator.port}/", f":{port}/"),
        max_wait=0.2,
        retry=Backoff(initial=0.05, maximum=0.2, max_seconds=budget),
    )
    events: list[Event] = []
    reading = asyncio.create_task(read_into(source, events))
    try:
        await until(lambda: len(events) == 10)
        proxy.admit = 1
        await proxy.cut()
        yield proxy, source, events, reading
    finally:
        reading.cancel()
        await source.close()
        await proxy.close()


async def test_a_hub_lost_while_a_session_opens_is_retried_counted_and_resumed(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="statepump.sources")
    async with lost_while_a_session_opens(emulator, budget=60) as (proxy, source, events, _):
        await until(lambda: reconnect_warnings(caplog) >= 3)
        refused_while_down = proxy.refused
        proxy.admit = None
        await put(emulator.connection_string, numbered(10, 10))
        await until(lambda: len(events) == 20)
    assert [e.sequence for e in events] == list(range(20))
    # Each failed open is one attempt of the read's own backoff, counted and logged, not a silent spin.
    assert source.reconnects >= 3
    assert refused_while_down <= reconnect_warnings(caplog) + 1, refused_while_down


async def test_a_hub_lost_while_a_session_opens_ends_in_one_clear_error_after_the_budget(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="statepump.sources")
    async with lost_while_a_session_opens(emulator, budget=1.5) as (proxy, _, _, reading):
        with pytest.raises(HubUnreachable, match=r"retry budget 1\.5 s"):
            async with asyncio.timeout(30):
                await reading
    assert proxy.refused <= reconnect_warnings(caplog) + 1, proxy.refused
