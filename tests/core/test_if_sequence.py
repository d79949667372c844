"""if_sequence: "only if this path last changed at or before event N", the same on every node, snapshot or not."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import freeze, thaw

from statepump.core import codec
from statepump.core.configops import config, parse_path
from statepump.core.events import Version
from statepump.core.fold import Folder, fold
from statepump.core.lastchanged import LastChanged
from tests.core.strategies import T0, events_from

START: Version[Any] = Version(config.initial, -1, None, "0")


def _fold(bodies: list[bytes], start: Version[Any] = START) -> Any:
    return fold(start, events_from(bodies, start.sequence + 1), config, applied_at=T0, policy="skip")


def test_a_path_changed_after_n_rejects_the_whole_event_naming_path_n_and_when() -> None:
    bodies = [
        b'{"op": "set", "path": "markup/tshirt", "value": 0.02}',  # 0
        b'{"op": "set", "path": "other", "value": 1}',  # 1
        b'{"op": "set", "path": "markup/tshirt", "value": 0.05}',  # 2
        # 3: written by someone who read the state at 1: tshirt changed since, at 2.
        b'{"ops": [{"op": "set", "path": "other", "value": 2},'
        b' {"op": "set", "path": "markup/tshirt", "value": 0.03, "if_sequence": 1}]}',
        b'{"op": "set", "path": "markup/tshirt", "value": 0.04, "if_sequence": 2}',  # 4: read at 2: applied
    ]
    result = _fold(bodies)
    assert [(r.event.sequence, r.reason) for r in result.rejected] == [
        (3, "if_sequence failed at markup/tshirt: it last changed at 2, after 1")
    ]
    assert thaw(result.version.state) == {"markup": {"tshirt": 0.04}, "other": 1}  # 3 changed nothing, not even other
    assert result.version.changed.at(("other",)) == 1 and result.version.changed.at(("markup", "tshirt")) == 4


def test_nested_paths_a_change_counts_for_its_ancestors_and_descendants_not_its_siblings() -> None:
    record = LastChanged.since(-1)
    record = record.record(("markup", "tshirt"), 3).record(("markup", "hoodie"), 5).record(("limits",), 7)
    assert record.at(("markup", "tshirt")) == 3  # the sibling's change at 5 does not count
    assert record.at(("markup",)) == 5  # a change below markup changed markup
    assert record.at(()) == 7  # the root changes with everything
    assert record.at(("limits", "rps")) == 7  # replacing limits replaced everything under it
    assert record.at(("markup", "tshirt", "eu")) == 3
    assert record.at(("never",)) == -1
    record = record.record(("markup",), 9)
    assert record.at(("markup", "hoodie")) == 9 and record.at(("markup", "tshirt", "eu")) == 9


def test_a_test_is_no_change_and_a_rejected_event_records_nothing() -> None:
    bodies = [
        b'{"op": "set", "path": "a", "value": 1}',  # 0
        b'{"op": "test", "path": "a", "value": 1}',  # 1: changes nothing
        b'{"op": "set", "path": "a", "value": "x", "if_sequence": 0}',  # 2: applied (a last changed at 0)
        b'{"ops": [{"op": "set", "path": "a", "value": 3}, {"op": "test", "path": "a", "value": 4}]}',  # 3: rejected
        b'{"op": "set", "path": "a", "value": 5, "if_sequence": 2}',  # 4: applied (3 was a no-op)
    ]
    result = _fold(bodies)
    assert [r.event.sequence for r in result.rejected] == [3]
    assert result.version.state["a"] == 5


def test_a_bad_if_sequence_is_a_rejection() -> None:
    result = _fold(
        [
            b'{"op": "set", "path": "a", "value": 1, "if_sequence": "7"}',
            b'{"op": "delete", "path": "a", "if_sequence": true}',
        ]
    )
    assert [r.reason for r in result.rejected] == [
        "'if_sequence' must be an event's sequence number (an integer >= -1), not '7'",
        "'if_sequence' must be an event's sequence number (an integer >= -1), not True",
    ]


def test_an_older_snapshot_without_the_record_counts_every_path_as_changed_at_its_sequence() -> None:
    meta = codec.SnapshotMeta("hub", "0", 9, T0, "config", 1, T0, 10)
    data = codec.encode(meta, freeze({"a": 1}))  # no record: as format 2 wrote them
    _meta, state, changed = codec.decode_all(data)
    assert changed is None
    start = Version(state, 9, T0, "0", None, changed)
    result = _fold(
        [
            b'{"op": "set", "path": "a", "value": 2, "if_sequence": 8}',
            b'{"op": "set", "path": "a", "value": 3, "if_sequence": 9}',
        ],
        start,
    )
    assert [r.reason for r in result.rejected] == ["if_sequence failed at a: it last changed at 9, after 8"]
    assert result.version.state["a"] == 3 and result.version.changed.floor == 9


segments = st.sampled_from(["a", "b", "c"])
paths = st.lists(segments, min_size=1, max_size=3).map(tuple)


@st.composite
def events(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    out = []
    for n in range(draw(st.integers(1, 25))):
        ops = []
        for _ in range(draw(st.integers(1, 2))):
            path = "/".join(draw(paths))
            kind = draw(st.sampled_from(["set", "set", "delete", "merge", "test"]))
            op: dict[str, Any] = {"op": kind, "path": path}
            if kind in ("set", "test"):
                op["value"] = draw(st.one_of(st.integers(0, 2), st.just({"c": 1})))
            elif kind == "merge":
                op["value"] = {"c": draw(st.integers(0, 2))}
            if draw(st.booleans()):
                op["if_sequence"] = draw(st.integers(-1, n))
            ops.append(op)
        out.append(ops)
    return out


def _body(ops: list[dict[str, Any]]) -> bytes:
    return json.dumps(ops[0] if len(ops) == 1 else {"ops": ops}).encode()


@given(events())
@settings(max_examples=300, deadline=None)
def test_the_record_is_the_naive_rule_a_change_at_w_counts_for_q_when_one_is_a_prefix_of_the_other(
    log: list[list[dict[str, Any]]],
) -> None:
    result = _fold([_body(ops) for ops in log])
    rejected = {r.event.sequence for r in result.rejected}
    writes: list[tuple[int, tuple[Any, ...]]] = [
        (n, parse_path(op["path"]))
        for n, ops in enumerate(log)
        if n not in rejected
        for op in ops
        if op["op"] != "test"
    ]
    for q in [(), ("a",), ("a", "b"), ("b", "c", "a"), ("c", "c")]:
        related = [n for n, w in writes if w[: len(q)] == q or q[: len(w)] == w]
        assert result.version.changed.at(q) == max(related, default=-1), q
    # And each if_sequence was judged by that rule against the record before its event.
    for n, ops in enumerate(log):
        earlier = [(m, w) for m, w in writes if m < n]
        fails = any(
            "if_sequence" in op
            and max((m for m, w in earlier if _related(w, parse_path(op["path"]))), default=-1) > op["if_sequence"]
            for op in ops
        )
        if fails:
            assert n in rejected


def _related(w: tuple[Any, ...], q: tuple[Any, ...]) -> bool:
    return w[: len(q)] == q or q[: len(w)] == w


@given(events(), st.data())
@settings(max_examples=200, deadline=None)
def test_a_pump_from_a_snapshot_and_one_from_scratch_agree_on_every_outcome(
    log: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    bodies = [_body(ops) for ops in log]
    whole = _fold(bodies)
    cut = data.draw(st.integers(1, len(bodies)))
    first = _fold(bodies[:cut])
    # Through a snapshot file, as a pump starting from the store gets it.
    v = first.version
    meta = codec.SnapshotMeta("hub", "0", v.sequence, v.enqueued_time, "config", 1, T0, cut)
    _meta, state, changed = codec.decode_all(codec.encode(meta, v.state, changed=v.changed, compress=True))
    rest = _fold(bodies[cut:], Version(state, v.sequence, v.enqueued_time, "0", None, changed))
    assert rest.version.state == whole.version.state
    assert rest.version.changed == whole.version.changed
    outcomes = [(r.event.sequence, r.reason) for r in (*first.rejected, *rest.rejected)]
    assert outcomes == [(r.event.sequence, r.reason) for r in whole.rejected]


@given(events(), st.lists(st.integers(1, 5), min_size=1, max_size=6))
@settings(max_examples=100, deadline=None)
def test_one_folder_over_many_batches_is_one_fold(log: list[list[dict[str, Any]]], sizes: list[int]) -> None:
    evs = events_from([_body(ops) for ops in log])
    whole = _fold([_body(ops) for ops in log])
    folder = Folder(START, config, policy="skip")
    i, reasons = 0, []
    while i < len(evs):
        size = sizes[i % len(sizes)]
        reasons += [(r.event.sequence, r.reason) for r in folder.feed(evs[i : i + size]).rejected]
        if i % 2:
            folder.freeze(T0)
        i += size
    v = folder.freeze(T0)
    assert v.state == whole.version.state and v.changed == whole.version.changed
    assert reasons == [(r.event.sequence, r.reason) for r in whole.rejected]


def test_layers_merge_once_many_batches_piled_up_and_answer_the_same_before_and_after() -> None:
    from statepump.core.lastchanged import MOST_LAYERS, Recorder

    record = LastChanged.since(-1)
    for n in range(3 * MOST_LAYERS):  # one batch per event: layer after layer
        recorder = Recorder(record)
        recorder.top(f"k{n % 50}", n)
        record = recorder.result()
        assert len(record.layers) <= MOST_LAYERS
        assert record.at((f"k{n % 50}",)) == n and record.at((f"k{n % 50}", "deeper")) == n
    assert record.at(("k0",)) == max(n for n in range(3 * MOST_LAYERS) if n % 50 == 0)
    assert record == record.merged() and not record.merged().layers
