"""AMQP 1.0 bytes on the wire: the only module that touches the SDK's private codec.

The emulator does not carry its own AMQP type system. ``azure-eventhub`` ships
one (``azure.eventhub._pyamqp``) and this module adapts it, so that a change
in that private API breaks exactly one module and the contract test
``tests/emulator/test_codec_contract.py`` says which name or behaviour moved.

Why we are careful here, in short (the long version is
``shared/reference/eventhubs-amqp.md``):

* The SDK reads performative fields *by position*, so every frame we send
  carries every field, nulls included. The SDK's namedtuples encode that way
  when built with every keyword, which is what :func:`frame` requires.
* Decoded values lose their AMQP types (strings and symbols come back as
  ``bytes``, timestamps as int milliseconds, descriptors are dropped), so the
  message surgery in :mod:`statepump.emulator.messages` works on raw section
  bytes rather than on decoded-then-re-encoded messages.
"""

from __future__ import annotations

import struct
from typing import Any, Final, NamedTuple

from azure.eventhub._pyamqp import _decode, _encode, endpoints, performatives
from azure.eventhub._pyamqp.error import AMQPError
from azure.eventhub._pyamqp.message import Message, Properties
from azure.eventhub._pyamqp.outcomes import Accepted, Rejected
from azure.eventhub._pyamqp.types import TYPE, VALUE, AMQPTypes

__all__ = [
    "AMQP_HEADER",
    "SASL_HEADER",
    "TYPE",
    "VALUE",
    "AMQPError",
    "AMQPTypes",
    "Accepted",
    "Message",
    "Properties",
    "Rejected",
    "Source",
    "Target",
    "decode_frame_body",
    "decode_message",
    "encode_message",
    "encode_value",
    "frame",
    "performatives",
    "skip_value",
]

#: Protocol headers (AMQP 1.0 section 2.2): ``AMQP``, protocol id, 1.0.0.
AMQP_HEADER: Final = b"AMQP\x00\x01\x00\x00"
SASL_HEADER: Final = b"AMQP\x03\x01\x00\x00"

#: Frame types (section 2.3): 0 is AMQP, 1 is SASL.
FRAME_AMQP: Final = b"\x00"
FRAME_SASL: Final = b"\x01"

Source = endpoints.Source
Target = endpoints.Target

# The decoder's dispatch table by constructor byte; private, hence the contract test.
_DECODERS: list[Any] = _decode._DECODE_BY_CONSTRUCTOR
_CHANNEL = struct.Struct(">H")


def frame(performative: NamedTuple, channel: int = 0, *, sasl: bool = False) -> bytes:
    """One complete frame (header and body) for ``performative`` on ``channel``.

    ``encode_frame`` returns a header that stops before the channel field, so
    the two channel bytes are added here.
    """
    header, body = _encode.encode_frame(performative, frame_type=FRAME_SASL if sasl else FRAME_AMQP)
    return bytes(header) + _CHANNEL.pack(channel) + bytes(body or b"")


_TRANSFER_HEAD = b"\x00\x53\x14\xd0"  # described, smallulong 0x14 (transfer), list32
# rcv-settle-mode and state null; resume, aborted, batchable false.
_TRANSFER_TAIL = b"\x40\x40\x42\x42\x42"


def transfer_frame(
    channel: int, handle: int, delivery_id: int | None, tag: bytes | None, settled: bool, more: bool, payload: bytes
) -> bytes:
    """A Transfer frame with all eleven fields, message format 0, then ``payload``.

    It decodes to the same fields as :func:`frame` of the SDK's ``TransferFrame``
    with the same values (the contract test checks it) and is about ten times
    faster to build, which matters because every delivered event is one.
    """
    fields = bytearray()
    _encode.encode_uint(fields, handle)
    if delivery_id is None:
        fields += b"\x40\x40\x40"  # continuation: delivery-id, tag and format null
    else:
        _encode.encode_uint(fields, delivery_id)
        _encode.encode_binary(fields, tag or b"")
        _encode.encode_uint(fields, 0)
    fields += b"\x41" if settled else b"\x42"
    fields += b"\x41" if more else b"\x42"
    fields += _TRANSFER_TAIL
    body_size = 4 + 4 + 4 + len(fields)  # descriptor+constructor, list size, count, fields
    header = struct.pack(">IBBH", 8 + body_size + len(payload), 2, 0, channel)
    return b"".join((header, _TRANSFER_HEAD, struct.pack(">II", 4 + len(fields), 11), fields, payload))


def empty_frame() -> bytes:
    """A heartbeat: a frame with no body (section 2.4.5)."""
    return b"\x00\x00\x00\x08\x02\x00\x00\x00"


def decode_frame_body(body: memoryview) -> tuple[int, list[Any]]:
    """``(descriptor, fields)`` of one frame body; a Transfer gets its payload appended."""
    code, fields = _decode.decode_frame(body)
    return int(code), list(fields)


def decode_message(payload: bytes | memoryview) -> Any:
    """The SDK's ``Message`` namedtuple for an encoded message (types lost as described above)."""
    return _decode.decode_payload(memoryview(payload))


def encode_message(message: Any) -> bytes:
    """Encode a ``Message`` namedtuple."""
    return bytes(_encode.encode_payload(bytearray(), message))


def encode_value(value: Any) -> bytes:
    """Encode a value, either plain Python or the codec's ``{TYPE: ..., VALUE: ...}`` form."""
    out = bytearray()
    _encode.encode_value(out, value)
    return bytes(out)


def skip_value(buffer: memoryview) -> tuple[Any, memoryview]:
    """Decode the value at the start of ``buffer``; return it and the rest of the buffer.

    The rest tells the caller where the value ended, which is what lets us cut
    messages into raw sections without re-encoding them.
    """
    if not buffer:
        raise ValueError("unexpected end of data")
    constructor = buffer[0]
    decoder = _DECODERS[constructor]
    if decoder is None:
        raise ValueError(f"unknown AMQP type constructor 0x{constructor:02x}")
    # The codec slices without checking, so a truncated value would decode
    # short instead of failing: check the declared size of variable-width types.
    width = _SIZE_WIDTH.get(constructor)
    if width is not None:
        if len(buffer) < 1 + width:
            raise ValueError(f"truncated value (constructor 0x{constructor:02x})")
        size = int.from_bytes(buffer[1 : 1 + width], "big")
        if size > len(buffer) - 1 - width:
            raise ValueError(f"value of {size} bytes overruns the {len(buffer) - 1 - width} bytes left")
    rest, value = decoder(buffer[1:])
    return value, rest


# Size field width of the variable-width encodings: binary, string, symbol, list, map, array.
_SIZE_WIDTH: Final = {
    **dict.fromkeys((0xA0, 0xA1, 0xA3, 0xC0, 0xC1, 0xE0), 1),
    **dict.fromkeys((0xB0, 0xB1, 0xB3, 0xD0, 0xD1, 0xF0), 4),
}
