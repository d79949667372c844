"""An event source that ends at a given sequence number: the snapshotter's view of the hub.

A run snapshots exactly the hub's last number as read at its start. The hub
keeps delivering whatever arrives later, in the same batches, so the view
cuts each batch at ``last`` and ends the read there; the pump then re-plans,
finds its target reached, and stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from statepump.events import Event, PartitionBounds
from statepump.sources import EventSource


class BoundedSource:
    """``source``, read no further than ``last``.

    >>> import asyncio
    >>> from statepump.sources.memory import MemorySource
    >>> hub = MemorySource()
    >>> for i in range(5):
    ...     _ = hub.append({"op": "set", "path": "n", "value": i})
    >>> async def numbers():
    ...     return [[e.sequence for e in batch] async for batch in BoundedSource(hub, 2).read(-1)]
    >>> asyncio.run(numbers())
    [[0, 1, 2]]
    """

    def __init__(self, source: EventSource, last: int) -> None:
        self.source = source
        self.last = last
        self.kind = source.kind

    @property
    def reconnects(self) -> int:
        """The wrapped source's reconnect count (the pump reports it)."""
        return int(getattr(self.source, "reconnects", 0))

    async def bounds(self) -> PartitionBounds:
        return await self.source.bounds()

    @property
    def last_enqueued(self) -> tuple[int, datetime | None] | None:
        return self.source.last_enqueued

    async def read(self, after: int) -> AsyncIterator[Sequence[Event]]:
        if after >= self.last:
            return
        # aclosing: ending early must close the hub's receiver now, not at garbage collection.
        async with contextlib.aclosing(self.source.read(after)) as batches:  # type: ignore[type-var]
            async for batch in batches:
                if batch and batch[-1].sequence >= self.last:
                    yield [e for e in batch if e.sequence <= self.last]
                    return
                yield batch

    async def close(self) -> None:
        await self.source.close()
