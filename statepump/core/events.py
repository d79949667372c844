"""The two values everything else passes around: an :class:`Event` read from a
partition, and a :class:`Version` of the state after applying events.

Both are frozen: a published version is shared by every reader thread, so
nothing may change it after publication.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

S = TypeVar("S")

#: The sequence number of a version to which nothing has been applied.
NOTHING_APPLIED = -1


@dataclass(frozen=True, slots=True)
class Event:
    """One event of one partition, whichever source it came from.

    ``sequence`` is the partition's sequence number (0, 1, 2, ... with no
    holes on the service); ``offset`` is the service's opaque string offset.

    Every source (hub, Capture, memory, relay) gives the *canonical* form, the
    one that survives Capture's Avro union (``long``, ``double``, ``string``,
    ``bytes``, ``null``), so that a reducer reading properties or times folds
    the same on a node that caught up from Capture as on one that read the hub
    (:func:`canonical_properties`, :func:`canonical_time`):

    * ``enqueued_time``: aware, UTC, to the millisecond (what the service
      keeps; Capture records without ``x-opt-enqueued-time`` hold seconds only);
    * property names are text; values are ``int`` (64-bit signed; a boolean is
      ``0``/``1``, as Capture stores it), ``float``, ``str``, ``bytes`` or
      ``None``; a time is ``int`` milliseconds since the epoch; bytes that are
      valid UTF-8 are ``str`` (the SDK's decoder hands AMQP strings over as
      bytes, so the hub cannot tell them apart); anything else is its text.

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


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def canonical_value(value: Any) -> int | float | str | bytes | None:
    """One property value in the canonical form (see :class:`Event`).

    >>> [canonical_value(v) for v in (True, 2**70, b"ok", b"\\xff", 1.5, None)]
    [1, '1180591620717411303424', 'ok', b'\\xff', 1.5, None]
    """
    kind = type(value)
    if kind is str or kind is float or value is None:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return int(value)
    if kind is int:
        return value if _INT64_MIN <= value <= _INT64_MAX else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    if isinstance(value, datetime):
        when = value if value.utcoffset() is not None else value.replace(tzinfo=UTC)
        return (when - _EPOCH) // _MS
    if isinstance(value, int | float):  # subclasses (an IntEnum, numpy scalars)
        return canonical_value(int(value) if isinstance(value, int) else float(value))
    return str(value)


def canonical_properties(properties: Mapping[Any, Any] | None) -> dict[str, Any]:
    """Application properties in the canonical form: text names, canonical values.

    >>> canonical_properties({b"n": True, "t": b"text"})
    {'n': 1, 't': 'text'}
    """
    if not properties:
        return {}
    return {
        (k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): canonical_value(v)
        for k, v in properties.items()
    }


def needs_canonical(properties: Mapping[Any, Any]) -> bool:
    """Whether :func:`canonical_properties` would change ``properties`` (a cheap check for hot loops)."""
    for key, value in properties.items():
        kind = type(value)
        if type(key) is not str or not (kind is str or kind is float or value is None or kind is int):
            return True
        if kind is int and not _INT64_MIN <= value <= _INT64_MAX:
            return True
    return False


def canonical_time(when: datetime) -> datetime:
    """An enqueued time in the canonical form: aware, UTC, whole milliseconds.

    >>> canonical_time(datetime(2026, 1, 1, 12, 0, 0, 123456)).isoformat()
    '2026-01-01T12:00:00.123000+00:00'
    """
    if when.utcoffset() is None:
        when = when.replace(tzinfo=UTC)
    elif when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    micros = when.microsecond
    return when if micros % 1000 == 0 else when.replace(microsecond=micros - micros % 1000)


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
    #: The sequence each path last changed at (:class:`statepump.core.lastchanged.LastChanged`), for a
    #: reducer that keeps it (``config``: ``if_sequence``); ``None`` for the others. Part of every snapshot.
    changed: Any = field(default=None, compare=False)

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
