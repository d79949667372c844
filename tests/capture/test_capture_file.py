"""Reading and writing Capture files, with the real service's quirks."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from statepump.core.captureformat import (
    CAPTURE_SCHEMA,
    BlockSplitter,
    CaptureFormatError,
    _decode_records,
    decode_block,
    format_enqueued_time,
    last_block_start,
    parse_enqueued_time,
    parse_header,
    read_capture_file,
    record_to_event,
    write_capture_file,
)
from statepump.core.events import Event

T0 = datetime(2020, 6, 25, 15, 47, 29, 123000, tzinfo=UTC)

# The schema of a 2016 file seen in the wild: Properties without null in its union.
OLD_SCHEMA: dict[str, Any] = {
    **CAPTURE_SCHEMA,
    "fields": [
        f
        if f["name"] != "Properties"
        else {**f, "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}}
        for f in CAPTURE_SCHEMA["fields"]
    ],
}


def ev(seq: int, **kw: Any) -> Event:
    base: dict[str, Any] = {
        "partition": "0",
        "sequence": seq,
        "offset": str(seq * 64),
        "enqueued_time": T0 + timedelta(seconds=seq),
        "partition_key": None,
        "properties": {},
        "body": f"body {seq}".encode(),
    }
    base.update(kw)
    return Event(**base)


def roundtrip(events: list[Event], codec: Any = "null") -> list[Event]:
    buf = io.BytesIO()
    assert write_capture_file(buf, events, codec=codec) == len(events)
    buf.seek(0)
    return list(read_capture_file(buf, "0", name="t.avro"))


def raw_file(records: list[dict[str, Any]], schema: dict[str, Any] = CAPTURE_SCHEMA, codec: str = "null") -> io.BytesIO:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), records, codec=codec)
    buf.seek(0)
    return buf


def service_record(seq: int, **kw: Any) -> dict[str, Any]:
    """A record as the real service writes it: .NET time, no x-opt-enqueued-time."""
    rec: dict[str, Any] = {
        "SequenceNumber": seq,
        "Offset": str(4295015048 + seq),
        "EnqueuedTimeUtc": "6/25/2020 3:47:29 PM",
        "SystemProperties": {"x-opt-publisher": "buddy1234"},
        "Properties": {},
        "Body": b'{"field1": "value1"}',
    }
    rec.update(kw)
    return rec


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_roundtrip_keeps_every_field(codec: str) -> None:
    events = [
        ev(0, partition_key="k1", properties={"a": 1, "b": 2.5, "c": "x", "d": b"\x00\xff", "e": None}),
        ev(1, body=b""),
        ev(2),
    ]
    got = roundtrip(events, codec)
    assert [e.sequence for e in got] == [0, 1, 2]
    assert got[0].properties == {"a": 1, "b": 2.5, "c": "x", "d": b"\x00\xff", "e": None}
    assert got[0].partition_key == "k1"
    assert got[1].partition_key is None
    assert [e.offset for e in got] == ["0", "64", "128"]
    assert [e.body for e in got] == [b"body 0", b"", b"body 2"]
    # x-opt-enqueued-time carries milliseconds; the .NET string alone would not
    assert [e.enqueued_time for e in got] == [e.enqueued_time for e in events]


def test_writer_writes_what_the_service_writes() -> None:
    buf = io.BytesIO()
    write_capture_file(buf, [ev(5, partition_key="pk")], codec="deflate")
    buf.seek(0)
    reader = fastavro.reader(buf)
    assert reader.metadata["avro.codec"] == "deflate"
    schema: Any = reader.writer_schema
    assert schema["name"] == "Microsoft.ServiceBus.Messaging.EventData"
    records: list[Any] = list(reader)
    (record,) = records
    assert record["EnqueuedTimeUtc"] == "6/25/2020 3:47:34 PM"
    assert record["Offset"] == "320"
    assert record["SystemProperties"]["x-opt-sequence-number"] == 5
    assert record["SystemProperties"]["x-opt-offset"] == "320"
    assert record["SystemProperties"]["x-opt-partition-key"] == "pk"


def test_property_types_outside_the_union_are_converted() -> None:
    (got,) = roundtrip([ev(0, properties={"flag": True, "big": 2**70, "when": T0})])
    assert got.properties == {"flag": 1, "big": str(2**70), "when": 1593100049123}


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_empty_file_has_no_events(codec: str) -> None:
    assert roundtrip([], codec) == []


def test_service_file_with_dotnet_times_and_null_property() -> None:
    buf = raw_file(
        [
            service_record(10, Properties={"tenant": "a", "gone": None}),
            service_record(11, EnqueuedTimeUtc="12/31/2020 12:00:00 AM", Body=None),
        ]
    )
    got = list(read_capture_file(buf, "3"))
    assert [(e.partition, e.sequence) for e in got] == [("3", 10), ("3", 11)]
    assert got[0].enqueued_time == datetime(2020, 6, 25, 15, 47, 29, tzinfo=UTC)
    assert got[0].properties == {"tenant": "a", "gone": None}
    assert got[1].enqueued_time == datetime(2020, 12, 31, 0, 0, 0, tzinfo=UTC)
    assert got[1].body == b""


def test_reader_uses_the_writer_schema_in_the_file() -> None:
    got = list(read_capture_file(raw_file([service_record(1, Properties={"n": 3})], OLD_SCHEMA), "0"))
    assert got[0].properties == {"n": 3}


def test_records_out_of_order_are_returned_as_stored() -> None:
    got = list(read_capture_file(raw_file([service_record(2), service_record(1), service_record(2)]), "0"))
    assert [e.sequence for e in got] == [2, 1, 2]


def test_bad_record_names_file_and_position() -> None:
    schema = {
        **CAPTURE_SCHEMA,
        "fields": [{"name": "SequenceNumber", "type": "string"}, *CAPTURE_SCHEMA["fields"][1:]],
    }
    buf = raw_file([{**service_record(0), "SequenceNumber": "0"}, {**service_record(1), "SequenceNumber": "x"}], schema)
    with pytest.raises(CaptureFormatError, match=r"f\.avro record #0: SequenceNumber is str"):
        list(read_capture_file(buf, "0", name="f.avro"))


def test_bad_time_string_names_file_position_and_text() -> None:
    buf = raw_file([service_record(0), service_record(1, EnqueuedTimeUtc="25.06.2020 15:47")])
    it = read_capture_file(buf, "0", name="f.avro")
    assert next(it).sequence == 0
    with pytest.raises(CaptureFormatError, match=r"f\.avro record #1: EnqueuedTimeUtc '25\.06\.2020 15:47'"):
        next(it)


def test_not_avro_is_a_clear_error() -> None:
    with pytest.raises(CaptureFormatError, match=r"junk\.avro: not an Avro object-container file"):
        list(read_capture_file(io.BytesIO(b"hello world, not avro"), "0", name="junk.avro"))


def test_truncated_file_is_a_clear_error_after_the_good_records() -> None:
    buf = io.BytesIO()
    # several blocks, so that truncation cuts a later block
    fastavro.writer(
        buf, fastavro.parse_schema(CAPTURE_SCHEMA), [service_record(i) for i in range(300)], sync_interval=500
    )
    data = buf.getvalue()
    it = read_capture_file(io.BytesIO(data[: len(data) - 40]), "0", name="cut.avro")
    seen: list[int] = []

    def drain() -> None:
        for e in it:
            seen.append(e.sequence)

    with pytest.raises(CaptureFormatError, match=r"cut\.avro: unreadable after record #\d+"):
        drain()
    assert seen == list(range(len(seen)))
    assert 0 < len(seen) < 300


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ([1, 2], "is list, not an EventData record"),
        ({"Offset": "1"}, "has no SequenceNumber field"),
        ({"SequenceNumber": True, "Offset": "1"}, "SequenceNumber is bool"),
        ({"SequenceNumber": -1, "Offset": "1"}, "SequenceNumber -1 is negative"),
        ({"SequenceNumber": 1, "Offset": 1}, "Offset is int"),
        ({"SequenceNumber": 1, "Offset": "1", "Properties": [1]}, "Properties is list"),
        ({"SequenceNumber": 1, "Offset": "1", "SystemProperties": "x"}, "SystemProperties is str"),
        ({"SequenceNumber": 1, "Offset": "1", "Body": "text"}, "Body is str"),
        ({"SequenceNumber": 1, "Offset": "1", "Body": None}, "has no EnqueuedTimeUtc field"),
    ],
)
def test_record_validation(record: Any, message: str) -> None:
    with pytest.raises(CaptureFormatError, match=message):
        record_to_event(record, "0", where="w.avro record #9")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6/25/2020 3:47:29 PM", datetime(2020, 6, 25, 15, 47, 29, tzinfo=UTC)),
        ("6/25/2020 12:00:00 PM", datetime(2020, 6, 25, 12, 0, 0, tzinfo=UTC)),
        ("6/25/2020 12:59:59 AM", datetime(2020, 6, 25, 0, 59, 59, tzinfo=UTC)),
        ("06/05/2020 01:02:03 am", datetime(2020, 6, 5, 1, 2, 3, tzinfo=UTC)),
        ("6/25/2020 3:47:29.1234567 PM", datetime(2020, 6, 25, 15, 47, 29, 123456, tzinfo=UTC)),
        ("2020-06-25T15:47:29Z", datetime(2020, 6, 25, 15, 47, 29, tzinfo=UTC)),
        ("2020-06-25T17:47:29.5+02:00", datetime(2020, 6, 25, 15, 47, 29, 500000, tzinfo=UTC)),
        ("2020-06-25 15:47:29", datetime(2020, 6, 25, 15, 47, 29, tzinfo=UTC)),
    ],
)
def test_parse_enqueued_time(text: str, expected: datetime) -> None:
    got = parse_enqueued_time(text)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "13/25/2020 3:47:29 PM", "6/25/2020 13:47:29 PM", "6/25/2020 0:47:29 AM", "soon"])
def test_parse_enqueued_time_rejects_with_the_text(text: str) -> None:
    with pytest.raises(CaptureFormatError, match=f"EnqueuedTimeUtc '{text}'"):
        parse_enqueued_time(text)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)))
def test_dotnet_format_parses_back_to_the_second(when: datetime) -> None:
    assert parse_enqueued_time(format_enqueued_time(when)) == when.replace(microsecond=0)


def test_bad_codec_is_refused() -> None:
    with pytest.raises(CaptureFormatError, match="codec must be"):
        write_capture_file(io.BytesIO(), [], codec="snappy")  # type: ignore[arg-type]


def test_writer_streams_a_generator() -> None:
    buf = io.BytesIO()
    assert write_capture_file(buf, (ev(i) for i in range(1000)), codec="deflate") == 1000
    buf.seek(0)
    assert [e.sequence for e in read_capture_file(buf, "0")] == list(range(1000))


# --------------------------------------------------------------------------- container framing


def many_blocks(n: int, codec: str = "null") -> bytes:
    buf = io.BytesIO()
    fastavro.writer(
        buf,
        fastavro.parse_schema(CAPTURE_SCHEMA),
        [service_record(i) for i in range(n)],
        codec=codec,
        sync_interval=300,
    )
    return buf.getvalue()


@given(
    n=st.integers(0, 120),
    codec=st.sampled_from(["null", "deflate"]),
    cuts=st.lists(st.integers(1, 400), min_size=1, max_size=30),
)
def test_splitter_any_chunking_gives_every_record_once(n: int, codec: str, cuts: list[int]) -> None:
    data = many_blocks(n, codec)
    splitter = BlockSplitter("s.avro")
    blocks: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        blocks.extend(splitter.feed(data[pos : pos + step]))
        pos += step
        i += 1
    splitter.finish()
    assert splitter.header is not None
    assert splitter.header.codec == codec
    got = [e.sequence for b in blocks for e in decode_block(splitter.header, b, "0", name="s.avro")]
    assert got == list(range(n))
    if n > 20:
        assert len(blocks) > 1


@given(n=st.integers(1, 120), tail=st.integers(40, 3000))
def test_last_block_found_from_any_tail(n: int, tail: int) -> None:
    data = many_blocks(n)
    header = parse_header(data)
    assert header is not None
    start = last_block_start(data[-tail:], header.sync)
    if start is None:
        # the tail is shorter than the last block and its leading marker
        full = last_block_start(data[len(header.raw) - 16 :], header.sync)
        assert full is not None
        assert tail < len(data) - (len(header.raw) - 16) - full + 16
        return
    events = decode_block(header, data[-tail:][start:], "0")
    assert events[-1].sequence == n - 1


@pytest.mark.parametrize("cut", [0, 2, 10, 40])
def test_splitter_reports_a_file_ending_in_the_header(cut: int) -> None:
    splitter = BlockSplitter("h.avro")
    assert splitter.feed(many_blocks(3)[:cut]) == []
    with pytest.raises(CaptureFormatError, match=r"h\.avro: the file (is empty|ends inside its Avro header)"):
        splitter.finish()


def test_splitter_rejects_a_wrong_sync_marker() -> None:
    data = bytearray(many_blocks(30))
    data[-1] ^= 0xFF  # the last block's trailing marker
    with pytest.raises(CaptureFormatError, match="does not end with the file's sync marker"):
        BlockSplitter("x.avro").feed(bytes(data))


def test_splitter_rejects_what_is_not_avro() -> None:
    with pytest.raises(CaptureFormatError, match=r"x\.avro: not an Avro object-container file"):
        BlockSplitter("x.avro").feed(b"\x89PNG\r\n")


# --------------------------------------------------------------------------- the decoding loop

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**63 - 1),
            st.integers(-62135596800000, 253402300799999),  # x-opt-enqueued-time: years 1 to 9999
            st.none() | st.text(max_size=4),
            st.dictionaries(st.text(max_size=3), st.none() | st.integers(-5, 5) | st.text(max_size=3), max_size=2),
            st.none() | st.binary(max_size=10),
        ),
        max_size=40,
    ),
    st.sampled_from(["null", "deflate"]),
)
def test_every_record_becomes_the_event_it_stands_for(rows: list[tuple[Any, ...]], codec: str) -> None:
    records = [
        {
            "SequenceNumber": seq,
            "Offset": str(seq),
            "EnqueuedTimeUtc": "1/1/2000 1:00:00 AM",
            "SystemProperties": {"x-opt-enqueued-time": ms, **({} if key is None else {"x-opt-partition-key": key})},
            "Properties": props,
            "Body": body,
        }
        for seq, ms, key, props, body in rows
    ]
    expected = [
        Event("7", seq, str(seq), EPOCH + timedelta(milliseconds=ms), key, props, b"" if body is None else body)
        for seq, ms, key, props, body in rows
    ]
    data = raw_file(records, codec=codec).getvalue()
    got = list(read_capture_file(io.BytesIO(data), "7"))
    assert got == expected
    assert all(type(e) is Event for e in got)
    header = parse_header(data)
    assert header is not None
    assert decode_block(header, data[len(header.raw) :], "7") == expected


def test_a_time_out_of_range_names_the_record_after_yielding_the_ones_before() -> None:
    records = [service_record(i) for i in range(700)]
    records[600]["SystemProperties"] = {"x-opt-enqueued-time": 2**62}
    got: list[Event] = []
    with pytest.raises(CaptureFormatError, match=r"f\.avro record #600: x-opt-enqueued-time 4611686018427387904"):
        got.extend(read_capture_file(raw_file(records), "0", name="f.avro"))
    assert [e.sequence for e in got] == list(range(600))


def test_decode_block_counts_positions_from_the_blocks_first_record() -> None:
    data = raw_file([service_record(0), service_record(1, EnqueuedTimeUtc="noon")]).getvalue()
    header = parse_header(data)
    assert header is not None
    with pytest.raises(CaptureFormatError, match=r"b\.avro record #41: EnqueuedTimeUtc 'noon'"):
        decode_block(header, data[len(header.raw) :], "0", name="b.avro", position=40)


def test_a_record_only_the_full_check_accepts_does_not_stop_the_loop() -> None:
    # fastavro gives plain dicts; other mappings take the slower, checking path and the loop goes on.
    records: list[Any] = [service_record(0), MappingProxyType(service_record(1)), service_record(2)]
    out: list[Event] = []
    _decode_records(records, "0", "m.avro", 0, out)
    assert [e.sequence for e in out] == [0, 1, 2]
    assert out[1] == record_to_event(service_record(1), "0")


def test_an_error_from_the_decoder_names_the_position_and_keeps_the_events_before() -> None:
    def records() -> Any:
        yield service_record(5)
        yield service_record(6)
        raise EOFError("cannot read long")

    out: list[Event] = []
    with pytest.raises(
        CaptureFormatError, match=r"m\.avro: unreadable after record #12 \(EOFError: cannot read long\)"
    ):
        _decode_records(records(), "0", "m.avro", 10, out)
    assert [e.sequence for e in out] == [5, 6]
