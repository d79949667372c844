"""The fold: order, batching, duplicates, gaps, poison."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import pmap

from statepump.core.configops import config
from statepump.core.errors import Rejected, SequenceGapError
from statepump.core.events import Event, Version
from statepump.core.fold import FoldGap, fold
from statepump.core.reducer import Reducer
from tests.core.strategies import T0, bodies, event, events_from

START = Version(config.initial, -1, None, "0")


def one_at_a_time(version: Version[Any], events: list[Event]) -> Version[Any]:
    for e in events:
        version = fold(version, [e], config, applied_at=T0, policy="skip").version
    return version


@given(st.lists(bodies, max_size=40), st.lists(st.integers(1, 7), max_size=10))
@settings(max_examples=200, deadline=None)
def test_any_batching_gives_the_same_state(body_list: list[bytes], cuts: list[int]) -> None:
    events = events_from(body_list)
    whole = fold(START, events, config, applied_at=T0, policy="skip").version
    version, i = START, 0
    for size in [*cuts, len(events)]:
        version = fold(version, events[i : i + size], config, applied_at=T0, policy="skip").version
        i += size
    assert version.state == whole.state == one_at_a_time(START, events).state
    assert version.sequence == whole.sequence == len(events) - 1


@given(st.lists(bodies, min_size=1, max_size=30), st.data())
@settings(max_examples=100, deadline=None)
def test_redelivered_events_are_skipped_and_counted(body_list: list[bytes], data: st.DataObject) -> None:
    events = events_from(body_list)
    replay_from = data.draw(st.integers(0, len(events) - 1))
    first = fold(START, events, config, applied_at=T0, policy="skip")
    again = fold(first.version, events[replay_from:], config, applied_at=T0, policy="skip")
    assert again.duplicates == len(events) - replay_from
    assert again.applied == 0
    assert again.version is first.version  # nothing moved: the very same published object


def test_a_gap_raises_naming_both_numbers_and_keeps_the_events_before_it() -> None:
    events = [
        event(0, b'{"op":"set","path":"a","value":1}'),
        event(1, b'{"op":"set","path":"b","value":2}'),
        event(5, b'{"op":"set","path":"c","value":3}'),
    ]
    with pytest.raises(SequenceGapError, match=r"expected event 2 but got 5 \(events 2\.\.4 are missing\)") as info:
        fold(START, events, config, applied_at=T0)
    assert isinstance(info.value, FoldGap)
    partial = info.value.result.version
    assert partial.sequence == 1
    assert partial.state == pmap({"a": 1, "b": 2})


def test_a_gap_at_the_start_of_a_batch_applies_nothing() -> None:
    with pytest.raises(SequenceGapError) as info:
        fold(START, [event(3, b"{}")], config, applied_at=T0)
    assert isinstance(info.value, FoldGap)
    assert info.value.expected == 0 and info.value.got == 3
    assert info.value.result.version is START


# Not JSON: a poison event (an invalid operation is a rejection, tested below).
POISON = b'{"op": "set", "path": "a", "value": 1'


def test_stop_policy_keeps_the_last_good_version_and_reports_the_poison_event() -> None:
    events = [
        event(0, b'{"op":"set","path":"a","value":1}'),
        event(1, POISON),
        event(2, b'{"op":"set","path":"b","value":2}'),
    ]
    result = fold(START, events, config, applied_at=T0, policy="stop")
    assert result.version.sequence == 0
    assert dict(result.version.state) == {"a": 1}
    assert result.stopped is not None
    assert result.stopped.event.sequence == 1
    assert "not valid JSON" in result.stopped.error


def test_skip_policy_records_the_poison_event_and_goes_on() -> None:
    events = [
        event(0, b'{"op":"set","path":"a","value":1}'),
        event(1, b"not json"),
        event(2, b'{"op":"set","path":"b","value":2}'),
    ]
    result = fold(START, events, config, applied_at=T0, policy="skip")
    assert result.version.sequence == 2
    assert dict(result.version.state) == {"a": 1, "b": 2}
    assert [p.event.sequence for p in result.skipped] == [1]
    assert "not valid JSON" in result.skipped[0].error
    assert result.applied == 2


def test_a_reducer_that_raises_midway_leaves_no_half_applied_state() -> None:
    def two_keys_then_fail(state, event):  # type: ignore[no-untyped-def]
        state = state.set("first", event.sequence)
        if event.sequence == 1:
            raise RuntimeError("boom after writing one key")
        return state.set("second", event.sequence)

    r: Reducer[Any] = Reducer("t", 1, two_keys_then_fail, pmap())
    start = Version(r.initial, -1, None, "0")
    result = fold(start, [event(0, b""), event(1, b"")], r, applied_at=T0, policy="stop")
    assert dict(result.version.state) == {"first": 0, "second": 0}
    assert result.stopped is not None and "RuntimeError: boom" in result.stopped.error


def test_versions_carry_the_last_events_time_and_the_apply_time() -> None:
    events = events_from([b'{"op":"set","path":"a","value":1}'] * 3)
    v = fold(START, events, config, applied_at=T0).version
    assert v.enqueued_time == events[-1].enqueued_time
    assert v.applied_at == T0
    assert v.partition == "0"


# Poison at any place in a batch of exactly the next events, with and without the batch hook.
GOOD = b'{"op":"set","path":"k","value":1}'


@pytest.mark.parametrize("reducer", [config, Reducer("per-event", 1, config.apply, config.initial)])
@pytest.mark.parametrize("poison_at", [(), (0,), (3,), (9,), (2, 3, 7)])
def test_poison_anywhere_in_an_in_order_batch_is_counted_as_in_any_other_batch(
    reducer: Reducer[Any], poison_at: tuple[int, ...]
) -> None:
    events = [event(i, POISON if i in poison_at else GOOD.replace(b'"k"', b'"k%d"' % i)) for i in range(10)]
    skip = fold(START, events, reducer, applied_at=T0, policy="skip")
    assert [p.event.sequence for p in skip.skipped] == list(poison_at)
    assert skip.applied == 10 - len(poison_at) and skip.version.sequence == 9
    assert sorted(skip.version.state) == [f"k{i}" for i in range(10) if i not in poison_at]
    stop = fold(START, events, reducer, applied_at=T0, policy="stop")
    stopped_at = poison_at[0] if poison_at else None
    assert (stop.stopped.event.sequence if stop.stopped else None) == stopped_at
    good_before = 10 if stopped_at is None else stopped_at
    assert stop.applied == good_before and stop.version.sequence == good_before - 1
    assert sorted(stop.version.state) == sorted(f"k{i}" for i in range(good_before))
    if good_before == 0:
        assert stop.version is START  # nothing moved: the identical version
    else:
        assert stop.version.enqueued_time == events[good_before - 1].enqueued_time


# Rejections: a deterministic no-op whatever the policy, with and without the batch hook.
INVALID = [
    b'{"op": "frobnicate", "path": "a", "value": 1}',  # unknown op
    b'{"op": "set", "value": 1}',  # no path
    b'{"op": "set", "path": "a/b", "value": 1}',  # descends into the integer at a
    b'{"ops": [{"op": "set", "path": "z", "value": 1}, {"op": "merge", "path": "z", "value": 2}]}',  # types
]


@pytest.mark.parametrize("reducer", [config, Reducer("per-event", 1, config.apply, config.initial)])
@pytest.mark.parametrize("policy", ["stop", "skip"])
@pytest.mark.parametrize("body", INVALID)
def test_an_invalid_operation_is_rejected_a_no_op_and_the_fold_goes_on(
    reducer: Reducer[Any], policy: Any, body: bytes
) -> None:
    events = [event(0, b'{"op":"set","path":"a","value":1}'), event(1, body), event(2, GOOD)]
    result = fold(START, events, reducer, applied_at=T0, policy=policy)
    assert result.stopped is None and result.skipped == ()
    assert [(r.event.sequence, bool(r.reason)) for r in result.rejected] == [(1, True)]
    assert result.applied == 2 and result.version.sequence == 2
    assert dict(result.version.state) == {"a": 1, "k": 1}  # nothing of event 1, not even half of its ops


def test_a_custom_reducer_raising_rejected_is_rejected_and_anything_else_is_poison() -> None:
    def prices(state: Any, e: Event) -> Any:
        price = float(e.body)  # "x" raises ValueError: poison
        if price <= 0:
            raise Rejected(f"price must be positive, not {price:g}")
        return state.set("price", price)

    r: Reducer[Any] = Reducer("prices", 1, prices, pmap())
    start = Version(r.initial, -1, None, "0")
    result = fold(start, [event(0, b"2"), event(1, b"-1"), event(2, b"x"), event(3, b"3")], r, applied_at=T0)
    assert [(x.event.sequence, x.reason) for x in result.rejected] == [(1, "price must be positive, not -1")]
    assert result.stopped is not None and result.stopped.event.sequence == 2
    assert result.version.sequence == 1 and dict(result.version.state) == {"price": 2.0}


@given(st.lists(st.sampled_from([GOOD, *INVALID, POISON]), max_size=30), st.lists(st.integers(1, 7), max_size=8))
@settings(max_examples=100, deadline=None)
def test_rejections_are_the_same_however_the_events_are_batched(body_list: list[bytes], cuts: list[int]) -> None:
    events = [event(i, b.replace(b'"k"', b'"k%d"' % i)) for i, b in enumerate(body_list)]
    whole = fold(START, events, config, applied_at=T0, policy="skip")
    rejected: list[tuple[int, str]] = []
    version, i = START, 0
    for n in [*cuts, len(events)]:
        part = fold(version, events[i : i + n], config, applied_at=T0, policy="skip")
        rejected += [(r.event.sequence, r.reason) for r in part.rejected]
        version, i = part.version, i + n
        if i >= len(events):
            break
    assert rejected == [(r.event.sequence, r.reason) for r in whole.rejected]
    assert version.state == whole.version.state and version.sequence == whole.version.sequence
