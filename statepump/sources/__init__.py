"""Event sources: where events come from.

Every adapter (in-memory, Event Hubs, Capture files) implements
:class:`EventSource` and passes the one conformance suite in
``tests/sources/conformance.py``.

The contract, which the pump relies on:

* ``read(after)`` yields *batches* (lists) of events in ascending sequence
  order, starting at the first event whose sequence number is greater than
  ``after``. A source never reorders or repeats events within one ``read``
  call. It does **not** promise that the first event is ``after + 1``:
  retention may have removed it, and the fold, not the source, detects that
  gap.
* A *finite* source (Capture, a finished in-memory log) ends the iteration
  when it has nothing more; a *live* source (Event Hubs) never ends on its
  own and may yield an empty batch when it has waited ``max_wait`` seconds
  without an event, so that its caller can refresh lag and readiness.
* ``bounds()`` reads the source's current first and last sequence numbers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from statepump.core.events import Event, PartitionBounds


@runtime_checkable
class EventSource(Protocol):
    """One partition's events, from one place."""

    #: A short name for logs and metrics: ``"hub"``, ``"capture"``, ``"memory"``.
    kind: str

    async def bounds(self) -> PartitionBounds:
        """The first and last sequence numbers the source holds now."""
        ...

    def read(self, after: int) -> AsyncIterator[Sequence[Event]]:
        """Batches of events with sequence numbers greater than ``after``."""
        ...

    @property
    def last_enqueued(self) -> tuple[int, datetime | None] | None:
        """The partition's newest sequence number and its time as last seen
        while reading (for lag), or ``None`` when not known yet."""
        ...

    async def close(self) -> None:
        """Release connections; a closed source may not be read again."""
        ...
