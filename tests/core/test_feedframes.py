"""The replication feed's frames: whatever the bytes, a reader never takes a wrong event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statepump.core.events import Event
from statepump.core.feedframes import (
    FeedDecoder,
    FeedError,
    FeedStatus,
    event_frame,
    event_frames,
    hello,
    status_frame,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)

property_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
events_after = st.integers(-1, 10**12).flatmap(
    lambda after: st.lists(
        st.tuples(
            st.text(max_size=12),
            st.integers(0, 10**15),
            st.none() | st.text(max_size=10),
            st.dictionaries(st.text(max_size=8), property_values, max_size=4),
            st.binary(max_size=200),
        ),
        max_size=12,
    ).map(
        lambda rows: (
            after,
            [
                Event("3", after + 1 + i, offset, T0 + timedelta(microseconds=us), key, props, body)
                for i, (offset, us, key, props, body) in enumerate(rows)
            ],
        )
    )
)


def wire(after: int, events: list[Event]) -> bytes:
    return hello("3", after) + status_frame(after, False, "catching up") + event_frames(events)


def decode_all(decoder: FeedDecoder, pieces: list[bytes]) -> list[Event]:
    out: list[Event] = []
    for piece in pieces:
        out.extend(i for i in decoder.feed(piece) if isinstance(i, Event))
    return out


@given(events_after, st.lists(st.integers(0, 5000), max_size=8))
@settings(max_examples=300, deadline=None)
def test_every_event_round_trips_exactly_however_the_bytes_are_cut(
    case: tuple[int, list[Event]], cuts: list[int]
) -> None:
    after, events = case
    data = wire(after, events)
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    decoder = FeedDecoder(after)
    got = decode_all(decoder, pieces)
    decoder.end()
    assert got == events
    for mine, theirs in zip(got, events, strict=True):
        assert mine.enqueued_time == theirs.enqueued_time and mine.enqueued_time.utcoffset() == timedelta(0)
        # Types too: bytes stay bytes, booleans stay booleans.
        assert [type(v) for v in mine.properties.values()] == [type(v) for v in theirs.properties.values()]


@given(events_after, st.integers(0, 10**6))
@settings(max_examples=300, deadline=None)
def test_a_truncated_feed_yields_a_prefix_and_says_it_was_cut(case: tuple[int, list[Event]], cut: int) -> None:
    after, events = case
    data = wire(after, events)
    cut = cut % (len(data) + 1)
    decoder = FeedDecoder(after)
    got = decode_all(decoder, [data[:cut]])
    assert got == events[: len(got)]
    frame_ends = _frame_ends(after, events)
    if cut in frame_ends:
        decoder.end()
    else:
        with pytest.raises(FeedError, match=r"inside a frame|hello"):
            decoder.end()


def _frame_ends(after: int, events: list[Event]) -> set[int]:
    ends = {0}
    total = len(hello("3", after))
    ends.add(total)
    total += len(status_frame(after, False, "catching up"))
    ends.add(total)
    for e in events:
        total += len(event_frame(e))
        ends.add(total)
    return ends


@given(events_after, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
@settings(max_examples=400, deadline=None)
def test_damaged_bytes_never_yield_a_wrong_event(case: tuple[int, list[Event]], damage: list[tuple[int, int]]) -> None:
    after, events = case
    data = bytearray(wire(after, events))
    for where, value in damage:
        data[where % len(data)] = value
    decoder = FeedDecoder(after)
    got: list[Event] = []
    error = ""
    try:
        for item in decoder.feed(bytes(data)):
            if isinstance(item, Event):
                got.append(item)
        decoder.end()
    except FeedError as exc:
        error = str(exc)
    assert "\n" not in error
    assert decoder.state == "FAILED" if error else decoder.state in ("HELLO", "STREAMING")
    # Whatever came out is exactly what was sent, from the first event on.
    assert got == events[: len(got)]


@given(events_after, st.data())
@settings(max_examples=200, deadline=None)
def test_a_wrong_sequence_number_fails_before_the_event_is_taken(
    case: tuple[int, list[Event]], data: st.DataObject
) -> None:
    after, events = case
    if not events:
        return
    i = data.draw(st.integers(0, len(events) - 1))
    shift = data.draw(st.integers(-3, 3).filter(lambda s: s != 0))
    bad = events[i]
    wrong = Event(bad.partition, bad.sequence + shift, bad.offset, bad.enqueued_time, None, {}, bad.body)
    sent = [*events[:i], wrong, *events[i + 1 :]]
    decoder = FeedDecoder(after)
    taken: list[Any] = []

    def read_all() -> None:
        taken.extend(decoder.feed(wire(after, sent)))  # the good ones before it come out first
        decoder.feed(b"")

    with pytest.raises(FeedError, match=f"event {wrong.sequence} where {bad.sequence} was due"):
        read_all()
    assert [i for i in taken if isinstance(i, Event)] == events[:i]
    assert decoder.state == "FAILED"
    with pytest.raises(FeedError, match="already failed"):
        decoder.feed(b"")


def test_an_oversize_frame_is_refused_from_its_header_alone() -> None:
    big = Event("3", 0, "0", T0, None, {}, b"x" * 5000)
    decoder = FeedDecoder(-1, max_frame=4096)
    frame = event_frame(big)
    with pytest.raises(FeedError, match="larger than the limit of 4096"):
        # Only the header and a few bytes: the refusal does not wait for (or buffer) the rest.
        decoder.feed(hello("3", -1) + frame[:12])


def test_a_feed_must_answer_the_position_asked_for() -> None:
    with pytest.raises(FeedError, match="after=5, not the 7"):
        FeedDecoder(7).feed(hello("3", 5))
    with pytest.raises(FeedError, match="hello"):
        FeedDecoder(7).feed(status_frame(7, True, None))


def test_status_frames_carry_readiness_and_datetime_properties_survive() -> None:
    when = datetime(2026, 5, 1, 1, 2, 3, 4, tzinfo=UTC)
    e = Event("3", 0, "0", T0, None, {"at": when, "n": 1}, b"")
    items = FeedDecoder(-1).feed(hello("3", -1) + event_frame(e) + status_frame(0, False, "stopped by a gap"))
    assert items == [e, FeedStatus(0, False, "stopped by a gap")]
    assert items[0].properties["at"] == when  # type: ignore[union-attr]
