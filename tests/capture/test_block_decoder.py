"""The fast block decoder (statepump.capture._decode_records) against fastavro.

Every test decodes the same bytes both ways: the fast path must give exactly
the events fastavro's path gives, and must actually be the one taken for the
files Capture writes (a decoder that silently fell back would pass the
equality checks and lose the speed).
"""

from __future__ import annotations

import io
import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statepump.capture import (
    CAPTURE_SCHEMA,
    SYNC_SIZE,
    AvroHeader,
    BlockSplitter,
    CaptureFormatError,
    _block_frame,
    _decode_records,
    _decode_with_fastavro,
    _layout,
    decode_block,
    parse_header,
    write_capture_file,
)
from statepump.events import Event

T0 = datetime(2026, 11, 1, 12, 0, 59, 998000, tzinfo=UTC)


def split(data: bytes) -> tuple[AvroHeader, list[bytes]]:
    splitter = BlockSplitter("f.avro")
    blocks = splitter.feed(data)
    splitter.finish()
    assert splitter.header is not None
    return splitter.header, blocks


def fast(header: AvroHeader, block: bytes) -> list[Event] | None:
    """The fast decoder's answer for one block, None if it declined."""
    layout = _layout(header.schema)
    assert layout is not None, "a Capture schema must have the fast layout"
    frame = _block_frame(block, 0, header.sync)
    assert frame is not None
    count, start, stop = frame
    data = block[start:stop]
    if header.codec == "deflate":
        data = zlib.decompress(data, -15)
    return _decode_records(data, count, layout, "0")


def both_ways(data: bytes) -> list[Event]:
    """Decode ``data`` with decode_block and with fastavro; check they agree and the fast path was taken."""
    header, blocks = split(data)
    mine = [e for b in blocks for e in decode_block(header, b, "0", name="f.avro")]
    theirs = [e for b in blocks for e in _decode_with_fastavro(header, b, "0", "f.avro", 0)]
    assert mine == theirs
    assert [type(e.enqueued_time.tzinfo) for e in mine] == [type(UTC)] * len(mine)
    for b in blocks:
        assert fast(header, b) is not None
    return mine


property_values = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
events = st.builds(
    Event,
    partition=st.just("0"),
    sequence=st.integers(0, 2**62),
    offset=st.text(max_size=12),
    enqueued_time=st.datetimes(datetime(1900, 1, 1), datetime(9000, 1, 1), timezones=st.just(UTC)).map(
        lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)
    ),
    partition_key=st.one_of(st.none(), st.text(max_size=70)),
    properties=st.dictionaries(st.text(max_size=70), property_values, max_size=5),
    body=st.binary(max_size=300),
)


@settings(max_examples=150)
@given(batch=st.lists(events, max_size=40), codec=st.sampled_from(["null", "deflate"]))
def test_fast_decoder_gives_what_fastavro_gives(batch: list[Event], codec: Any) -> None:
    buf = io.BytesIO()
    write_capture_file(buf, batch, codec=codec)
    got = both_ways(buf.getvalue())
    assert [(e.sequence, e.offset, e.enqueued_time, e.partition_key, e.body) for e in got] == [
        (e.sequence, e.offset, e.enqueued_time, e.partition_key, e.body) for e in batch
    ]


def test_times_cross_seconds_and_repeat() -> None:
    times = [T0, T0, T0 + timedelta(milliseconds=1), T0 + timedelta(seconds=5), T0 - timedelta(days=400), T0]
    batch = [Event("0", i, str(i), t, None, {}, b"") for i, t in enumerate(times)]
    buf = io.BytesIO()
    write_capture_file(buf, batch)
    assert [e.enqueued_time for e in both_ways(buf.getvalue())] == times


def service_file(records: list[dict[str, Any]], schema: dict[str, Any] = CAPTURE_SCHEMA) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), records)
    return buf.getvalue()


def service_record(seq: int, **kw: Any) -> dict[str, Any]:
    """As the real service writes it: .NET time, no x-opt-enqueued-time."""
    return {
        "SequenceNumber": seq,
        "Offset": str(4295015048 + seq),
        "EnqueuedTimeUtc": "6/25/2020 3:47:29 PM",
        "SystemProperties": {"x-opt-publisher": "buddy1234", "x-opt-enqueued-time": 1.5},
        "Properties": {"gone": None, "n": 3, "f": 0.25, "b": b"\x00"},
        "Body": None,
        **kw,
    }


def test_service_records_take_the_time_from_the_dotnet_string() -> None:
    got = both_ways(service_file([service_record(7), service_record(8, EnqueuedTimeUtc="2020-06-25T15:47:30Z")]))
    assert [e.enqueued_time for e in got] == [
        datetime(2020, 6, 25, 15, 47, 29, tzinfo=UTC),
        datetime(2020, 6, 25, 15, 47, 30, tzinfo=UTC),
    ]
    assert got[0].properties == {"gone": None, "n": 3, "f": 0.25, "b": b"\x00"}
    assert got[0].body == b""


def test_old_schema_without_null_in_properties() -> None:
    schema = {
        **CAPTURE_SCHEMA,
        "fields": [
            f if f["name"] != "Properties" else {**f, "type": {"type": "map", "values": ["string", "long"]}}
            for f in CAPTURE_SCHEMA["fields"]
        ],
    }
    got = both_ways(service_file([service_record(1, Properties={"a": "x", "n": 2})], schema))
    assert got[0].properties == {"a": "x", "n": 2}


def test_plain_types_instead_of_unions() -> None:
    fields = {f["name"]: f for f in CAPTURE_SCHEMA["fields"]}
    schema = {
        **CAPTURE_SCHEMA,
        "fields": [
            *CAPTURE_SCHEMA["fields"][:3],
            {"name": "SystemProperties", "type": {"type": "map", "values": "string"}},
            {"name": "Properties", "type": {"type": "map", "values": "string"}},
            {**fields["Body"], "type": "bytes"},
        ],
    }
    record = {**service_record(4), "SystemProperties": {"x-opt-partition-key": "pk"}, "Properties": {"a": "b"}}
    got = both_ways(service_file([{**record, "Body": b"x"}], schema))
    assert (got[0].partition_key, got[0].properties, got[0].body) == ("pk", {"a": "b"}, b"x")


@pytest.mark.parametrize(
    "change",
    [
        lambda fs: list(reversed(fs)),  # another field order
        lambda fs: [*fs[:5], {"name": "Body", "type": ["null", "bytes", "string"]}],  # a body that may be text
        lambda fs: [*fs, {"name": "Extra", "type": "long", "default": 0}],  # a field Capture does not write
        lambda fs: [{"name": "SequenceNumber", "type": {"type": "long", "logicalType": "timestamp-millis"}}, *fs[1:]],
    ],
)
def test_other_schemas_are_left_to_fastavro(change: Any) -> None:
    schema = {**CAPTURE_SCHEMA, "fields": change(list(CAPTURE_SCHEMA["fields"]))}
    assert _layout(json.dumps(schema).encode()) is None


# --------------------------------------------------------------------------- hand-made bytes


def varint(n: int) -> bytes:
    u = n << 1 if n >= 0 else ((-n) << 1) - 1
    out = bytearray()
    while u >= 0x80:
        out.append(u & 0x7F | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def text(s: str) -> bytes:
    raw = s.encode()
    return varint(len(raw)) + raw


def sized_map(entries: list[bytes]) -> bytes:
    """A map written as one block with a negative count and its byte size, as some writers do."""
    body = b"".join(entries)
    return varint(-len(entries)) + varint(len(body)) + body + varint(0)


def record(seq: int, *, body_index: int = 1, properties: int = 70) -> bytes:
    system = [
        text("x-opt-sequence-number") + varint(0) + varint(seq),
        text("x-opt-" + "long-name-" * 8) + varint(2) + text("v"),  # a key longer than 63 bytes
        text("x-opt-enqueued-time") + varint(0) + varint(1_600_000_000_123 + seq),
        text("x-opt-partition-key") + varint(2) + text("pk"),
    ]
    props = [text(f"p{i}") + varint(2) + text("v" * i) for i in range(properties)]  # a two-byte count
    return (
        varint(seq) + text(str(seq)) + text("9/13/2020 12:26:40 PM")
        + sized_map(system) + varint(len(props)) + b"".join(props) + varint(0)
        + varint(body_index) + text("body")
    )  # fmt: skip


def block(header: AvroHeader, records: list[bytes], count: int | None = None) -> bytes:
    data = b"".join(records)
    return varint(len(records) if count is None else count) + varint(len(data)) + data + header.sync


def empty_header() -> AvroHeader:
    buf = io.BytesIO()
    write_capture_file(buf, [])
    header = parse_header(buf.getvalue())
    assert header is not None
    return header


def test_sized_map_blocks_long_keys_and_many_properties() -> None:
    header = empty_header()
    data = header.raw + block(header, [record(300), record(301)])
    got = both_ways(data)
    assert [e.sequence for e in got] == [300, 301]
    assert got[0].enqueued_time == datetime(2020, 9, 13, 12, 26, 40, 423000, tzinfo=UTC)
    assert got[0].partition_key == "pk"
    assert len(got[0].properties) == 70


def test_a_bad_union_index_is_fastavros_clear_error() -> None:
    header = empty_header()
    bad = block(header, [record(1), record(2, body_index=9)])
    assert fast(header, bad) is None
    with pytest.raises(CaptureFormatError, match=r"b\.avro: unreadable after record #5"):
        decode_block(header, bad, "0", name="b.avro", position=4)


def test_a_count_larger_than_the_records_is_fastavros_clear_error() -> None:
    header = empty_header()
    bad = block(header, [record(1), record(2)], count=3)
    assert fast(header, bad) is None
    with pytest.raises(CaptureFormatError, match=r"b\.avro: unreadable after record #2"):
        decode_block(header, bad, "0", name="b.avro")


def test_several_blocks_in_one_call_and_positions() -> None:
    header = empty_header()
    good = block(header, [record(1), record(2)])
    assert [e.sequence for e in decode_block(header, good + good, "0")] == [1, 2, 1, 2]
    bad = block(header, [record(3, body_index=9)])
    with pytest.raises(CaptureFormatError, match=r"unreadable after record #4"):
        decode_block(header, good + good + bad, "0")
    assert len(good) > SYNC_SIZE
