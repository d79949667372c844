"""Partition logs: numbering, positions, expiry, durability (files under tmp_path, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from statepump.emulator import wire
from statepump.emulator.log import PartitionLog
from statepump.emulator.messages import IncomingEvent, parse_event
from statepump.emulator.positions import InvalidPosition, StartPosition, parse_selector


def events(*bodies: str) -> list[IncomingEvent]:
    return [parse_event(wire.encode_message(wire.Message(data=[b.encode()]))) for b in bodies]


def body(payload: bytes) -> bytes:
    return b"".join(wire.decode_message(payload).data)


def test_numbering_offsets_and_times() -> None:
    log = PartitionLog("0")
    info = log.info()
    assert (info.begin_sequence, info.last_sequence, info.last_offset, info.empty) == (0, -1, "-1", True)
    first = log.append(events("a", "b"), now_ms=1000)
    second = log.append(events("c"), now_ms=500)  # the clock went back: times do not
    records = first + second
    assert [r.sequence for r in records] == [0, 1, 2]
    assert [r.enqueued_ms for r in records] == [1000, 1000, 1000]
    assert records[0].offset == 0 and records[0].offset < records[1].offset < records[2].offset
    info = log.info()
    assert (info.last_sequence, info.last_offset, info.last_enqueued_ms, info.empty) == (
        2,
        str(records[2].offset),
        1000,
        False,
    )
    annotations = wire.decode_message(records[1].payload).message_annotations
    assert annotations[b"x-opt-sequence-number"] == 1
    assert annotations[b"x-opt-offset"] == str(records[1].offset).encode()
    assert annotations[b"x-opt-enqueued-time"] == 1000
    assert [body(r.payload) for r in log.read(1, 10)] == [b"b", b"c"]


def test_start_positions() -> None:
    log = PartitionLog("0")
    log.append(events("a", "b"), 1000)
    log.append(events("c", "d"), 2000)
    offsets = [r.offset for r in log.read(0, 10)]

    def start(selector: str) -> int:
        return log.start_sequence(parse_selector(selector))

    assert start("amqp.annotation.x-opt-offset > '-1'") == 0
    assert start("amqp.annotation.x-opt-offset > '@latest'") == 4
    assert start("amqp.annotation.x-opt-sequence-number > '1'") == 2
    assert start("amqp.annotation.x-opt-sequence-number >= '1'") == 1
    assert start(f"amqp.annotation.x-opt-offset > '{offsets[2]}'") == 3
    assert start(f"amqp.annotation.x-opt-offset >= '{offsets[2]}'") == 2
    assert start("amqp.annotation.x-opt-enqueued-time > '1000'") == 2
    assert start("amqp.annotation.x-opt-enqueued-time >= '1000'") == 0
    assert start("amqp.annotation.x-opt-enqueued-time > '5000'") == 4
    assert start("amqp.annotation.x-opt-sequence-number > '3'") == 4  # exclusive of the last: what comes next
    with pytest.raises(
        InvalidPosition,
        match=r"The supplied sequence number '9' is invalid. The last sequence number in the system is '3'",
    ):
        start("amqp.annotation.x-opt-sequence-number > '9'")


@pytest.mark.parametrize(
    "selector",
    ["", "amqp.annotation.x-opt-sequence-number > 5", "amqp.annotation.x-opt-sequence-number > 'x'", "1=1"],
)
def test_bad_selectors_are_named(selector: str) -> None:
    with pytest.raises(InvalidPosition):
        parse_selector(selector)


def test_expire_moves_the_beginning_like_retention() -> None:
    log = PartitionLog("0")
    log.append(events("a", "b", "c"), 1000)
    log.append(events("d"), 5000)
    assert log.expire(2) == 2
    assert log.expire(1) == 0  # never backwards
    assert log.info().begin_sequence == 2
    assert [r.sequence for r in log.read(0, 10)] == [2, 3]  # below the beginning: from the beginning
    assert log.start_sequence(StartPosition("sequence", "0", True)) == 2
    assert log.expire_before_time(5000) == 1
    assert log.info().begin_sequence == 3
    with pytest.raises(ValueError, match="ends at 3"):
        log.expire(9)
    assert log.expire(4) == 1
    info = log.info()
    assert (info.begin_sequence, info.last_sequence, info.empty) == (4, 3, True)
    assert [r.sequence for r in log.append(events("e"), 6000)] == [4]


def test_survives_reopening(tmp_path: Path) -> None:
    log = PartitionLog("0", tmp_path)
    log.append(events("a", "b", "c"), 1000)
    log.close()
    again = PartitionLog("0", tmp_path)
    assert [body(r.payload) for r in again.read(0, 10)] == [b"a", b"b", b"c"]
    assert [r.sequence for r in again.append(events("d"), 2000)] == [3]
    again.close()
    assert PartitionLog("0", tmp_path).info().last_sequence == 3


def test_a_torn_last_record_is_cut_off(tmp_path: Path) -> None:
    log = PartitionLog("1", tmp_path)
    log.append(events("a", "b"), 1000)
    log.close()
    path = tmp_path / "partition-1.log"
    whole = path.read_bytes()
    path.write_bytes(whole[:-3])  # killed while writing b
    again = PartitionLog("1", tmp_path)
    assert [body(r.payload) for r in again.read(0, 10)] == [b"a"]
    assert [r.sequence for r in again.append(events("b2"), 2000)] == [1]
    again.close()
    assert [body(r.payload) for r in PartitionLog("1", tmp_path).read(0, 10)] == [b"a", b"b2"]


def test_a_corrupt_record_is_treated_like_a_torn_tail(tmp_path: Path) -> None:
    log = PartitionLog("0", tmp_path)
    log.append(events("a"), 1000)
    log.append(events("b"), 1000)
    log.close()
    path = tmp_path / "partition-0.log"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert [r.sequence for r in PartitionLog("0", tmp_path).read(0, 10)] == [0]


def test_expiry_and_numbering_survive_reopening_and_compaction(tmp_path: Path) -> None:
    log = PartitionLog("0", tmp_path)
    log.append(events(*[str(i) for i in range(10)]), 1000)
    before = (tmp_path / "partition-0.log").stat().st_size
    log.expire(8)  # the expired records now outweigh the kept ones: the file is rewritten
    assert (tmp_path / "partition-0.log").stat().st_size < before / 3
    log.close()
    again = PartitionLog("0", tmp_path)
    assert again.info().begin_sequence == 8
    assert [body(r.payload) for r in again.read(0, 10)] == [b"8", b"9"]
    again.expire(10)
    again.close()
    emptied = PartitionLog("0", tmp_path)
    info = emptied.info()
    assert (info.begin_sequence, info.last_sequence, info.empty) == (10, 9, True)
    assert [r.sequence for r in emptied.append(events("x"), 2000)] == [10]
    offsets = [r.offset for r in emptied.read(0, 1)]
    assert offsets[0] > 0  # offsets keep growing too
