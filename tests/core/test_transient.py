"""The fold through the ``config`` reducer's batch hook equals the fold one immutable update per event.

``fold()`` uses ``Reducer.batch`` when a reducer has one; these tests hold it
to the per-event fold (the same reducer without the hook) on everything the
fold promises: the state, the position, the counts, the poison events and
their messages, gaps, and the identical ``Version`` object when nothing moved.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import PMap, freeze, pmap

from statepump.core import configops, pyrsistent_internals
from statepump.core.configops import OperationError, _ConfigTransient, _freeze, config
from statepump.core.events import Event, Version
from statepump.core.fold import Fed, Folder, FoldGap, FoldResult, Poisoned, PoisonPolicy, fold
from statepump.core.pyrsistent_internals import DELETED, map_update, small_pmap
from statepump.core.reducer import Reducer
from tests.core.strategies import T0, event, events_from, json_values

ONE_AT_A_TIME: Reducer[Any] = Reducer(config.name, config.version, config.apply, config.initial)
START: Version[Any] = Version(config.initial, -1, None, "0")

# Enough top-level names that one batch can outgrow a small map's bucket vector.
top_keys = st.one_of(st.sampled_from(["a", "b", "c"]), st.integers(0, 60).map(lambda i: f"k{i}"))
paths = st.one_of(
    top_keys,
    top_keys.map(lambda k: [k]),  # a list path: the general path, same key
    st.sampled_from(["a/x", "b/y/z", "k1/x", "/a", "a/", ""]),
    st.lists(st.one_of(st.sampled_from(["a", "k2", "x"]), st.integers(0, 2)), max_size=3),
)


def _op(kind: str, path: object, value: Any) -> dict[str, Any]:
    if kind == "delete":
        return {"op": "delete", "path": path}
    if kind == "merge":
        return {"op": "merge", "path": path, "value": {"m": value}}
    if kind == "bad":
        return {"op": "frobnicate", "path": path}
    if kind == "test":  # passes when the path holds this value, else rejects the event
        return {"op": "test", "path": path, "value": value}
    return {"op": "set", "path": path, "value": value}


ops = st.builds(
    _op, st.sampled_from(["set", "set", "set", "delete", "delete", "merge", "bad", "test"]), paths, json_values
)
poison = st.sampled_from(
    [
        b"not json",
        b"[1, 2]",
        b'{"op": "set", "path": "a"}',
        b'{"op": "set", "path": 3, "value": 1}',
        b'{"ops": []}',
        b'{"op": "delete"}',
        b'{"op": "set", "path": "a/b/c", "value": 1}',  # poison when "a" holds a scalar
        b"\xff\xfe",
    ]
)
bodies = st.one_of(
    ops.map(lambda o: json.dumps(o).encode()),
    ops.map(lambda o: json.dumps(o).encode()),
    st.lists(ops, min_size=1, max_size=3).map(lambda os: json.dumps({"ops": os}).encode()),
    poison,
    st.builds(
        lambda k, n: json.dumps({"op": "set", "path": k, "value": n}).encode(),
        top_keys,
        st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False)),
    ),
)
initial_states = st.dictionaries(top_keys, json_values, max_size=20).map(freeze)


def _fold_each(version: Version[Any], events: list[Event], policy: PoisonPolicy) -> FoldResult[Any]:
    """What fold() promises, computed one event at a time through the per-event reducer."""
    applied = duplicates = 0
    skipped: list[Any] = []
    for e in events:
        try:
            r = fold(version, [e], ONE_AT_A_TIME, applied_at=T0, policy=policy)
        except FoldGap as gap:
            partial = FoldResult(version, applied, duplicates, tuple(skipped))
            raise FoldGap(gap.expected, gap.got, partial) from None  # type: ignore[arg-type]
        applied += r.applied
        duplicates += r.duplicates
        skipped += r.skipped
        if r.stopped is not None:
            return FoldResult(version, applied, duplicates, tuple(skipped), r.stopped)
        version = r.version
    return FoldResult(version, applied, duplicates, tuple(skipped))


def _same(batched: FoldResult[Any], each: FoldResult[Any], start: Version[Any]) -> None:
    assert batched.version.state == each.version.state
    assert batched.version.sequence == each.version.sequence
    assert batched.version.enqueued_time == each.version.enqueued_time
    assert (batched.applied, batched.duplicates) == (each.applied, each.duplicates)
    assert [(p.event.sequence, p.error) for p in batched.skipped] == [(p.event.sequence, p.error) for p in each.skipped]
    assert (batched.stopped is None) == (each.stopped is None)
    if batched.stopped is not None and each.stopped is not None:
        assert batched.stopped.event.sequence == each.stopped.event.sequence
        assert batched.stopped.error == each.stopped.error
    assert (batched.version is start) == (each.version.sequence == start.sequence)
    _check_map(batched.version.state)


def _check_map(state: PMap[Any, Any]) -> None:
    """The invariants pyrsistent's own operations keep, checked on the internals the fast paths write."""
    buckets = state._buckets
    seen = []
    for index, bucket in enumerate(buckets):
        for k, _v in bucket or ():
            assert hash(k) % len(buckets) == index
            seen.append(k)
    assert len(seen) == len(set(seen)) == len(state)
    assert len(buckets) >= 0.67 * (len(state) - 1)  # never fuller than PMap.set lets a map get


def _with_redeliveries(events: list[Event], data: st.DataObject) -> list[Event]:
    """The events with some re-delivered (duplicates) and maybe one hole (a gap)."""
    out: list[Event] = []
    for e in events:
        out.append(e)
        if out and data.draw(st.integers(0, 9)) == 0:
            out.extend(events[data.draw(st.integers(0, events.index(e))) : events.index(e) + 1])
    make_a_hole: bool = data.draw(st.booleans())
    if out and make_a_hole:
        del out[data.draw(st.integers(0, len(out) - 1))]
    return out


@given(initial_states, st.lists(bodies, max_size=60), st.sampled_from(["stop", "skip"]), st.data())
@settings(max_examples=400, deadline=None)
def test_the_batched_fold_equals_the_fold_one_event_at_a_time(
    initial: PMap[str, Any], body_list: list[bytes], policy: PoisonPolicy, data: st.DataObject
) -> None:
    start: Version[Any] = Version(initial, -1, None, "0")
    events = _with_redeliveries(events_from(body_list), data)
    gap: FoldGap | None = None
    try:
        each = _fold_each(start, events, policy)
    except FoldGap as raised:
        gap = raised
    if gap is None:
        _same(fold(start, events, config, applied_at=T0, policy=policy), each, start)
        return
    with pytest.raises(FoldGap) as info:
        fold(start, events, config, applied_at=T0, policy=policy)
    assert (info.value.expected, info.value.got) == (gap.expected, gap.got)
    _same(info.value.result, gap.result, start)


@given(initial_states, st.lists(bodies, max_size=60), st.sampled_from(["stop", "skip"]), st.data())
@settings(max_examples=300, deadline=None)
def test_a_folder_fed_in_pieces_and_frozen_anywhere_equals_one_fold(
    initial: PMap[str, Any], body_list: list[bytes], policy: PoisonPolicy, data: st.DataObject
) -> None:
    # The pump's catch-up: batches fed into one open Folder, frozen now and then.
    start: Version[Any] = Version(initial, -1, None, "0")
    events = _with_redeliveries(events_from(body_list), data)
    broke: tuple[int, int | None] | None = None
    try:
        whole = fold(start, events, config, applied_at=T0, policy=policy)
    except FoldGap as gap:
        whole, broke = gap.result, (gap.expected, gap.got)
    folder: Folder[Any] = Folder(start, config, policy=policy)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=6)))
    applied = duplicates = 0
    skipped: list[Poisoned] = []
    ended: Fed | None = None
    for lo, hi in zip([0, *cuts], [*cuts, len(events)], strict=True):
        fed = folder.feed(events[lo:hi])
        applied, duplicates = applied + fed.applied, duplicates + fed.duplicates
        skipped.extend(fed.skipped)
        if fed.gap is not None or fed.stopped is not None:
            ended = fed
            break
        if data.draw(st.booleans()):
            folder.freeze(T0)
    assert (ended.gap if ended else None) == broke
    pieces = FoldResult(folder.freeze(T0), applied, duplicates, tuple(skipped), ended.stopped if ended else None)
    _same(pieces, whole, start)
    if ended is not None and ended.stopped is not None:
        with pytest.raises(RuntimeError, match="stopped by a poison event"):
            folder.feed(events)


def test_an_invalid_op_inside_an_ops_list_mid_batch_rejects_the_whole_event_under_either_policy() -> None:
    events = events_from(
        [
            b'{"op": "set", "path": "a", "value": 1}',
            b'{"op": "delete", "path": "z"}',
            json.dumps({"ops": [{"op": "set", "path": "b", "value": 2}, {"op": "frobnicate", "path": "c"}]}).encode(),
            b'{"op": "set", "path": "d", "value": 4}',
        ]
    )
    start: Version[Any] = Version(pmap({"z": 0}), -1, None, "0")
    for policy in ("stop", "skip"):
        result = fold(start, events, config, applied_at=T0, policy=policy)
        assert result.version.sequence == 3 and result.stopped is None and result.skipped == ()
        assert result.version.state == pmap({"a": 1, "d": 4})  # "b" from the rejected ops list is not there
        assert [(r.event.sequence, r.reason) for r in result.rejected] == [
            (2, "unknown op 'frobnicate' (expected 'set', 'delete', 'merge' or 'test')")
        ]


def test_poison_mid_batch_keeps_what_came_before() -> None:
    events = events_from(
        [
            b'{"op": "set", "path": "a", "value": 1}',
            b'{"op": "delete", "path": "z"}',
            b'{"ops": [{"op": "set", "path": "b", "value": 2}',  # cut short: not JSON
            b'{"op": "set", "path": "d", "value": 4}',
        ]
    )
    start: Version[Any] = Version(pmap({"z": 0}), -1, None, "0")
    stopped = fold(start, events, config, applied_at=T0, policy="stop")
    assert stopped.version.sequence == 1
    assert stopped.version.state == pmap({"a": 1})
    assert stopped.stopped is not None and "not valid JSON" in stopped.stopped.error
    skipped = fold(start, events, config, applied_at=T0, policy="skip")
    assert skipped.version.sequence == 3
    assert skipped.version.state == pmap({"a": 1, "d": 4})
    assert [p.event.sequence for p in skipped.skipped] == [2]


def test_a_key_set_then_deleted_then_set_again_in_one_batch() -> None:
    bodies = [
        b'{"op": "set", "path": "k", "value": 1}',
        b'{"op": "delete", "path": "k"}',
        b'{"op": "set", "path": "j", "value": 2}',
        b'{"op": "set", "path": "k", "value": 3}',
        b'{"op": "delete", "path": "j"}',
    ]
    result = fold(START, events_from(bodies), config, applied_at=T0)
    assert result.version.state == pmap({"k": 3})
    _check_map(result.version.state)
    existing: Version[Any] = Version(pmap({"k": 0, "j": 0}), -1, None, "0")
    again = fold(existing, events_from(bodies), config, applied_at=T0)
    assert again.version.state == pmap({"k": 3})
    _check_map(again.version.state)


def test_a_batch_that_outgrows_the_bucket_vector_keeps_every_key() -> None:
    bodies = [json.dumps({"op": "set", "path": f"key-{i}", "value": i}).encode() for i in range(5_000)]
    start: Version[Any] = Version(pmap({"key-0": "old", "other": 1}), -1, None, "0")
    result = fold(start, events_from(bodies), config, applied_at=T0)
    state = result.version.state
    assert dict(state) == {"other": 1, **{f"key-{i}": i for i in range(5_000)}}
    assert len(state._buckets) > len(start.state._buckets)
    _check_map(state)
    assert start.state == pmap({"key-0": "old", "other": 1})  # the map folded from is untouched


def test_a_gap_mid_batch_carries_the_events_before_it() -> None:
    events = [event(0, b'{"op":"set","path":"a","value":1}'), event(1, b'{"op":"delete","path":"a"}')]
    events += [event(2, b'{"op":"set","path":"b","value":2}'), event(7, b'{"op":"set","path":"c","value":3}')]
    with pytest.raises(FoldGap) as info:
        fold(START, events, config, applied_at=T0)
    assert info.value.result.version.sequence == 2
    assert info.value.result.version.state == pmap({"b": 2})


def test_nothing_moved_keeps_the_identical_version_and_poison_only_keeps_the_identical_state() -> None:
    first = fold(START, events_from([b'{"op":"set","path":"a","value":1}']), config, applied_at=T0)
    again = fold(first.version, events_from([b'{"op":"set","path":"a","value":9}']), config, applied_at=T0)
    assert again.version is first.version and again.duplicates == 1
    poisoned = fold(first.version, [event(1, b"not json"), event(2, b"{}")], config, applied_at=T0, policy="skip")
    assert poisoned.version.sequence == 2
    assert poisoned.version.state is first.version.state


def test_a_failed_apply_leaves_the_transient_as_it_was() -> None:
    t = _ConfigTransient(pmap({"a": 1}))
    t.apply(event(0, b'{"op": "set", "path": "b", "value": 2}'))
    with pytest.raises(OperationError, match="cannot descend into int"):
        t.apply(event(1, b'{"op": "set", "path": "b/c", "value": 3}'))
    with pytest.raises(OperationError, match="an operation must be a JSON object"):
        t.apply(event(1, b'{"ops": [{"op": "set", "path": "c", "value": 3}, 1]}'))
    assert t.result() == pmap({"a": 1, "b": 2})
    t.apply(event(1, b'{"op": "set", "path": "c", "value": 3}'))
    assert t.result() == pmap({"a": 1, "b": 2, "c": 3})


def test_integers_beyond_64_bits_stay_exact_on_the_fast_path() -> None:
    big = 2**70 + 1
    bodies = [
        json.dumps({"op": "set", "path": "a", "value": big}).encode(),
        json.dumps({"op": "set", "path": "b", "value": {"n": [big]}}).encode(),
        json.dumps({"op": "set", "path": "c", "value": 1.5, "note": big}).encode(),
    ]
    state = fold(START, events_from(bodies), config, applied_at=T0).version.state
    assert state["a"] == big and type(state["a"]) is int
    assert state["b"]["n"][0] == big
    assert state["c"] == 1.5


changes = st.dictionaries(
    st.one_of(st.integers(-40, 40), st.sampled_from(["a", "b", "tenant-1:x", ""])),
    st.one_of(st.integers(), st.none(), st.just(DELETED)),
    max_size=120,
)


@given(st.dictionaries(st.one_of(st.integers(-40, 40), st.text(max_size=3)), st.integers(), max_size=60), changes)
@settings(max_examples=400, deadline=None)
def test_the_bulk_map_update_equals_pmap_set_and_discard(initial: dict[Any, Any], change: dict[Any, Any]) -> None:
    # Small integers hash to themselves: buckets collide and the vector must grow.
    slow = before = pmap(initial)
    for k, v in change.items():
        slow = slow.discard(k) if v is DELETED else slow.set(k, v)
    fast = map_update(before, change)
    assert fast == slow
    assert dict(fast.items()) == dict(slow.items())
    assert before == pmap(initial)
    _check_map(fast)


@pytest.mark.parametrize(
    ("keys", "changed", "way"),
    [
        (4_000, 100, "evolver"),  # a few buckets of many: path-copied through one evolver
        (4_000, 2_000, "in place"),  # a sizeable share: the old buckets thawed into a list, copied on write
        (4_000, 9_000, "wider"),  # outgrows the vector: rehashed into a wider list
    ],
)
def test_each_way_of_the_bulk_map_update_equals_pmap_set_and_discard(
    keys: int, changed: int, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = pmap({f"k{i}": i for i in range(keys)})
    frozen_before = dict(before.items())
    # Every third change deletes, the others update existing keys and add new ones.
    change: dict[Any, Any] = {f"k{i * 7 % (keys + changed)}": (DELETED if i % 3 == 0 else -i) for i in range(changed)}
    ways: list[str] = []
    real = pyrsistent_internals._rebuilt

    def spy(node: PMap[Any, Any], changes: Any, width: int) -> PMap[Any, Any]:
        ways.append("in place" if width == len(node._buckets) else "wider")
        return real(node, changes, width)

    monkeypatch.setattr(pyrsistent_internals, "_rebuilt", spy)
    fast = map_update(before, change)
    assert ways == ([] if way == "evolver" else [way])
    slow = before
    for k, v in change.items():
        slow = slow.discard(k) if v is DELETED else slow.set(k, v)
    assert dict(fast.items()) == dict(slow.items())
    assert fast == slow
    assert dict(before.items()) == frozen_before  # the old map's buckets were copied, never changed
    _check_map(fast)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_the_json_freeze_equals_pyrsistent_freeze(value: Any) -> None:
    assert _freeze(value) == freeze(value)
    assert type(_freeze(value)) is type(freeze(value))


@given(st.dictionaries(st.one_of(st.text(max_size=3), st.integers(-20, 20)), st.integers(), max_size=20))
def test_small_pmap_builds_the_same_map_as_pmap(d: dict[Any, Any]) -> None:
    fast, slow = small_pmap(d), pmap(d)
    assert fast == slow
    assert list(fast.items()) == list(slow.items())
    _check_map(fast)


def test_equal_container_values_from_events_are_one_object_and_equal_ones_of_other_types_are_not() -> None:
    bodies = [
        b'{"op": "set", "path": "a", "value": {"on": true, "ids": [1, 2]}}',
        b'{"op": "set", "path": "b", "value": {"on": true, "ids": [1, 2]}}',
        b'{"op": "set", "path": "c", "value": {"on": 1, "ids": [1.0, 2]}}',
    ]
    state = fold(Version(pmap(), -1, None, "0"), events_from(bodies), config, applied_at=T0).version.state
    assert state["a"] is state["b"]
    assert state["c"] == state["a"] and state["c"] is not state["a"]
    assert type(state["c"]["on"]) is int and type(state["c"]["ids"][0]) is float


def test_the_table_of_shared_values_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(configops, "_SHARED", {})
    monkeypatch.setattr(configops, "_SHARED_MOST", 10)
    bodies = [b'{"op": "set", "path": "k%d", "value": {"n": %d}}' % (i, i) for i in range(100)]
    state = fold(Version(pmap(), -1, None, "0"), events_from(bodies), config, applied_at=T0).version.state
    assert len(configops._SHARED) <= 10
    assert [state[f"k{i}"]["n"] for i in range(100)] == list(range(100))
