"""``revert_ops``: applied through the real fold to the state now, it gives back the state at N."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import freeze

from statepump.core.changes import diff, split, touches
from statepump.core.configops import config
from statepump.core.events import Event, Version
from statepump.core.fold import FoldResult, fold
from statepump.core.revert import describe_op, revert_ops
from statepump.core.statejson import MISSING, walk
from tests.core.strategies import bodies, event, events_from

NOW = datetime(2026, 1, 1, tzinfo=UTC)
START: Version[Any] = Version(config.initial, -1, None, "0")


def folded(events: list[Event]) -> FoldResult[Any]:
    return fold(START, events, config, applied_at=NOW, policy="skip")


def revert_event(n: int, ops: list[dict[str, Any]]) -> Event:
    return event(n, json.dumps({"ops": ops}).encode())


@given(st.lists(bodies, min_size=1, max_size=30), st.data())
@settings(max_examples=300, deadline=None)
def test_the_ops_folded_into_the_state_now_give_the_state_at_n(body_list: list[bytes], data: Any) -> None:
    events = events_from(body_list)
    last = len(events) - 1
    n = data.draw(st.integers(-1, last), label="n")
    prefix = split(data.draw(st.sampled_from(["", "a", "d", "g/h", "b/m"]), label="path"))
    now = folded(events).version.state
    then = folded(events[: n + 1]).version.state
    ops = revert_ops(walk(now, prefix), walk(then, prefix), prefix, as_of=last)
    assert (ops == []) == (walk(now, prefix) == walk(then, prefix))
    if not ops:
        return  # nothing to send: `statepump revert` says so and sends nothing
    result = folded([*events, revert_event(last + 1, ops)])
    assert [r.reason for r in result.rejected] == [r.reason for r in folded(events).rejected]  # not the revert
    after = result.version.state
    assert walk(after, prefix) == walk(then, prefix)
    # Nothing moved outside PATH (a change above it replaces what held PATH, as `set` does).
    assert all(touches([c.path], prefix) for c in diff(now, after))
    if not prefix:
        assert after == then


@given(st.lists(bodies, min_size=1, max_size=30), st.data())
@settings(max_examples=200, deadline=None)
def test_a_change_in_between_to_a_reverted_path_makes_the_revert_a_rejection(body_list: list[bytes], data: Any) -> None:
    events = events_from(body_list)
    last = len(events) - 1
    n = data.draw(st.integers(-1, last), label="n")
    now = folded(events).version.state
    ops = revert_ops(now, folded(events[: n + 1]).version.state, as_of=last)
    writes = [op for op in ops if op["op"] != "test"]
    if not writes:
        return
    touched = data.draw(st.sampled_from(writes), label="touched")
    concurrent = event(last + 1, json.dumps({"op": "set", "path": touched["path"], "value": "someone else"}).encode())
    result = folded([*events, concurrent, revert_event(last + 2, ops)])
    assert [r.event.sequence for r in result.rejected if r.event.sequence == last + 2] == [last + 2]
    assert result.version.state == folded([*events, concurrent]).version.state


def test_nothing_to_revert_and_the_root_itself() -> None:
    state = freeze({"a": 1})
    assert revert_ops(state, state, as_of=3) == []
    assert revert_ops(MISSING, freeze({"x": 1}), ("a",)) == [{"op": "set", "path": ["a"], "value": {"x": 1}}]
    with pytest.raises(ValueError, match="root"):
        revert_ops(1, 2)


def test_a_key_with_a_slash_stays_one_segment() -> None:
    ops = revert_ops(freeze({"a/b": 2}), freeze({"a/b": 1}), as_of=0)
    assert ops[-1]["path"] == ["a/b"]
    assert describe_op(ops[-1]) == "set a/b = 1 (if unchanged since 0)"
