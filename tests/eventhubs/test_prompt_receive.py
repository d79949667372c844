"""PromptTransport's receive path: arrivals wake the callback, bursts stay batches, the buffer stays bounded.

The wake-up tests run the real SDK consumer's callback loop on an event loop
whose clock never moves, so no timer (the SDK's 50 ms poll, any timeout)
can fire: whatever is delivered there was delivered by the arrival signal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

import pytest
from azure.eventhub import EventData
from azure.eventhub._pyamqp.message import Message
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient
from azure.eventhub.exceptions import ConnectError

from statepump.core.events import Event
from statepump.emulator import Emulator
from statepump.eventhubs.connection import HubEndpoint
from statepump.eventhubs.failures import Backoff
from statepump.eventhubs.transport import PromptTransport, arrivals, prompt_receive
from statepump.sources.eventhub import EventHubSource
from tests.eventhubs.hub import numbered, put, stop_receiving

T = TypeVar("T")
OFFLINE = (
    "Endpoint=sb://127.0.0.1:9/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub;UseDevelopmentEmulator=true"
)
#: More loop turns than a wake-up needs, far fewer than would let any real time pass.
TURNS = 50


class StillLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock never moves: timers never fire, only ready callbacks and wake-ups run."""

    def time(self) -> float:
        return 0.0


def on_still_loop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=StillLoop) as runner:
        return runner.run(main())


async def turns_until(condition: Callable[[], bool], turns: int = TURNS) -> int:
    """Yield the loop until ``condition`` holds; the number of turns it took (fails after ``turns``)."""
    for turn in range(turns):
        if condition():
            return turn
        await asyncio.sleep(0)
    raise AssertionError(f"not within {turns} loop turns")


def message(index: int) -> Message:
    return Message(data=[b"%d" % index])


class Offline:
    """A real SDK consumer of a prompt client (never connected) whose callback loop a test drives."""

    def __init__(self, on_events: Callable[[Any], Awaitable[None]]) -> None:
        self.client: EventHubConsumerClient = prompt_receive(HubEndpoint(connection_string=OFFLINE).consumer())
        self.consumer: Any = self.client._create_consumer(
            "$Default", "0", "-1", on_event_received=cast(Any, on_events), prefetch=10
        )
        self.task: asyncio.Task[None] | None = None

    def start(self, max_batch_size: int, max_wait_time: float | None = None) -> None:
        self.consumer._callback_task_run = True
        self.consumer._last_callback_called_time = 0.0
        self.task = asyncio.create_task(
            PromptTransport._callback_task(self.consumer, True, max_batch_size, max_wait_time)
        )

    async def arrive(self, *indexes: int) -> None:
        for index in indexes:
            await PromptTransport.message_received_async(self.consumer, message(index))

    async def stop(self) -> None:
        assert self.task is not None
        self.consumer._callback_task_run = False
        arrivals(self.consumer).event.set()
        await turns_until(self.task.done)
        await self.client.close()


def bodies(batches: list[list[EventData]]) -> list[list[int]]:
    return [[int(e.body_as_str()) for e in batch] for batch in batches]


def test_an_arrival_wakes_the_waiting_callback_task() -> None:
    async def main() -> list[list[int]]:
        batches: list[list[EventData]] = []

        async def on_events(events: list[EventData]) -> None:
            batches.append(events)

        offline = Offline(on_events)
        offline.start(max_batch_size=100)
        for _ in range(TURNS):  # the task is waiting now, with an empty buffer
            await asyncio.sleep(0)
        assert batches == []
        await offline.arrive(7)
        await turns_until(lambda: bool(batches))
        await offline.arrive(8)
        await turns_until(lambda: len(batches) == 2)
        await offline.stop()
        return bodies(batches)

    assert on_still_loop(main) == [[7], [8]]


def test_a_burst_is_one_batch_and_batches_keep_their_size_limit() -> None:
    async def main() -> list[list[int]]:
        batches: list[list[EventData]] = []

        async def on_events(events: list[EventData]) -> None:
            batches.append(events)

        offline = Offline(on_events)
        offline.start(max_batch_size=4)
        await offline.arrive(0)
        for index in range(1, 10):  # the reader keeps adding, one message a turn
            await asyncio.sleep(0)
            await offline.arrive(index)
        await turns_until(lambda: sum(map(len, batches)) == 10)
        await offline.stop()
        return bodies(batches)

    assert on_still_loop(main) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_the_stop_signal_ends_the_callback_task_without_a_timer() -> None:
    async def main() -> bool:
        async def on_events(events: list[EventData]) -> None:
            return None

        offline = Offline(on_events)
        offline.start(max_batch_size=10)
        for _ in range(TURNS):
            await asyncio.sleep(0)
        assert offline.task is not None and not offline.task.done()
        await offline.stop()  # fails unless the task ends within TURNS turns
        return offline.task.done()

    assert on_still_loop(main)


async def test_idle_callbacks_still_come_every_max_wait_time() -> None:
    calls: list[list[EventData]] = []

    async def on_events(events: list[EventData]) -> None:
        calls.append(events)

    offline = Offline(on_events)
    offline.start(max_batch_size=10, max_wait_time=0.05)
    async with asyncio.timeout(10):
        while len(calls) < 3:
            await asyncio.sleep(0.01)
    await offline.arrive(1)
    async with asyncio.timeout(10):
        while not any(calls):
            await asyncio.sleep(0.01)
    await offline.stop()
    assert calls[:3] == [[], [], []]
    assert bodies([c for c in calls if c]) == [[1]]


@pytest.mark.emulator
async def test_a_full_buffer_stops_reading_until_the_callback_takes_a_batch(emulator: Emulator) -> None:
    """Backpressure: with the callback stuck, the SDK holds at most its buffer limit plus one pass of credit."""
    total, prefetch, max_batch = 3_000, 200, 50
    await put(emulator.connection_string, numbered(total))
    client = prompt_receive(HubEndpoint(connection_string=emulator.connection_string).consumer())
    release = asyncio.Event()
    received: list[EventData] = []

    async def on_events(events: list[EventData]) -> None:
        await release.wait()
        received.extend(events)

    consumer = client._create_consumer("$Default", "0", "-1", on_event_received=cast(Any, on_events), prefetch=prefetch)
    receiving = asyncio.create_task(consumer.receive(batch=True, max_batch_size=max_batch, max_wait_time=None))
    signals = arrivals(consumer)
    try:
        async with asyncio.timeout(30):
            while signals.full < 5:  # the receive task found the buffer full five passes running
                await asyncio.sleep(0.01)
        assert signals.count <= max_batch + prefetch
        assert len(consumer._message_buffer) + max_batch >= signals.count
        release.set()
        async with asyncio.timeout(60):
            while len(received) < total:
                await asyncio.sleep(0.01)
        assert [e.sequence_number for e in received] == list(range(total))
    finally:
        await stop_receiving(receiving, consumer, client)


@pytest.mark.emulator
async def test_live_sends_arrive_exactly_once_in_order(emulator: Emulator, sources: list[EventHubSource]) -> None:
    source = EventHubSource(
        connection_string=emulator.connection_string, max_wait=0.2, retry=Backoff(initial=0.05, maximum=0.5)
    )
    sources.append(source)
    seen: list[Event] = []
    sent = 0
    async with EventHubProducerClient.from_connection_string(emulator.connection_string) as producer:
        async with asyncio.timeout(60):
            async for batch in source.read(-1):
                seen.extend(batch)
                if sent < 200 and len(seen) >= sent:  # the next send once everything sent so far arrived
                    events = await producer.create_batch(partition_id="0")
                    for body in numbered(10, sent):
                        events.add(EventData(body))
                    await producer.send_batch(events)
                    sent += 10
                if len(seen) >= 200:
                    break
    assert [e.sequence for e in seen] == list(range(200))
    assert [e.body for e in seen] == numbered(200)
    assert source.duplicates_dropped == 0 and source.reconnects == 0


async def test_a_closed_consumer_is_not_opened_again_by_its_receive_task() -> None:
    """Closed by its owner while its callback is blocked, a consumer must not reconnect on every pass."""

    async def on_events(events: list[EventData]) -> None:
        raise AssertionError("nothing to deliver")

    offline = Offline(on_events)
    opened: list[bool] = []

    async def open_again() -> None:
        opened.append(True)
        raise AssertionError("_open() called on a closed consumer")

    offline.consumer._open = open_again
    await offline.consumer.close()
    offline.consumer._callback_task_run = True
    async with asyncio.timeout(10):
        await PromptTransport._receive_task(offline.consumer, 10)
    assert opened == []
    assert offline.consumer._callback_task_run is False
    await offline.client.close()


async def test_a_consumer_that_cannot_connect_raises_rather_than_ending_as_if_closed() -> None:
    """A failed open is an error for the reader's retry budget: ending quietly made the SDK's event
    processor call receive() again at once, a silent reconnect loop."""

    async def on_events(events: list[EventData]) -> None:
        raise AssertionError("nothing to deliver")

    offline = Offline(on_events)  # nothing listens on its port
    offline.consumer._callback_task_run = True
    try:
        with pytest.raises(ConnectError, match=r"'127\.0\.0\.1', 9\)"):
            async with asyncio.timeout(10):
                await PromptTransport._receive_task(offline.consumer, 10)
        assert offline.consumer._callback_task_run is False
        assert offline.consumer.closed is False
    finally:
        await offline.client.close()
