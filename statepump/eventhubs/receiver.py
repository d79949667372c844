"""One receive session on one partition, read as a bounded async queue.

The SDK's callback feeds the queue, so a slow reader stops the SDK from
fetching more (backpressure) instead of buffering without limit. Used by
:class:`~statepump.sources.eventhub.EventHubSource` and by
:func:`~statepump.eventhubs.send.send_events` to read its events back.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.eventhub import EventData
from azure.eventhub.aio import PartitionContext

from statepump.eventhubs.connection import HubEndpoint
from statepump.eventhubs.failures import QUOTA_TEXT
from statepump.eventhubs.transport import prompt_receive, quiet_processor_warnings, quiet_processor_warnings_about


@dataclass(frozen=True, slots=True)
class Received:
    """SDK events delivered by one callback, and the partition's newest event as the hub reported it."""

    events: list[EventData]
    last_enqueued: tuple[int, datetime | None] | None


class ReceiverClosed(Exception):
    """The session was closed by its owner (the item a waiting reader wakes up with)."""


quiet_processor_warnings(ReceiverClosed)
# A full consumer group is answered by moving on in the pool (EventHubSource), which logs it in one line.
quiet_processor_warnings_about(QUOTA_TEXT)


@dataclass(frozen=True, slots=True)
class Broken:
    """The session ended with ``error``; no more items follow."""

    error: BaseException


class PartitionReceiver:
    """One ``receive_batch`` session on one partition, read as an async queue.

    The SDK calls back with lists of up to ``max_batch_size`` events; the
    callback waits while ``queue_batches`` lists are unread, which stops the
    SDK from granting the hub more credit: memory stays within about
    ``prefetch + (queue_batches + 1) * max_batch_size`` events. An error ends
    the session with a :class:`Broken` item after the events received before it. The first item
    is an empty :class:`Received` when the link is kept before any event arrives (:attr:`held`).

    >>> PartitionReceiver.__name__
    'PartitionReceiver'
    """

    def __init__(
        self,
        endpoint: HubEndpoint,
        *,
        partition: str,
        after: int,
        consumer_group: str = "$Default",
        owner_level: int | None = None,
        prefetch: int = 3000,
        max_batch_size: int = 1000,
        queue_batches: int = 4,
        track_last_enqueued: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.partition = partition
        self.after = after
        self.consumer_group = consumer_group
        self._queue: asyncio.Queue[Received | Broken] = asyncio.Queue(maxsize=queue_batches)
        self._client = prompt_receive(endpoint.consumer(consumer_group))
        self._options: dict[str, Any] = {
            "partition_id": partition,
            # An int is a sequence number to the SDK; the string "-1" is its documented "start of stream".
            "starting_position": after if after >= 0 else "-1",
            "starting_position_inclusive": False,
            "owner_level": owner_level,
            "prefetch": prefetch,
            "max_batch_size": max_batch_size,
            "track_last_enqueued_event_properties": track_last_enqueued,
            # Idle callbacks are ignored, but they let close() end the SDK's task promptly.
            "max_wait_time": 0.1,
        }
        self._task: asyncio.Task[None] | None = None
        self._broken = False
        self._closing = False
        self._started = False  # the SDK got as far as a partition task (whose end close() awaits)
        #: The service attached the link and kept it: this receiver holds one of the consumer group's
        #: slots on the partition (announced to the reader by an empty :class:`Received`).
        self.held = False
        self._ended = asyncio.Event()

    def start(self) -> None:
        """Start receiving in the background."""
        self._task = asyncio.create_task(self._run(), name=f"eventhubs-receive-{self.partition}")

    async def _run(self) -> None:
        try:
            await self._client.receive_batch(
                self._on_batch,
                on_error=self._on_error,
                on_partition_initialize=self._on_initialize,
                on_partition_close=self._on_close,
                **self._options,
            )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the reader, who decides
            await self._break(exc)

    async def _on_batch(self, context: PartitionContext, events: list[EventData]) -> None:
        if self._closing:
            # Ending the SDK's partition task from inside is what lets its processor stop at
            # once; stopped from outside, it polls its tasks once a second.
            raise ReceiverClosed("the receive session was closed")
        if self._broken:
            return
        if not self.held:
            # The first callback, idle or not, comes only once the service kept the link
            # (PromptTransport): the receiver holds its slot in the consumer group.
            self.held = True
            if not events:
                await self._queue.put(Received([], None))
                return
        if not events:
            return
        props = context.last_enqueued_event_properties
        last = None
        if props and props.get("sequence_number") is not None:
            last = (int(props["sequence_number"]), props.get("enqueued_time"))
        await self._queue.put(Received(events, last))

    async def _on_initialize(self, context: PartitionContext) -> None:
        self._started = True

    async def _on_close(self, context: PartitionContext, reason: object) -> None:
        self._ended.set()

    async def _on_error(self, context: PartitionContext | None, error: Exception) -> None:
        await self._break(error)

    async def _break(self, error: BaseException) -> None:
        if self._broken:
            return
        self._broken = True
        await self._queue.put(Broken(error))

    async def get(self, timeout: float) -> Received | Broken | None:
        """The next item, or ``None`` after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def close(self) -> None:
        """Stop the SDK's receive and close its connection."""
        self._broken = True
        # Unblock a callback waiting for room, or it would hold the SDK's task; and wake a reader.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(Broken(ReceiverClosed("the receive session was closed")))
        self._closing = True
        if self._task is not None:
            # Give the next callback the chance to end the partition task, then cancel: the
            # SDK's close() alone would wait out a 30 s load-balancing sleep.
            if self._started:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ended.wait(), 0.5)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._client.close()
