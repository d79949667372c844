"""The ring of recent events: contiguous, bounded, and exact about what it no longer holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statepump.core.events import Event
from statepump.core.history import History, Trimmed

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(n: int, body: bytes = b"{}") -> Event:
    return Event("0", n, str(n), T0, None, {"statepump-author": "ann"}, body)


# A pump's batches: runs of consecutive numbers, sometimes re-delivering the tail
# of the last one (a reconnect), sometimes cut short by a gap or a poison stop.
batches = st.lists(
    st.tuples(st.integers(0, 3), st.integers(1, 40), st.integers(0, 45), st.booleans()),
    max_size=40,
)


@given(batches, st.integers(0, 120), st.integers(500, 40_000))
@settings(max_examples=300, deadline=None)
def test_the_ring_holds_the_newest_events_contiguously_within_its_bounds(
    plan: list[tuple[int, int, int, bool]], max_events: int, max_bytes: int
) -> None:
    ring = History(max_events=max_events, max_bytes=max_bytes)
    ring.clear(at=-1)
    model: list[Event] = []  # every event folded, in order
    for repeat, size, cut, poison in plan:
        last = model[-1].sequence if model else -1
        batch = [ev(n, b"x" * (n % 7)) for n in range(last + 1 - min(repeat, last + 1), last + 1 + size)]
        through = min(last + size, last + 1 + cut)
        outcomes = {through: ("poisoned", "ValueError: x")} if poison else {}
        ring.record(batch, through=through, outcomes=outcomes)  # type: ignore[arg-type]
        model.extend(e for e in batch if last < e.sequence <= through)
        kept = ring.after(ring.oldest - 1) if ring.oldest is not None else []
        assert len(ring) == len(kept) <= max_events
        assert ring.bytes <= max_bytes or len(kept) == 0
        if kept:
            assert [e.sequence for e in kept] == list(range(kept[0].sequence, model[-1].sequence + 1))
            assert [e.event for e in kept] == model[len(model) - len(kept) :]
        if poison and ring.get(through) is not None:
            assert ring.get(through).outcome == "poisoned"  # type: ignore[union-attr]
    newest = model[-1].sequence if model else -1
    for n in range(-1, newest + 1):
        oldest = ring.oldest
        if n == newest:
            assert ring.after(n) == []
        elif oldest is not None and n + 1 >= oldest:
            assert [e.sequence for e in ring.after(n)] == list(range(n + 1, newest + 1))
        else:
            with pytest.raises(Trimmed):
                ring.after(n)


def test_a_ring_that_does_not_know_the_pumps_position_answers_nothing_it_cannot_vouch_for() -> None:
    ring = History()
    with pytest.raises(Trimmed, match="holds no events yet"):
        ring.after(-1)
    ring.clear(at=41)  # loaded a snapshot at 41
    assert ring.after(41) == []
    with pytest.raises(Trimmed, match="events after 40 are no longer kept"):
        ring.after(40)
    ring.record([ev(42), ev(43)], through=43)
    assert [e.sequence for e in ring.after(41)] == [42, 43]


def test_a_batch_that_does_not_follow_starts_the_ring_afresh() -> None:
    ring = History()
    ring.clear(at=-1)
    ring.record([ev(0), ev(1)], through=1)
    ring.record([ev(5), ev(6)], through=6)  # 2..4 skipped, never announced
    assert (ring.oldest, ring.newest) == (5, 6)
    with pytest.raises(Trimmed):
        ring.after(1)


def test_through_limit_and_newest_first() -> None:
    ring = History()
    ring.clear(at=-1)
    ring.record([ev(n) for n in range(10)], through=9, outcomes={4: ("rejected", "test failed at a")})
    assert [e.sequence for e in ring.after(2, through=5)] == [3, 4, 5]
    assert [e.sequence for e in ring.after(2, limit=2)] == [3, 4]
    assert [e.sequence for e in ring.newest_first(before=4)] == [3, 2, 1, 0]
    entry = ring.get(4)
    assert entry is not None and (entry.outcome, entry.reason) == ("rejected", "test failed at a")
    assert ring.get(10) is None and ring.get(-1) is None


def test_memory_does_not_grow_with_the_number_of_events() -> None:
    ring = History(max_events=1_000, max_bytes=1 << 20)
    ring.clear(at=-1)
    for start in range(0, 200_000, 1_000):
        ring.record([ev(n, b"y" * 100) for n in range(start, start + 1_000)], through=start + 999)
        assert len(ring) <= 1_000 and ring.bytes <= 1 << 20
    assert ring.newest == 199_999 and ring.oldest == 199_000
