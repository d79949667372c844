"""The private parts of azure-eventhub the emulator relies on, pinned down.

``statepump.emulator.wire`` imports ``azure.eventhub._pyamqp``, a private API
that may change in any release. If one of these tests fails after an SDK
upgrade, the emulator is broken in the way the test names: fix ``wire.py``
(or the pin in pyproject.toml), never this test.
"""

from __future__ import annotations

import uuid
from importlib.metadata import version

import pytest
from azure.eventhub._pyamqp import _decode, _encode, endpoints, performatives
from azure.eventhub._pyamqp.message import Message, Properties

from statepump.emulator import messages, wire


def test_sdk_version_is_in_the_tested_range() -> None:
    major, minor, *_ = (int(x) for x in version("azure-eventhub").split(".")[:3])
    assert (major, minor) == (5, 15), "re-run this suite and widen the pin in pyproject.toml"


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("OpenFrame", 10),
        ("BeginFrame", 8),
        ("AttachFrame", 14),
        ("FlowFrame", 11),
        ("TransferFrame", 12),  # eleven fields and the payload
        ("DispositionFrame", 6),
        ("DetachFrame", 3),
        ("EndFrame", 1),
        ("CloseFrame", 1),
        ("SASLMechanism", 1),
        ("SASLOutcome", 2),
    ],
)
def test_performatives_have_the_fields_we_fill(name: str, fields: int) -> None:
    performative = getattr(performatives, name)
    assert len(performative._fields) == fields
    assert isinstance(performative._code, int)


def test_terminus_fields() -> None:
    assert endpoints.Source._fields[0] == "address"
    assert endpoints.Source._fields[7] == "filters"
    assert len(endpoints.Source._fields) == 11
    assert len(endpoints.Target._fields) == 7


def test_encode_frame_writes_every_field_and_leaves_the_channel_to_us() -> None:
    attach = performatives.AttachFrame(
        name="link",
        handle=1,
        role=False,
        send_settle_mode=1,
        rcv_settle_mode=0,
        source=endpoints.Source(*([None] * 11)),
        target=endpoints.Target(*([None] * 7)),
        unsettled=None,
        incomplete_unsettled=False,
        initial_delivery_count=0,
        max_message_size=None,
        offered_capabilities=None,
        desired_capabilities=None,
        properties=None,
    )
    header, body = _encode.encode_frame(attach)
    assert len(header) == 6  # size, doff, type: no channel
    assert body is not None
    code, fields = _decode.decode_frame(memoryview(bytes(body)))
    assert code == 0x12
    assert len(fields) == 14  # trailing nulls are kept: the SDK indexes them
    assert len(fields[5]) == 11 and len(fields[6]) == 7
    assert fields[0] == b"link"  # strings decode to bytes


def test_transfer_fast_path_decodes_like_the_sdks_transfer() -> None:
    payload = b"\x00\x53\x75\xa0\x02hi"
    for delivery_id, tag, settled, more in [(5, b"\x00\x00\x00\x05", True, False), (None, None, True, True)]:
        fast = wire.transfer_frame(3, 1, delivery_id, tag, settled, more, payload)
        slow = wire.frame(
            performatives.TransferFrame(
                handle=1,
                delivery_id=delivery_id,
                delivery_tag=tag,
                message_format=None if delivery_id is None else 0,
                settled=settled,
                more=more,
                rcv_settle_mode=None,
                state=None,
                resume=False,
                aborted=False,
                batchable=False,
                payload=payload,
            ),
            3,
        )
        assert fast[4:8] == slow[4:8]  # doff, type, channel
        assert int.from_bytes(fast[:4], "big") == len(fast)
        fast_fields = wire.decode_frame_body(memoryview(fast[8:]))
        slow_fields = wire.decode_frame_body(memoryview(slow[8:]))
        assert fast_fields[0] == slow_fields[0] == 0x14
        assert [bytes(f) if isinstance(f, memoryview) else f for f in fast_fields[1]] == [
            bytes(f) if isinstance(f, memoryview) else f for f in slow_fields[1]
        ]
        assert len(fast_fields[1]) == 12 and bytes(fast_fields[1][11]) == payload


def test_decode_frame_drops_descriptors_of_described_values() -> None:
    # The selector filter arrives without its descriptor: we describe it again when echoing.
    source = endpoints.Source(
        address="amqps://h/hub/ConsumerGroups/$default/Partitions/0",
        durable=None,
        expiry_policy=None,
        timeout=None,
        dynamic=None,
        dynamic_node_properties=None,
        distribution_mode=None,
        filters={b"apache.org:selector-filter:string": (b"apache.org:selector-filter:string", "x > '1'")},
        default_outcome=None,
        outcomes=None,
        capabilities=None,
    )
    body = _encode.encode_frame(
        performatives.AttachFrame(
            "n", 1, True, 0, 0, source, endpoints.Target(*([None] * 7)), None, False, None, None, None, None, None
        )
    )[1]
    assert body is not None
    _, fields = _decode.decode_frame(memoryview(bytes(body)))
    assert fields[5][7] == {b"apache.org:selector-filter:string": b"x > '1'"}


def test_message_round_trip_and_the_decoder_table() -> None:
    message = Message(
        properties=Properties(message_id=uuid.UUID(int=1), content_type="text/plain"),
        application_properties={"k": "v", "n": 3},
        message_annotations={b"x-opt-partition-key": "pk"},
        data=[b"body"],
    )
    encoded = bytes(_encode.encode_payload(bytearray(), message))
    decoded = _decode.decode_payload(memoryview(encoded))
    assert decoded.properties is not None
    assert decoded.properties.message_id == uuid.UUID(int=1)
    assert decoded.application_properties == {b"k": b"v", b"n": 3}
    assert decoded.data == [b"body"]
    # The decoder dispatch table by constructor byte, used to find where values end.
    assert len(_decode._DECODE_BY_CONSTRUCTOR) == 256
    value, rest = wire.skip_value(memoryview(b"\xa1\x02hi\x40"))
    assert value == b"hi" and bytes(rest) == b"\x40"
    # And our section surgery on top of it.
    incoming = messages.parse_event(encoded)
    assert incoming.partition_key == "pk"
    stored = wire.decode_message(messages.stored_payload(incoming, sequence=4, offset=9, enqueued_ms=5))
    assert stored.message_annotations[b"x-opt-sequence-number"] == 4
    assert stored.properties.message_id == uuid.UUID(int=1)


def test_error_and_outcome_types() -> None:
    assert wire.AMQPError._fields == ("condition", "description", "info")
    assert wire.Rejected._fields == ("error",)
    assert wire.Accepted._fields == ()
