"""An in-memory partition: the source for tests, demos and examples.

It behaves like the hub where the pump can tell: sequence numbers from 0 with
no holes, retention that moves the beginning (:meth:`MemorySource.expire`), a
read from below the beginning that starts silently at the earliest kept event,
live tailing, and empty batches after ``max_wait`` idle seconds.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from statepump.core.events import Event, PartitionBounds, canonical_properties, canonical_time


class MemorySource:
    """A live (or finite) in-memory partition.

    >>> import asyncio
    >>> src = MemorySource(live=False)
    >>> src.append({"op": "set", "path": "a", "value": 1}).sequence
    0
    >>> async def first_batch():
    ...     async for batch in src.read(-1):
    ...         return [e.sequence for e in batch]
    >>> asyncio.run(first_batch())
    [0]
    """

    kind = "memory"

    def __init__(
        self,
        *,
        partition: str = "0",
        live: bool = True,
        max_wait: float = 1.0,
        batch_size: int = 1000,
    ) -> None:
        self.partition = partition
        self.live = live
        self.max_wait = max_wait
        self.batch_size = batch_size
        self._events: list[Event] = []
        self._first = 0  # sequence number of self._events[0]
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._closed = False

    # --- writing (tests and demos) ---------------------------------------------

    def append(
        self,
        body: bytes | Mapping[str, Any] | list[Any],
        *,
        properties: Mapping[str, Any] | None = None,
        partition_key: str | None = None,
        enqueued_time: datetime | None = None,
    ) -> Event:
        """Append one event (a JSON-able body is encoded) and wake readers; thread-safe.

        Properties and the time are stored in the canonical form, as the hub would hand them back
        (see :class:`~statepump.core.events.Event`).
        """
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        with self._lock:
            n = self._first + len(self._events)
            event = Event(
                self.partition,
                n,
                str(n),
                canonical_time(enqueued_time or datetime.now(UTC)),
                partition_key,
                canonical_properties(properties),
                data,
            )
            self._events.append(event)
            waiters = list(self._waiters)
        for loop, flag in waiters:
            loop.call_soon_threadsafe(flag.set)
        return event

    def expire(self, before_sequence: int) -> None:
        """Drop events below ``before_sequence``, as the hub's retention would."""
        with self._lock:
            drop = max(0, min(before_sequence - self._first, len(self._events)))
            del self._events[:drop]
            self._first += drop

    # --- EventSource ---------------------------------------------------------------

    async def bounds(self) -> PartitionBounds:
        with self._lock:
            last = self._first + len(self._events) - 1
            when = self._events[-1].enqueued_time if self._events else None
            return PartitionBounds(self._first, last, when)

    @property
    def last_enqueued(self) -> tuple[int, datetime | None] | None:
        with self._lock:
            if not self._events:
                return None
            return self._events[-1].sequence, self._events[-1].enqueued_time

    async def read(self, after: int) -> AsyncIterator[Sequence[Event]]:
        flag = asyncio.Event()
        key = (asyncio.get_running_loop(), flag)
        with self._lock:
            self._waiters.add(key)
        try:
            position = after
            while not self._closed:
                flag.clear()
                with self._lock:
                    start = max(position + 1 - self._first, 0)
                    batch = self._events[start : start + self.batch_size]
                if batch:
                    position = batch[-1].sequence
                    yield batch
                    continue
                if not self.live:
                    return
                try:
                    await asyncio.wait_for(flag.wait(), self.max_wait)
                except TimeoutError:
                    yield []
        finally:
            with self._lock:
                self._waiters.discard(key)

    async def close(self) -> None:
        self._closed = True
        with self._lock:
            waiters = list(self._waiters)
        for loop, flag in waiters:
            loop.call_soon_threadsafe(flag.set)
