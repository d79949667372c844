"""Real-SDK clients for the emulator tests: receive a known number of events, or the first error."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient

from statepump.emulator import Emulator, messages, wire


@dataclass
class Reception:
    events: list[EventData] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)


class Receiver:
    """An async ``receive_batch`` running in the background until :meth:`stop`."""

    def __init__(
        self,
        connection_string: str,
        partition: str,
        *,
        starting_position: str | int | datetime = "-1",
        inclusive: bool = False,
        consumer_group: str = "$Default",
        owner_level: int | None = None,
        track_last: bool = False,
        prefetch: int = 300,
    ) -> None:
        self.client = EventHubConsumerClient.from_connection_string(connection_string, consumer_group, retry_total=0)
        self.reception = Reception()
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()
        self._kwargs: dict[str, Any] = {
            "partition_id": partition,
            "starting_position": starting_position,
            "starting_position_inclusive": inclusive,
            "owner_level": owner_level,
            "track_last_enqueued_event_properties": track_last,
            "prefetch": prefetch,
            "max_batch_size": prefetch,
        }
        self._task: asyncio.Task[None] | None = None

    async def _on_batch(self, context: Any, events: list[EventData]) -> None:
        self.reception.events.extend(events)
        self.reception.contexts.append(context)
        self.changed.set()

    async def _on_error(self, _context: Any, error: Exception) -> None:
        self.reception.errors.append(error)
        self.changed.set()

    async def _on_init(self, _context: Any) -> None:
        self.ready.set()

    async def start(self) -> Receiver:
        self._task = asyncio.create_task(
            self.client.receive_batch(
                self._on_batch, on_error=self._on_error, on_partition_initialize=self._on_init, **self._kwargs
            )
        )
        return self

    async def wait_for(self, count: int = 0, *, errors: int = 0, timeout: float = 15.0) -> Reception:
        """Wait until ``count`` events (or ``errors`` errors) arrived; fail with what did arrive."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.reception.events) < count or len(self.reception.errors) < errors:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    f"wanted {count} events and {errors} errors within {timeout}s, got "
                    f"{len(self.reception.events)} events and errors {self.reception.errors!r}"
                )
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return self.reception

    async def stop(self) -> None:
        # The SDK's receive task sleeps out its load-balancing interval after
        # close(); cancelling it first ends it promptly.
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.client.close()


@contextlib.asynccontextmanager
async def receiving(connection_string: str, partition: str, **kwargs: Any) -> AsyncIterator[Receiver]:
    receiver = await Receiver(connection_string, partition, **kwargs).start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def receive(
    connection_string: str, partition: str, count: int, *, timeout: float = 15.0, **kwargs: Any
) -> list[EventData]:
    """Exactly the first ``count`` events from the position given."""
    async with receiving(connection_string, partition, **kwargs) as receiver:
        reception = await receiver.wait_for(count, timeout=timeout)
    return reception.events[:count]


async def first_error(connection_string: str, partition: str, **kwargs: Any) -> Exception:
    async with receiving(connection_string, partition, **kwargs) as receiver:
        reception = await receiver.wait_for(errors=1)
    return reception.errors[0]


async def send(
    producer: EventHubProducerClient,
    bodies: Sequence[str | bytes],
    *,
    partition: str | None = None,
    partition_key: str | None = None,
) -> None:
    """Send ``bodies`` as one batch."""
    await producer.send_batch([EventData(b) for b in bodies], partition_id=partition, partition_key=partition_key)


def enqueue(emulator: Emulator, partition: str, *bodies: str) -> None:
    """Put events straight into a partition, for tests about receiving (sends are tested on their own:
    an SDK producer costs about 1.5 s of its own pacing to open)."""
    assert emulator.hub is not None
    raw = [wire.encode_message(wire.Message(data=[b.encode()])) for b in bodies]
    emulator.hub.publish(partition, [messages.parse_event(r) for r in raw])


async def attached(emulator: Emulator, partition: str, count: int = 1, timeout: float = 10.0) -> None:
    """Wait until ``count`` receivers are attached to ``partition`` (a receiver at ``@latest``
    only sees what is sent after its link is attached, which is after the SDK says it started)."""
    assert emulator.hub is not None
    deadline = asyncio.get_running_loop().time() + timeout
    while emulator.hub.receivers(partition) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {count} receivers attached to partition {partition} within {timeout}s")
        await asyncio.sleep(0.01)


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds (checked every 10 ms), or fail saying ``what`` did not happen."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.01)


def bodies(events: Sequence[EventData]) -> list[str]:
    return [e.body_as_str() for e in events]
