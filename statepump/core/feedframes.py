"""The replication feed's framing: the events a relay forwards, as bytes and back, without I/O.

``GET /v1/events?after=N`` answers with a stream of *frames* (the body of a
chunked HTTP response). Each frame is::

    length   u32 big-endian   bytes of the payload (at most ``max_frame``)
    crc32    u32 big-endian   zlib.crc32 of the payload
    payload  msgpack          an array whose first item says what it is

    [0, PROTOCOL, partition, after]                          HELLO, first and once
    [1, sequence, offset, enqueued_us, key, properties, body] EVENT
    [2, sequence, ready, reason]                             STATUS (also the keep-alive)

``enqueued_us`` is the enqueued time in integer microseconds since the Unix
epoch (UTC): exact for every ``datetime`` the sources produce, where msgpack's
own timestamp type would come back naive. ``properties`` is a msgpack map
with text keys; a value msgpack has no type for (a ``datetime``, a UUID an
AMQP sender set) travels as an ext type (a time) or its text.

Why msgpack and not JSON lines or SSE: an event's body is bytes (any bytes,
not only UTF-8) and so may be a property, and both must arrive unchanged; JSON
would need base64 (a third bigger, and a decode per event) and cannot tell
bytes from text. msgpack keeps bytes, text, integers, floats and booleans
apart, is already a dependency (the snapshot codec), and packs an event in
about a microsecond. The length prefix lets a reader take exactly one frame
without scanning, refuse an oversize one before buffering it, and tell a
truncated stream from a finished one; the CRC makes a damaged frame an
error, never a different event.

Theory of operation. A :class:`FeedDecoder` is a small state machine, in the
style of h11: bytes go in with :meth:`~FeedDecoder.feed`, whole items come
out, and it is in one of three states::

    HELLO  --hello frame, `after` as asked-->  STREAMING
    STREAMING --event numbered `expected`--> STREAMING (expected += 1)
    STREAMING --status frame-->              STREAMING
    any --oversize, bad CRC, malformed, wrong kind or number--> FAILED

Every check happens before an item is returned, and an item is returned
only when all its bytes are present, so whatever the bytes (cut anywhere,
repeated, reordered, corrupted), the events that come out are exactly the
ones the relay sent, numbered ``after + 1, after + 2, ...``, and the first
wrong frame raises :class:`FeedError` with one line (the good items before it
in the same bytes are returned first, and the error is raised by the next
call). FAILED is final: the reader drops the connection and reconnects after
the last good event.
:meth:`~FeedDecoder.end` says whether the stream stopped mid-frame.

>>> from datetime import datetime, timezone
>>> from statepump.core.events import Event
>>> t = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
>>> e = Event("0", 8, "80", t, "k", {"n": 1, "b": b"\\xff"}, b"{}")
>>> wire = hello("0", 7) + event_frame(e) + status_frame(8, True, None)
>>> decoder = FeedDecoder(after=7)
>>> items = decoder.feed(wire[:20]) + decoder.feed(wire[20:])
>>> items[0] == e, items[1]
(True, FeedStatus(sequence=8, ready=True, reason=None))
>>> FeedDecoder(after=7).feed(hello("0", 7) + event_frame(Event("0", 9, "9", t, None, {}, b"")))
Traceback (most recent call last):
...
statepump.core.feedframes.FeedError: feed sent event 9 where 8 was due
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgpack

from statepump.core.errors import StatepumpError
from statepump.core.events import Event, new_event

#: The framing's version, in the hello frame; a reader refuses another.
PROTOCOL: Final = 1
#: The media type of ``GET /v1/events``.
CONTENT_TYPE: Final = b"application/vnd.statepump.feed"
#: The largest payload a reader accepts by default: above Event Hubs' largest event (20 MB on dedicated clusters).
MAX_FRAME: Final = 24 << 20

_HELLO: Final = 0
_EVENT: Final = 1
_STATUS: Final = 2
_HEAD: Final = struct.Struct(">II")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EXT_TIME: Final = 1  # a datetime property value: i64 microseconds since the epoch


class FeedError(StatepumpError):
    """The feed's bytes are not a well-formed, contiguous stream of events (one line, what was wrong)."""


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The relay's own position and readiness, sent on every change and as the keep-alive."""

    sequence: int
    ready: bool
    reason: str | None


def _micros(when: datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _default(value: object) -> object:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            value = value.replace(tzinfo=UTC)
        return msgpack.ExtType(_EXT_TIME, struct.pack(">q", _micros(value)))
    return str(value)


def _ext(code: int, data: bytes) -> object:
    if code == _EXT_TIME and len(data) == 8:
        return _time(struct.unpack(">q", data)[0])
    raise ValueError(f"unknown msgpack ext type {code}")


_packer = msgpack.Packer(default=_default, use_bin_type=True)


def _frame(payload: bytes) -> bytes:
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def hello(partition: str, after: int) -> bytes:
    """The first frame of a feed: the protocol, the partition, and the ``after`` it answers."""
    return _frame(_packer.pack([_HELLO, PROTOCOL, partition, after]))


def event_frame(event: Event) -> bytes:
    """One event, every field but the partition (the hello frame names it)."""
    payload = _packer.pack(
        [
            _EVENT,
            event.sequence,
            event.offset,
            _micros(event.enqueued_time),
            event.partition_key,
            dict(event.properties),
            bytes(event.body),
        ]
    )
    return _frame(payload)


def event_frames(events: Iterable[Event]) -> bytes:
    """Several events' frames, joined (one write for a batch)."""
    return b"".join(event_frame(e) for e in events)


def status_frame(sequence: int, ready: bool, reason: str | None) -> bytes:
    """The relay's published sequence number and readiness."""
    return _frame(_packer.pack([_STATUS, sequence, ready, reason]))


class FeedDecoder:
    """Bytes of one feed response in, :class:`Event` and :class:`FeedStatus` items out (see the module doc)."""

    def __init__(self, after: int, *, max_frame: int = MAX_FRAME) -> None:
        self.after = after
        #: The sequence number the next event must have.
        self.expected = after + 1
        self.max_frame = max_frame
        #: ``"HELLO"``, ``"STREAMING"`` or ``"FAILED"``.
        self.state = "HELLO"
        #: The partition the hello frame named.
        self.partition: str | None = None
        self._buffer = bytearray()
        self._error: FeedError | None = None  # found after good items: raised by the next call

    def _raise_failure(self) -> None:
        error, self._error = self._error, None
        raise error if error is not None else FeedError("the feed already failed: reconnect")

    def feed(self, data: bytes) -> list[Event | FeedStatus]:
        """The items completed by ``data``; :class:`FeedError` for the first wrong frame.

        Good items before the wrong frame are returned, and the error is raised
        by the next call (to :meth:`feed` or :meth:`end`).
        """
        if self.state == "FAILED":
            self._raise_failure()
        buffer = self._buffer
        buffer += data
        out: list[Event | FeedStatus] = []
        pos = 0
        try:
            while len(buffer) - pos >= _HEAD.size:
                length, crc = _HEAD.unpack_from(buffer, pos)
                if length > self.max_frame:
                    raise FeedError(f"feed frame of {length} bytes is larger than the limit of {self.max_frame}")
                end = pos + _HEAD.size + length
                if len(buffer) < end:
                    break
                payload = bytes(buffer[pos + _HEAD.size : end])
                if zlib.crc32(payload) != crc:
                    raise FeedError(f"feed frame of {length} bytes fails its CRC check (damaged in transit)")
                pos = end
                item = self._item(payload)
                if item is not None:
                    out.append(item)
        except FeedError as exc:
            self.state = "FAILED"
            if not out:
                raise
            self._error = exc
        finally:
            del buffer[:pos]
        return out

    def end(self) -> None:
        """The stream ended: raises :class:`FeedError` if it stopped inside a frame or had failed."""
        if self.state == "FAILED":
            self._raise_failure()
        if self._buffer:
            self.state = "FAILED"
            raise FeedError(f"feed ended inside a frame ({len(self._buffer)} bytes of it received)")

    def _item(self, payload: bytes) -> Event | FeedStatus | None:
        try:
            frame = msgpack.unpackb(payload, raw=False, ext_hook=_ext, strict_map_key=True, use_list=True)
        except Exception as exc:  # msgpack raises several types for malformed input
            raise FeedError(f"feed frame is not valid msgpack: {type(exc).__name__}") from None
        if not isinstance(frame, list) or not frame or type(frame[0]) is not int:
            raise FeedError("feed frame is not a tagged array")
        kind = frame[0]
        if self.state == "HELLO":
            if kind != _HELLO or len(frame) != 4:
                raise FeedError("feed did not begin with a hello frame")
            _, protocol, partition, after = frame
            if protocol != PROTOCOL:
                raise FeedError(f"feed speaks protocol {protocol!r}, this reader {PROTOCOL}")
            if type(partition) is not str or type(after) is not int or after != self.after:
                raise FeedError(f"feed answers after={after!r}, not the {self.after} asked for")
            self.partition = partition
            self.state = "STREAMING"
            return None
        if kind == _EVENT:
            return self._event(frame)
        if kind == _STATUS:
            if len(frame) != 4:
                raise FeedError("feed status frame is malformed")
            _, sequence, ready, reason = frame
            if type(sequence) is not int or type(ready) is not bool or not (reason is None or type(reason) is str):
                raise FeedError("feed status frame is malformed")
            return FeedStatus(sequence, ready, reason)
        raise FeedError(f"feed frame of unknown kind {kind}")

    def _event(self, frame: list[Any]) -> Event:
        if len(frame) != 7:
            raise FeedError("feed event frame is malformed")
        _, sequence, offset, micros, key, properties, body = frame
        if type(sequence) is not int:
            raise FeedError("feed event frame has no sequence number")
        if sequence != self.expected:
            raise FeedError(f"feed sent event {sequence} where {self.expected} was due")
        if (
            type(offset) is not str
            or type(micros) is not int
            or not (key is None or type(key) is str)
            or not isinstance(properties, Mapping)
            or type(body) is not bytes
        ):
            raise FeedError(f"feed event {sequence} is malformed")
        try:
            when = _time(micros)
        except OverflowError:
            raise FeedError(f"feed event {sequence} has an impossible time") from None
        assert self.partition is not None
        self.expected = sequence + 1
        return new_event(self.partition, sequence, offset, when, key, properties, body)
