"""Event Hubs Capture files: names, schema, and the pure reader and writer.

Capture writes one Avro object-container file per partition per capture
window. This module knows everything about those files that needs no network:
how their names are built from a configurable format (and parsed back), the
``EventData`` schema, how a record becomes an :class:`~statepump.core.events.Event`
and back, and the quirks of what the real service writes (``EnqueuedTimeUtc``
as a .NET US-culture string without milliseconds, ``null`` in the Properties
union, empty files for empty windows). It does no I/O of its own: callers hand
it file objects. :mod:`statepump.sources.capture` is the adapter that finds and
opens the files; the emulator's Capture writer calls :func:`write_capture_file`.

>>> import io
>>> from datetime import datetime, timezone
>>> from statepump.core.events import Event
>>> buf = io.BytesIO()
>>> t = datetime(2020, 6, 25, 15, 47, 29, tzinfo=timezone.utc)
>>> write_capture_file(buf, [Event("0", 7, "4096", t, None, {"k": None}, b"hi")])
1
>>> _ = buf.seek(0)
>>> [(e.sequence, e.enqueued_time.isoformat(), e.properties, e.body) for e in read_capture_file(buf, "0")]
[(7, '2020-06-25T15:47:29+00:00', {'k': None}, b'hi')]
"""

from __future__ import annotations

import functools
import io
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Final, Literal

import fastavro

from statepump.core.errors import StatepumpError
from statepump.core.events import Event, EventSlots, canonical_properties, needs_canonical

#: The Avro schema Capture writes, as the real service embeds it in each file.
#: Readers never rely on it (they use the writer schema in the file); the
#: writer uses it so that files look like the service's.
CAPTURE_SCHEMA: Final[dict[str, Any]] = {
    "type": "record",
    "name": "EventData",
    "namespace": "Microsoft.ServiceBus.Messaging",
    "fields": [
        {"name": "SequenceNumber", "type": "long"},
        {"name": "Offset", "type": "string"},
        {"name": "EnqueuedTimeUtc", "type": "string"},
        {
            "name": "SystemProperties",
            "type": {"type": "map", "values": ["long", "double", "string", "bytes"]},
        },
        {
            "name": "Properties",
            "type": {"type": "map", "values": ["long", "double", "string", "bytes", "null"]},
        },
        {"name": "Body", "type": ["null", "bytes"]},
    ],
}

#: The service's default blob name format (``.avro`` is appended to it).
DEFAULT_NAME_FORMAT: Final = "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}"

#: Every field a name format must contain, as the service requires.
NAME_FIELDS: Final = (
    "Namespace", "EventHub", "PartitionId", "Year", "Month", "Day", "Hour", "Minute", "Second",
)  # fmt: skip
_TIME_FIELDS: Final = frozenset(("Year", "Month", "Day", "Hour", "Minute", "Second"))
SUFFIX: Final = ".avro"

Codec = Literal["null", "deflate"]

_PARSED_SCHEMA = fastavro.parse_schema(CAPTURE_SCHEMA)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND: Final = timedelta(seconds=1)
#: ``_MILLISECONDS[n]`` is ``timedelta(milliseconds=n)``, for n below 1000.
_MILLISECONDS: Final = tuple(timedelta(milliseconds=n) for n in range(1000))
#: Records :func:`read_capture_file` decodes ahead of what it has yielded.
_STREAM_RECORDS = 256


class CaptureFormatError(StatepumpError, ValueError):
    """A Capture file, record, name or name format is not what Capture writes.

    The message names the file (when known), the record's position and the
    field that was wrong.
    """


# --------------------------------------------------------------------------- names


@dataclass(frozen=True, slots=True, order=True)
class CaptureName:
    """What a Capture blob name says: whose file it is and when its window opened.

    Ordering is by window time first, so sorting a partition's names sorts
    its files in capture order.
    """

    window_open: datetime
    namespace: str
    eventhub: str
    partition_id: str


_FIELD_RE = re.compile(r"\{([^{}]*)\}")


def _format_parts(fmt: str) -> list[tuple[bool, str]]:
    """Split ``fmt`` into (is_field, text) parts and check its fields."""
    parts: list[tuple[bool, str]] = []
    pos = 0
    for m in _FIELD_RE.finditer(fmt):
        if m.start() > pos:
            parts.append((False, fmt[pos : m.start()]))
        name = m.group(1)
        if name not in NAME_FIELDS:
            raise CaptureFormatError(
                f"capture name format {fmt!r} has an unknown field {{{name}}}; "
                f"the fields are {', '.join('{' + f + '}' for f in NAME_FIELDS)}"
            )
        parts.append((True, name))
        pos = m.end()
    if pos < len(fmt):
        parts.append((False, fmt[pos:]))
    present = {text for is_field, text in parts if is_field}
    missing = [f for f in NAME_FIELDS if f not in present]
    if missing:
        raise CaptureFormatError(
            f"capture name format {fmt!r} lacks the mandatory field(s) {', '.join('{' + f + '}' for f in missing)}"
        )
    stray = [text for is_field, text in parts if not is_field and ("{" in text or "}" in text)]
    if stray:
        raise CaptureFormatError(f"capture name format {fmt!r} has an unbalanced brace in {stray[0]!r}")
    return parts


def validate_name_format(fmt: str) -> str:
    """Return ``fmt`` if it is a usable Capture name format, else raise :class:`CaptureFormatError`.

    >>> f = "{EventHub}/{Namespace}-{PartitionId}/{Year}{Month}{Day}/{Hour}{Minute}{Second}"
    >>> validate_name_format(f) == f
    True
    >>> try:
    ...     validate_name_format("{Namespace}/{EventHub}/{Year}")
    ... except CaptureFormatError as exc:
    ...     print(exc)
    capture name format '{Namespace}/{EventHub}/{Year}' lacks the mandatory field(s) \
{PartitionId}, {Month}, {Day}, {Hour}, {Minute}, {Second}
    """
    _format_parts(fmt)
    return fmt


def render_name(fmt: str, namespace: str, eventhub: str, partition_id: str, when: datetime) -> str:
    """The blob name Capture gives the file of the window opened at ``when``.

    Time fields are zero-padded (year to 4 digits, the others to 2) and taken
    in UTC; ``.avro`` is appended.

    >>> from datetime import datetime, timezone
    >>> when = datetime(2017, 12, 8, 3, 3, 17, tzinfo=timezone.utc)
    >>> render_name(DEFAULT_NAME_FORMAT, "ns", "hub", "0", when)
    'ns/hub/0/2017/12/08/03/03/17.avro'
    """
    when = _as_utc(when)
    values = {
        "Namespace": namespace,
        "EventHub": eventhub,
        "PartitionId": partition_id,
        "Year": f"{when.year:04d}",
        "Month": f"{when.month:02d}",
        "Day": f"{when.day:02d}",
        "Hour": f"{when.hour:02d}",
        "Minute": f"{when.minute:02d}",
        "Second": f"{when.second:02d}",
    }
    return "".join(values[text] if is_field else text for is_field, text in _format_parts(fmt)) + SUFFIX


def name_prefix(fmt: str, namespace: str, eventhub: str, partition_id: str) -> str:
    """The fixed text every name of this partition starts with: the rendered
    format up to its first time field. Listing under it finds the partition's
    files (and, if the format puts the partition after a time field, some
    others, which :func:`parse_name` then filters out).

    >>> name_prefix(DEFAULT_NAME_FORMAT, "ns", "hub", "3")
    'ns/hub/3/'
    >>> name_prefix("{Year}/{Namespace}/{EventHub}/{PartitionId}/{Month}{Day}/{Hour}{Minute}{Second}",
    ...             "n", "h", "0")
    ''
    """
    values = {"Namespace": namespace, "EventHub": eventhub, "PartitionId": partition_id}
    out: list[str] = []
    for is_field, text in _format_parts(fmt):
        if is_field and text in _TIME_FIELDS:
            break
        out.append(values[text] if is_field else text)
    return "".join(out)


_FIELD_PATTERNS: Final = {
    "Namespace": r"[^/]+?",
    "EventHub": r"[^/]+?",
    "PartitionId": r"[^/]+?",
    "Year": r"\d{4}",
    "Month": r"\d{2}",
    "Day": r"\d{2}",
    "Hour": r"\d{2}",
    "Minute": r"\d{2}",
    "Second": r"\d{2}",
}


@functools.lru_cache(maxsize=32)
def _name_regex(fmt: str) -> re.Pattern[str]:
    pattern: list[str] = []
    seen: set[str] = set()
    for is_field, text in _format_parts(fmt):
        if not is_field:
            pattern.append(re.escape(text))
        elif text in seen:
            # The service allows a field twice; both occurrences must agree.
            pattern.append(f"(?P={text})")
        else:
            seen.add(text)
            pattern.append(f"(?P<{text}>{_FIELD_PATTERNS[text]})")
    return re.compile("".join(pattern) + re.escape(SUFFIX))


def parse_name(fmt: str, name: str) -> CaptureName | None:
    """What ``name`` says under ``fmt``, or ``None`` if it is not such a name.

    Raises :class:`CaptureFormatError` when ``fmt`` itself is unusable.

    >>> parse_name(DEFAULT_NAME_FORMAT, "ns/hub/0/2017/12/08/03/03/17.avro")
    CaptureName(window_open=datetime.datetime(2017, 12, 8, 3, 3, 17, tzinfo=datetime.timezone.utc), \
namespace='ns', eventhub='hub', partition_id='0')
    >>> parse_name(DEFAULT_NAME_FORMAT, "ns/hub/0/2017/12/08/03/03/17.json") is None
    True
    """
    m = _name_regex(fmt).fullmatch(name)
    if m is None:
        return None
    g = m.groupdict()
    try:
        when = datetime(
            int(g["Year"]), int(g["Month"]), int(g["Day"]),
            int(g["Hour"]), int(g["Minute"]), int(g["Second"]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return None  # digits in the right places but not a date (month 13): not a Capture name
    return CaptureName(when, g["Namespace"], g["EventHub"], g["PartitionId"])


# --------------------------------------------------------------------------- times

_DOTNET_RE = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?\s*([AaPp][Mm])\s*")


def format_enqueued_time(when: datetime) -> str:
    """``when`` (UTC) as Capture writes ``EnqueuedTimeUtc``: .NET US culture, no milliseconds.

    >>> from datetime import datetime, timezone
    >>> format_enqueued_time(datetime(2020, 6, 25, 15, 47, 29, 999000, tzinfo=timezone.utc))
    '6/25/2020 3:47:29 PM'
    >>> format_enqueued_time(datetime(2020, 1, 2, 0, 5, 0, tzinfo=timezone.utc))
    '1/2/2020 12:05:00 AM'
    """
    when = _as_utc(when)
    hour12 = when.hour % 12 or 12
    half = "AM" if when.hour < 12 else "PM"
    return f"{when.month}/{when.day}/{when.year:04d} {hour12}:{when.minute:02d}:{when.second:02d} {half}"


@functools.lru_cache(maxsize=4096)
def parse_enqueued_time(text: str) -> datetime:
    """An ``EnqueuedTimeUtc`` string as an aware UTC datetime.

    Accepts the .NET US-culture form the service writes (with or without
    fractional seconds) and ISO 8601 (a time without an offset is UTC).
    Cached, because a capture window holds many events of the same second.

    >>> parse_enqueued_time("6/25/2020 3:47:29 PM").isoformat()
    '2020-06-25T15:47:29+00:00'
    >>> parse_enqueued_time("12/1/2020 12:00:01.25 AM").isoformat()
    '2020-12-01T00:00:01.250000+00:00'
    >>> parse_enqueued_time("2020-06-25T15:47:29.5Z").isoformat()
    '2020-06-25T15:47:29.500000+00:00'
    >>> try:
    ...     parse_enqueued_time("yesterday")
    ... except CaptureFormatError as exc:
    ...     print(exc)
    EnqueuedTimeUtc 'yesterday' is neither a .NET US-culture time (6/25/2020 3:47:29 PM) nor ISO 8601
    """
    m = _DOTNET_RE.fullmatch(text)
    try:
        if m is not None:
            month, day, year, hour, minute, second, frac, half = m.groups()
            h = int(hour)
            if not 1 <= h <= 12:
                raise ValueError(f"hour {h} is not on a 12-hour clock")
            h = h % 12 + (12 if half.upper() == "PM" else 0)
            micro = int((frac or "0").ljust(7, "0")[:7]) // 10  # .NET ticks are 100 ns
            return datetime(int(year), int(month), int(day), h, int(minute), int(second), micro, tzinfo=UTC)
        parsed = datetime.fromisoformat(text.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError as exc:
        if m is not None:
            raise CaptureFormatError(f"EnqueuedTimeUtc {text!r} is not a valid time: {exc}") from None
        raise CaptureFormatError(
            f"EnqueuedTimeUtc {text!r} is neither a .NET US-culture time (6/25/2020 3:47:29 PM) nor ISO 8601"
        ) from None


def _as_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise CaptureFormatError(f"time {when.isoformat()} has no time zone; Capture times are UTC")
    return when.astimezone(UTC)


# --------------------------------------------------------------------------- records


def _avro_property(key: str, value: Any) -> int | float | str | bytes | None:
    """A property value as one of the union's branches.

    AMQP carries more types than Capture's union; like the service, values
    outside it are written in a form the union holds.
    """
    if value is None or isinstance(value, (float, str, bytes)):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else str(value)
    if isinstance(value, datetime):
        return int((_as_utc(value) - _EPOCH) / timedelta(milliseconds=1))
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value)


def event_to_record(event: Event) -> dict[str, Any]:
    """The Capture record the service writes for ``event``.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2020, 6, 25, 15, 47, 29, tzinfo=timezone.utc)
    >>> r = event_to_record(Event("0", 3, "96", t, "k", {}, b""))
    >>> r["EnqueuedTimeUtc"], r["SystemProperties"]["x-opt-partition-key"]
    ('6/25/2020 3:47:29 PM', 'k')
    """
    enqueued = _as_utc(event.enqueued_time)
    system: dict[str, Any] = {
        "x-opt-sequence-number": event.sequence,
        "x-opt-offset": event.offset,
        "x-opt-enqueued-time": int((enqueued - _EPOCH) / timedelta(milliseconds=1)),
    }
    if event.partition_key is not None:
        system["x-opt-partition-key"] = event.partition_key
    return {
        "SequenceNumber": event.sequence,
        "Offset": event.offset,
        "EnqueuedTimeUtc": format_enqueued_time(enqueued),
        "SystemProperties": system,
        "Properties": {str(k): _avro_property(str(k), v) for k, v in event.properties.items()},
        "Body": bytes(event.body),
    }


def write_capture_file(fileobj: IO[bytes], events: Iterable[Event], codec: Codec = "null") -> int:
    """Write ``events`` to ``fileobj`` as one Capture file; return how many were written.

    No events gives an empty file (a header and no blocks), as Capture writes
    for an empty window. Events are written in the order given, and streamed:
    ``events`` may be a generator.

    >>> import io
    >>> write_capture_file(io.BytesIO(), [], codec="deflate")
    0
    """
    if codec not in ("null", "deflate"):
        raise CaptureFormatError(f"capture codec must be 'null' or 'deflate', not {codec!r}")
    count = 0

    def records() -> Iterator[dict[str, Any]]:
        nonlocal count
        for event in events:
            yield event_to_record(event)
            count += 1

    fastavro.writer(fileobj, _PARSED_SCHEMA, records(), codec=codec)
    return count


def _field(record: Mapping[str, Any], name: str, types: type | tuple[type, ...], where: str) -> Any:
    try:
        value = record[name]
    except KeyError:
        raise CaptureFormatError(f"{where}: the record has no {name} field") from None
    if not isinstance(value, types) or isinstance(value, bool):
        shown = repr(value)[:60]
        raise CaptureFormatError(f"{where}: {name} is {type(value).__name__} {shown}, not the expected type")
    return value


def record_to_event(record: Any, partition: str, *, where: str = "capture record") -> Event:
    """The event a Capture record stands for, checking every field it uses.

    ``where`` names the file and position for the error message. The time
    comes from ``x-opt-enqueued-time`` (milliseconds) when the record has it,
    else from ``EnqueuedTimeUtc`` (seconds only, as the service writes it).

    >>> record_to_event({"SequenceNumber": 5, "Offset": "80", "EnqueuedTimeUtc": "1/2/2021 1:00:00 AM",
    ...                  "SystemProperties": {}, "Properties": None, "Body": None}, "0").sequence
    5
    >>> try:
    ...     record_to_event({"SequenceNumber": "5"}, "0", where="a.avro record #3")
    ... except CaptureFormatError as exc:
    ...     print(exc)
    a.avro record #3: SequenceNumber is str '5', not the expected type
    """
    return _checked_event(record, partition, where)


def _checked_event(record: Any, partition: str, where: str) -> Event:
    if not isinstance(record, Mapping):
        raise CaptureFormatError(f"{where}: the record is {type(record).__name__}, not an EventData record")
    sequence = _field(record, "SequenceNumber", int, where)
    if sequence < 0:
        raise CaptureFormatError(f"{where}: SequenceNumber {sequence} is negative")
    offset = _field(record, "Offset", str, where)
    system = record.get("SystemProperties") or {}
    if not isinstance(system, Mapping):
        raise CaptureFormatError(f"{where}: SystemProperties is {type(system).__name__}, not a map")
    properties = record.get("Properties") or {}
    if not isinstance(properties, Mapping):
        raise CaptureFormatError(f"{where}: Properties is {type(properties).__name__}, not a map")
    body = record.get("Body")
    if body is None:
        body = b""
    elif not isinstance(body, bytes):
        raise CaptureFormatError(f"{where}: Body is {type(body).__name__}, not bytes")
    millis = system.get("x-opt-enqueued-time")
    if isinstance(millis, int) and not isinstance(millis, bool):
        try:
            enqueued = _EPOCH + timedelta(milliseconds=millis)
        except OverflowError:
            raise CaptureFormatError(f"{where}: x-opt-enqueued-time {millis} is out of range") from None
    else:
        text = _field(record, "EnqueuedTimeUtc", str, where)
        try:
            enqueued = parse_enqueued_time(text)
        except CaptureFormatError as exc:
            raise CaptureFormatError(f"{where}: {exc}") from None
    key = system.get("x-opt-partition-key")
    return Event(
        partition=partition,
        sequence=sequence,
        offset=offset,
        enqueued_time=enqueued,
        partition_key=key if isinstance(key, str) else None,
        # The union's bytes branch holds text the hub hands over as text: the canonical form (Event).
        properties=canonical_properties(properties) if needs_canonical(properties) else properties,
        body=body,
    )


def _decode_records(records: Iterable[Any], partition: str, name: str, position: int, out: list[Event]) -> None:
    """Append the events of ``records`` (as fastavro returns them) to ``out``.

    ``position`` is the first record's index in its file, for messages. A
    record the inlined fast path below does not take goes to
    :func:`_checked_event`, which names what is wrong with it (or accepts it:
    an ``int`` subclass, a non-``dict`` mapping). An error raised by
    ``records`` itself (fastavro on a truncated or corrupt block) becomes a
    :class:`CaptureFormatError` naming the position; ``out`` then holds the
    events before it.

    The loop is the common case of :func:`_checked_event` inlined, with exact
    type checks instead of ``isinstance`` against ABCs: a Python call per
    record costs about as much as the checks themselves, and the ABC checks
    more than the decoding. The two must agree on every record the fast path
    takes (``tests/capture/test_capture_file.py`` checks it over any field values).
    """
    it = iter(records)
    first = len(out) - position  # the position of the next record is len(out) - first
    append = out.append
    epoch, one_second, milliseconds = _EPOCH, _SECOND, _MILLISECONDS
    parse_time, slots = parse_enqueued_time, EventSlots
    # The time is the start of its second plus its milliseconds: consecutive
    # events share the second, which is then made once (half the cost per event).
    second: int | None = None
    second_start = epoch
    while True:
        odd: Any = _NO_RECORD
        try:
            for record in it:
                if type(record) is not dict:
                    odd = record
                    break
                sequence = record.get("SequenceNumber")
                offset = record.get("Offset")
                system = record.get("SystemProperties")
                properties = record.get("Properties")
                body = record.get("Body")
                if system is None:
                    system = {}
                if properties is None:
                    properties = {}
                if body is None:
                    body = b""
                if (
                    type(sequence) is not int
                    or sequence < 0
                    or type(offset) is not str
                    or type(system) is not dict
                    or type(properties) is not dict
                    or type(body) is not bytes
                ):
                    odd = record
                    break
                millis = system.get("x-opt-enqueued-time")
                if type(millis) is int:
                    if millis // 1000 != second:
                        try:
                            second_start = epoch + one_second * (millis // 1000)
                        except OverflowError:
                            odd = record
                            break
                        second = millis // 1000
                    enqueued = second_start + milliseconds[millis % 1000]
                else:
                    text = record.get("EnqueuedTimeUtc")
                    if type(text) is not str:
                        odd = record
                        break
                    try:
                        enqueued = parse_time(text)
                    except CaptureFormatError:
                        odd = record
                        break
                key = system.get("x-opt-partition-key")
                if properties and needs_canonical(properties):
                    properties = canonical_properties(properties)  # UTF-8 bytes are text (see Event)
                # new_event, inlined (see EventSlots)
                event: Any = slots()
                event.partition = partition
                event.sequence = sequence
                event.offset = offset
                event.enqueued_time = enqueued
                event.partition_key = key if type(key) is str else None
                event.properties = properties
                event.body = body
                event.__class__ = Event
                append(event)
        except Exception as exc:  # a truncated or corrupt block surfaces as any of several errors
            raise CaptureFormatError(
                f"{name}: unreadable after record #{len(out) - first} ({type(exc).__name__}: {exc})"
            ) from None
        if odd is _NO_RECORD:
            return
        append(_checked_event(odd, partition, f"{name} record #{len(out) - first}"))


_NO_RECORD: Final = object()


def _avro_reader(fileobj: IO[bytes], name: str) -> Iterator[Any]:
    try:
        return fastavro.reader(fileobj)
    except Exception as exc:  # fastavro raises ValueError, EOFError, or its own errors for a bad header
        raise CaptureFormatError(f"{name}: not an Avro object-container file ({type(exc).__name__}: {exc})") from None


def read_capture_file(
    fileobj: IO[bytes], partition: str, *, name: str = "capture file", first_position: int = 0
) -> Iterator[Event]:
    """Stream the events of one Capture file, in the file's order.

    Uses the writer schema embedded in the file and decodes a few hundred
    records at a time, so memory does not grow with the file. Order is *not*
    checked here (no document promises it); :mod:`statepump.sources.capture`
    sorts and deduplicates. A file that is not Avro, is truncated, or holds a
    bad record raises :class:`CaptureFormatError` naming ``name`` and the
    position (counted from ``first_position``, for a part of a file), after
    yielding every event before it.
    """
    reader = _avro_reader(fileobj, name)
    position = first_position
    while True:
        events: list[Event] = []
        try:
            _decode_records(itertools.islice(reader, _STREAM_RECORDS), partition, name, position, events)
        except CaptureFormatError:
            yield from events
            raise
        if not events:
            return
        yield from events
        position += len(events)


# --------------------------------------------------------------------------- container framing
#
# fastavro's reader pulls from a blocking file object, which an asynchronous
# blob download is not. The object-container format is simple enough to frame
# without decoding: a header (magic, metadata map, 16-byte sync marker), then
# blocks of (record count, byte size, data, sync marker). Splitting a byte
# stream into blocks here lets the adapter feed downloaded chunks in and hand
# each complete block, behind the file's own header, to fastavro: memory is one
# block, whatever the file's size, and the writer schema is still the file's.

MAGIC: Final = b"Obj\x01"
SYNC_SIZE: Final = 16


@dataclass(frozen=True, slots=True)
class AvroHeader:
    """An object-container file's header: its bytes, sync marker and codec."""

    raw: bytes
    sync: bytes
    codec: str


def _read_long(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """A zig-zag varint at ``pos``: (value, next position), or ``None`` if ``buf`` ends first."""
    shift = 0
    result = 0
    while True:
        if pos >= len(buf):
            return None
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise CaptureFormatError(f"a varint at byte {pos} is longer than 64 bits")


def parse_header(buf: bytes | bytearray, *, name: str = "capture file") -> AvroHeader | None:
    """The header at the start of ``buf``, or ``None`` if more bytes are needed.

    >>> import io
    >>> out = io.BytesIO(); _ = write_capture_file(out, [])
    >>> h = parse_header(out.getvalue())
    >>> (h.codec, len(h.sync), len(h.raw) == len(out.getvalue()))
    ('null', 16, True)
    """
    if len(buf) < len(MAGIC):
        return None
    if bytes(buf[: len(MAGIC)]) != MAGIC:
        raise CaptureFormatError(f"{name}: not an Avro object-container file (no 'Obj\\x01' magic)")
    pos = len(MAGIC)
    meta: dict[str, bytes] = {}
    while True:
        got = _read_long(buf, pos)
        if got is None:
            return None
        count, pos = got
        if count == 0:
            break
        if count < 0:  # a negative count is followed by the block's byte size
            count = -count
            got = _read_long(buf, pos)
            if got is None:
                return None
            pos = got[1]
        for _ in range(count):
            fields: list[bytes] = []
            for _ in range(2):  # key, then value
                got = _read_long(buf, pos)
                if got is None:
                    return None
                length, pos = got
                if length < 0:
                    raise CaptureFormatError(f"{name}: negative length in the header's metadata")
                if pos + length > len(buf):
                    return None
                fields.append(bytes(buf[pos : pos + length]))
                pos += length
            meta[fields[0].decode("utf-8", "replace")] = fields[1]
    if pos + SYNC_SIZE > len(buf):
        return None
    sync = bytes(buf[pos : pos + SYNC_SIZE])
    codec = meta.get("avro.codec", b"null").decode("utf-8", "replace")
    return AvroHeader(bytes(buf[: pos + SYNC_SIZE]), sync, codec)


def parse_block(buf: bytes | bytearray, pos: int, sync: bytes, *, name: str = "capture file") -> int | None:
    """The end of the block starting at ``pos`` (past its sync marker), or
    ``None`` if ``buf`` ends first. A block whose trailing marker is not the
    file's is a :class:`CaptureFormatError`."""
    got = _read_long(buf, pos)
    if got is None:
        return None
    count, at = got
    got = _read_long(buf, at)
    if got is None:
        return None
    size, at = got
    if count < 0 or size < 0:
        raise CaptureFormatError(f"{name}: a block at byte offset {pos} has a negative count or size")
    end = at + size + SYNC_SIZE
    if end > len(buf):
        return None
    if bytes(buf[end - SYNC_SIZE : end]) != sync:
        raise CaptureFormatError(f"{name}: the block at byte offset {pos} does not end with the file's sync marker")
    return end


class BlockSplitter:
    """Split a Capture file's bytes, fed in chunks of any size, into blocks.

    Holds at most one block plus one chunk. ``feed`` returns the blocks that
    became complete; ``finish`` raises if the file ended inside the header or
    a block (a truncated upload).

    >>> import io
    >>> from datetime import datetime, timezone
    >>> out = io.BytesIO()
    >>> t = datetime(2020, 1, 1, tzinfo=timezone.utc)
    >>> _ = write_capture_file(out, [Event("0", i, str(i), t, None, {}, b"") for i in range(3)])
    >>> splitter = BlockSplitter("f.avro")
    >>> blocks = [b for i in range(0, len(out.getvalue()), 7) for b in splitter.feed(out.getvalue()[i : i + 7])]
    >>> splitter.finish()
    >>> [e.sequence for b in blocks for e in decode_block(splitter.header, b, "0")]
    [0, 1, 2]
    """

    def __init__(self, name: str = "capture file") -> None:
        self.name = name
        self.header: AvroHeader | None = None
        self._buf = bytearray()
        self._offset = 0  # file offset of _buf[0], for messages

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        blocks: list[bytes] = []
        pos = 0
        if self.header is None:
            self.header = parse_header(self._buf, name=self.name)
            if self.header is None:
                return blocks
            pos = len(self.header.raw)
        while True:
            end = parse_block(self._buf, pos, self.header.sync, name=self.name)
            if end is None:
                break
            blocks.append(bytes(self._buf[pos:end]))
            pos = end
        if pos:
            del self._buf[:pos]
            self._offset += pos
        return blocks

    def finish(self) -> None:
        if self.header is None:
            if not self._buf and not self._offset:
                raise CaptureFormatError(f"{self.name}: the file is empty (0 bytes), not an Avro file")
            raise CaptureFormatError(f"{self.name}: the file ends inside its Avro header")
        if self._buf:
            raise CaptureFormatError(
                f"{self.name}: the file ends inside a block at byte offset {self._offset} (truncated?)"
            )


def decode_block(
    header: AvroHeader | None, block: bytes, partition: str, *, name: str = "capture file", position: int = 0
) -> list[Event]:
    """The events of one block (or several consecutive ones), decoded with
    the file's own header (writer schema and codec). ``position`` is the index
    of the block's first record in the file, for error messages."""
    if header is None:
        raise CaptureFormatError(f"{name}: a block was given without the file's header")
    events: list[Event] = []
    _decode_records(_avro_reader(io.BytesIO(header.raw + block), name), partition, name, position, events)
    return events


def last_block_start(tail: bytes, sync: bytes, *, name: str = "capture file") -> int | None:
    """Where, in ``tail`` (the end of a file), the file's last block starts,
    or ``None`` if ``tail`` holds no whole block after a sync marker.

    The last block is the one that follows a sync marker and ends exactly at
    the end of the file; searching back from the end for the marker finds it
    without reading the rest of the file.
    """
    at = len(tail)
    while True:
        at = tail.rfind(sync, 0, at)
        if at < 0:
            return None
        start = at + SYNC_SIZE
        try:
            end = parse_block(tail, start, sync, name=name) if start < len(tail) else None
        except CaptureFormatError:
            end = None  # the marker's bytes inside a block's data: keep looking
        if end == len(tail):
            return start
