"""Event Hubs message surgery on raw AMQP bytes (pure).

A message is a run of *sections* (header, delivery annotations, message
annotations, properties, application properties, body, footer). The service
keeps what the producer sent byte for byte and only adds its own message
annotations (``x-opt-sequence-number``, ``x-opt-offset``,
``x-opt-enqueued-time``). Decoding and re-encoding with the SDK's codec would
change the types of ids and strings (it decodes them all to ``bytes``), so we
cut messages into raw sections and splice a new annotations section in.

>>> from statepump.emulator import wire
>>> raw = wire.encode_message(wire.Message(data=[b"hi"], message_annotations={b"x-opt-partition-key": "k"}))
>>> incoming = parse_event(raw)
>>> incoming.partition_key
'k'
>>> stored = stored_payload(incoming, sequence=0, offset=0, enqueued_ms=1000)
>>> sorted(wire.decode_message(stored).message_annotations)[0]
b'x-opt-enqueued-time'
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from statepump.emulator import wire

#: The message format of a batch: each data section holds one encoded message.
BATCH_FORMAT: Final = 0x80013700
#: The service's limit on one event or batch (Standard tier).
MAX_MESSAGE_SIZE: Final = 1024 * 1024

HEADER: Final = 0x70
DELIVERY_ANNOTATIONS: Final = 0x71
MESSAGE_ANNOTATIONS: Final = 0x72
PROPERTIES: Final = 0x73
APPLICATION_PROPERTIES: Final = 0x74
DATA: Final = 0x75
AMQP_SEQUENCE: Final = 0x76
AMQP_VALUE: Final = 0x77

PARTITION_KEY: Final = b"x-opt-partition-key"
SEQUENCE_NUMBER: Final = b"x-opt-sequence-number"
OFFSET: Final = b"x-opt-offset"
ENQUEUED_TIME: Final = b"x-opt-enqueued-time"
_SERVICE_KEYS: Final = frozenset({SEQUENCE_NUMBER, OFFSET, ENQUEUED_TIME})

_STRINGLIKE: Final = frozenset({0xA1, 0xB1, 0xA3, 0xB3})  # str8, str32, sym8, sym32


class MalformedMessage(ValueError):
    """A transfer's payload is not a sequence of AMQP message sections."""


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One event as a producer sent it, ready to be enqueued.

    ``annotations`` holds the producer's message-annotation entries as raw
    key/value bytes (``annotation_count`` entries), ``bare`` every section of
    the bare message (properties, application properties, body, footer).
    """

    bare: bytes
    annotations: bytes
    annotation_count: int
    partition_key: str | None


def split_sections(payload: bytes | memoryview) -> list[tuple[int, memoryview]]:
    """``(descriptor, raw section)`` for each section of an encoded message.

    >>> from statepump.emulator import wire
    >>> [code for code, _ in split_sections(wire.encode_message(wire.Message(data=[b"x"])))]
    [117]
    """
    view = memoryview(payload)
    sections: list[tuple[int, memoryview]] = []
    position = 0
    while position < len(view):
        # A section is a described value whose descriptor is a small ulong: 0x00 0x53 code.
        if len(view) - position < 4 or view[position] != 0x00 or view[position + 1] != 0x53:
            raise MalformedMessage(f"expected a message section at byte {position}")
        code = view[position + 2]
        if not HEADER <= code <= 0x78:
            raise MalformedMessage(f"unknown message section 0x{code:02x} at byte {position}")
        try:
            _, rest = wire.skip_value(view[position + 3 :])
        except (ValueError, IndexError, KeyError, TypeError, struct.error) as exc:
            raise MalformedMessage(f"undecodable section 0x{code:02x} at byte {position}: {exc}") from exc
        end = len(view) - len(rest)
        sections.append((code, view[position:end]))
        position = end
    if not sections:
        raise MalformedMessage("empty message")
    return sections


def unbatch(payload: bytes | memoryview, message_format: int) -> list[bytes]:
    """The encoded events a transfer carries: itself, or each data section of a batch."""
    if message_format != BATCH_FORMAT:
        return [bytes(payload)]
    inner: list[bytes] = []
    for code, section in split_sections(payload):
        if code == DATA:
            value, _ = wire.skip_value(section[3:])
            inner.append(bytes(value))
    if not inner:
        raise MalformedMessage("a batch (format 0x80013700) must hold at least one data section")
    return inner


def _map_entries(section: memoryview) -> list[tuple[Any, memoryview]]:
    """``(decoded key, raw key+value bytes)`` of a section whose value is a map."""
    body = section[3:]
    constructor = body[0]
    if constructor == 0x40:  # null map
        return []
    if constructor == 0xC1:
        count, items = body[2], body[3:]
    elif constructor == 0xD1:
        count, items = struct.unpack(">I", body[5:9])[0], body[9:]
    else:
        raise MalformedMessage(f"annotations must be a map, got constructor 0x{constructor:02x}")
    if count % 2:
        raise MalformedMessage("a map must hold an even number of elements")
    entries: list[tuple[Any, memoryview]] = []
    for _ in range(count // 2):
        key, after_key = wire.skip_value(items)
        _, after_value = wire.skip_value(after_key)
        entries.append((key, items[: len(items) - len(after_value)]))
        items = after_value
    return entries


def parse_event(payload: bytes | memoryview) -> IncomingEvent:
    """Split one producer message into what the service keeps."""
    bare = bytearray()
    annotations = bytearray()
    count = 0
    partition_key: str | None = None
    for code, section in split_sections(payload):
        if code in (HEADER, DELIVERY_ANNOTATIONS):
            continue  # hop-by-hop: the service does not forward them
        if code != MESSAGE_ANNOTATIONS:
            bare += section
            continue
        try:
            entries = _map_entries(section)
        except (ValueError, IndexError, KeyError, TypeError, struct.error) as exc:
            raise MalformedMessage(f"undecodable message annotations: {exc}") from exc
        for key, raw in entries:
            if key in _SERVICE_KEYS:
                continue  # the service's own annotations win over a producer's
            if key == PARTITION_KEY:
                _, after_key = wire.skip_value(raw)
                value = _typed_value(after_key)
                partition_key = value if isinstance(value, str) else str(value)
            annotations += raw
            count += 1
    return IncomingEvent(bytes(bare), bytes(annotations), count, partition_key)


def _symbol(name: bytes) -> dict[str, Any]:
    return {wire.TYPE: wire.AMQPTypes.symbol, wire.VALUE: name}


def _annotation_section(code: int, entries: bytes, count: int) -> bytes:
    # map32 (0xd1): size covers the count field and the entries.
    return bytes((0x00, 0x53, code, 0xD1)) + struct.pack(">II", 4 + len(entries), count) + entries


def stored_payload(event: IncomingEvent, *, sequence: int, offset: int, enqueued_ms: int) -> bytes:
    """The message as consumers receive it: service annotations, then the bare message."""
    entries = bytearray()
    entries += wire.encode_value(_symbol(SEQUENCE_NUMBER))
    entries += wire.encode_value({wire.TYPE: wire.AMQPTypes.long, wire.VALUE: sequence})
    entries += wire.encode_value(_symbol(OFFSET))
    entries += wire.encode_value({wire.TYPE: wire.AMQPTypes.string, wire.VALUE: str(offset)})
    entries += wire.encode_value(_symbol(ENQUEUED_TIME))
    entries += wire.encode_value({wire.TYPE: wire.AMQPTypes.timestamp, wire.VALUE: enqueued_ms})
    entries += event.annotations
    section = _annotation_section(MESSAGE_ANNOTATIONS, bytes(entries), 2 * (3 + event.annotation_count))
    return section + event.bare


def runtime_metric_section(last_sequence: int, last_offset: str, last_enqueued_ms: int, retrieved_ms: int) -> bytes:
    """Delivery annotations a receiver asking for ``enable-receiver-runtime-metric`` gets."""
    entries = bytearray()
    for key, value in (
        (b"last_enqueued_sequence_number", {wire.TYPE: wire.AMQPTypes.long, wire.VALUE: last_sequence}),
        (b"last_enqueued_offset", {wire.TYPE: wire.AMQPTypes.string, wire.VALUE: last_offset}),
        (b"last_enqueued_time_utc", {wire.TYPE: wire.AMQPTypes.timestamp, wire.VALUE: last_enqueued_ms}),
        (b"runtime_info_retrieval_time_utc", {wire.TYPE: wire.AMQPTypes.timestamp, wire.VALUE: retrieved_ms}),
    ):
        entries += wire.encode_value(_symbol(key)) + wire.encode_value(value)
    return _annotation_section(DELIVERY_ANNOTATIONS, bytes(entries), 8)


def _typed_value(raw: memoryview) -> Any:
    """Decode one value, keeping strings as ``str`` (the codec turns them into bytes)."""
    value, _ = wire.skip_value(raw)
    if isinstance(value, bytes) and raw[0] in _STRINGLIKE:
        return value.decode("utf-8", "replace")
    return value


@dataclass(frozen=True, slots=True)
class EventView:
    """What Capture and the admin endpoint need from a stored message."""

    partition_key: str | None
    properties: Mapping[str, Any]
    body: bytes


def view_event(payload: bytes | memoryview) -> EventView:
    """Application properties (strings kept as ``str``), body and partition key of a stored message."""
    properties: dict[str, Any] = {}
    body = bytearray()
    partition_key: str | None = None
    for code, section in split_sections(payload):
        if code == APPLICATION_PROPERTIES:
            for _, raw in _map_entries(section):
                key = _typed_value(raw)
                _, after_key = wire.skip_value(raw)
                properties[str(key.decode() if isinstance(key, bytes) else key)] = _typed_value(after_key)
        elif code == DATA:
            value, _ = wire.skip_value(section[3:])
            body += value
        elif code == AMQP_VALUE:
            body += bytes(section[3:])
        elif code == MESSAGE_ANNOTATIONS:
            for key, raw in _map_entries(section):
                if key == PARTITION_KEY:
                    _, after_key = wire.skip_value(raw)
                    value = _typed_value(after_key)
                    partition_key = value if isinstance(value, str) else str(value)
    return EventView(partition_key, properties, bytes(body))
