"""The two values everything else passes around: an :class:`Event` read from a
partition, and a :class:`Version` of the state after applying events.

Both are frozen: a published version is shared by every reader thread, so
nothing may change it after publication.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

S = TypeVar("S")

#: The sequence number of a version to which nothing has been applied.
NOTHING_APPLIED = -1


@dataclass(frozen=True, slots=True)
class Event:
    """One event of one partition, whichever source it came from.

    ``sequence`` is the partition's sequence number (0, 1, 2, ... with no
    holes on the service); ``offset`` is the service's opaque string offset.

    >>> from datetime import datetime, timezone
    >>> e = Event("0", 7, "7", datetime(2026, 1, 1, tzinfo=timezone.utc), None, {}, b"{}")
    >>> e.sequence
    7
    """

    partition: str
    sequence: int
    offset: str
    enqueued_time: datetime
    partition_key: str | None
    properties: Mapping[str, Any]
    body: bytes


class EventSlots:
    """An object with :class:`Event`'s slots and none of its freezing: the
    fast way to build an ``Event``, for the readers' hot loops.

    Assigning a frozen slotted instance's fields costs an
    ``object.__setattr__`` call per field (about 0.45 µs per event, as much as
    the rest of turning a Capture record into an event). Instead, fill every
    slot of one of these with plain stores, then assign
    ``__class__ = Event``: the two classes have the same slots in the same
    order, which is exactly when Python allows that, and the object is from
    then on an ordinary, frozen ``Event``. :func:`new_event` does this; a loop
    that makes an event per record may inline it (saving the call).
    """

    __slots__ = Event.__slots__
    # Event's field annotations, shared rather than written twice (filled only through ``Any``).
    __annotations__ = Event.__annotations__


def new_event(
    partition: str,
    sequence: int,
    offset: str,
    enqueued_time: datetime,
    partition_key: str | None,
    properties: Mapping[str, Any],
    body: bytes,
    /,
) -> Event:
    """``Event(partition, sequence, ...)``, built faster, for the readers' hot loops.

    The result is an ordinary :class:`Event` (same type, frozen, equal to the
    one the constructor makes); like the constructor, it checks nothing.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> new_event("0", 7, "7", t, None, {}, b"{}") == Event("0", 7, "7", t, None, {}, b"{}")
    True
    """
    event: Any = EventSlots()
    event.partition = partition
    event.sequence = sequence
    event.offset = offset
    event.enqueued_time = enqueued_time
    event.partition_key = partition_key
    event.properties = properties
    event.body = body
    event.__class__ = Event
    return event  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Version(Generic[S]):
    """An immutable state and the position in the partition it stands for.

    ``sequence`` is the sequence number of the last applied event, or ``-1``
    when nothing has been applied (then ``state`` is the reducer's initial
    state and both times are ``None``).

    >>> from pyrsistent import pmap
    >>> Version(pmap(), -1, None, "0").sequence
    -1
    """

    state: S
    sequence: int
    enqueued_time: datetime | None
    partition: str
    applied_at: datetime | None = field(default=None, compare=False)

    @property
    def empty(self) -> bool:
        """True when no event has been applied yet."""
        return self.sequence == NOTHING_APPLIED


@dataclass(frozen=True, slots=True)
class PartitionBounds:
    """What a source holds of a partition right now.

    ``first`` is the earliest sequence number still readable (the service's
    *beginning*), ``last`` the newest one; a source holding nothing has
    ``last == first - 1`` (a never-written partition: ``first=0, last=-1``).
    Retention moves ``first`` forward at any time, so these are a reading,
    not a promise.
    """

    first: int
    last: int
    last_enqueued_time: datetime | None = None

    @property
    def empty(self) -> bool:
        return self.last < self.first
