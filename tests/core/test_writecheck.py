"""The writers' check before sending: it refuses exactly what the fold would reject."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import thaw

from statepump.core.configops import ABSENT, apply_op, config, config_reducer, lookup, parse_path
from statepump.core.errors import Rejected
from statepump.core.schema import Schema
from statepump.core.writecheck import Refused, check_against, check_syntax, delete_body, set_body, top_level_keys
from tests.core.strategies import event, json_values

paths = st.sampled_from(["a", "a/b", "a/0", "c", "c/d/e", ["x", 0], "", 5])
kinds = st.sampled_from(["set", "delete", "merge", "test", "frobnicate"])


@st.composite
def operation(draw: st.DrawFn) -> dict[str, Any]:
    op: dict[str, Any] = {"op": draw(kinds), "path": draw(paths)}
    if draw(st.booleans()):
        op["value"] = draw(st.one_of(json_values, st.dictionaries(st.sampled_from(["a", "b"]), json_values)))
    return op


@given(
    st.lists(st.lists(operation(), min_size=1, max_size=3), min_size=1, max_size=4),
    st.lists(st.lists(operation(), min_size=1, max_size=3), max_size=4),
)
@settings(max_examples=300, deadline=None)
def test_refused_exactly_when_the_fold_would_reject_or_a_delete_would_do_nothing(
    history: list[list[dict[str, Any]]], change: list[list[dict[str, Any]]]
) -> None:
    _check_agrees_with_the_fold(config, None, history, change)


#: For the same property under --schema (what tests/core/test_schema.py checks the fold against).
SCHEMA = Schema.from_document(
    {
        "propertyNames": {"maxLength": 1},
        "required": ["c"],
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": ["integer", "object"]}}},
            "c": {"not": {"type": "array"}},
            "x": {"type": "array", "maxItems": 1},
        },
        "additionalProperties": {"type": ["object", "string", "boolean", "null"], "maxProperties": 1},
    }
)


@given(
    st.lists(st.lists(operation(), min_size=1, max_size=3), min_size=1, max_size=4),
    st.lists(st.lists(operation(), min_size=1, max_size=3), max_size=4),
)
@settings(max_examples=300, deadline=None)
def test_with_a_schema_refused_exactly_when_the_fold_would_reject(
    history: list[list[dict[str, Any]]], change: list[list[dict[str, Any]]]
) -> None:
    _check_agrees_with_the_fold(
        config_reducer(SCHEMA), SCHEMA, [[{"op": "set", "path": "c", "value": 1}], *history], change
    )


@given(st.lists(operation(), min_size=1, max_size=3), st.data())
@settings(max_examples=300, deadline=None)
def test_the_offline_schema_check_refuses_only_what_the_fold_rejects(
    ops: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Without a sidecar the writer sees no state: whatever it refuses, the fold rejects from any valid state."""
    body = json.dumps({"ops": ops}).encode()
    try:
        check_syntax(body, SCHEMA)
    except Refused as exc:
        if "schema:" not in str(exc):
            return
        reducer = config_reducer(SCHEMA)
        state = reducer.initial.set("c", 1)
        for i, prior in enumerate(data.draw(st.lists(st.lists(operation(), min_size=1, max_size=2), max_size=3))):
            with contextlib.suppress(Rejected):
                state = reducer(state, event(i, json.dumps({"ops": prior}).encode()))
        with pytest.raises(Rejected):
            reducer(state, event(9, body))


def _check_agrees_with_the_fold(
    reducer: Any, schema: Schema | None, history: list[list[dict[str, Any]]], change: list[list[dict[str, Any]]]
) -> None:
    config = reducer
    state = config.initial
    for i, ops in enumerate(history):  # some state to check against, built by the fold itself
        with contextlib.suppress(Rejected):
            state = config(state, event(i, json.dumps({"ops": ops}).encode()))
    bodies = [json.dumps({"ops": ops}).encode() for ops in change]
    if not bodies:
        return
    keys = top_level_keys_or_all(bodies)
    visible = {k: v for k, v in thaw(state).items() if keys is None or k in keys}
    folded, reason = state, None
    for body in bodies:
        try:
            folded_before = folded
            folded = config(folded, event(99, body))  # the whole state, by the fold's own reducer
            # The one refusal the fold does not make: a delete of nothing, op by op within the event.
            step = folded_before
            for op in json.loads(body)["ops"]:
                if op.get("op") == "delete" and _is_absent(step, op.get("path")):
                    reason = "delete of nothing"
                step = apply_op(step, op)
        except Rejected as exc:
            reason = str(exc)
        if reason is not None:
            break
    if reason is None:
        check_against(visible, bodies, schema)
    else:
        with pytest.raises(Refused):
            check_against(visible, bodies, schema)


def top_level_keys_or_all(bodies: list[bytes]) -> set[Any] | None:
    try:
        return top_level_keys(bodies)
    except Exception:  # a body the check refuses anyway: show it everything
        return None


def _is_absent(state: Any, raw: Any) -> bool:
    try:
        return lookup(state, parse_path(raw)) is ABSENT
    except Rejected:
        return False


def test_syntax_refusals_name_the_problem() -> None:
    for body, reason in [
        (b"[1]", "must be a JSON object, not list"),
        (b"{x", "not valid JSON"),
        (b'{"op": "set", "path": "a"}', "'set' at a has no 'value'"),
        (b'{"op": "delete", "path": ""}', "'delete' needs a non-empty path"),
        (b'{"op": "test", "path": "a"}', "'test' at a has no 'value'"),
    ]:
        with pytest.raises(Refused, match=reason):
            check_syntax(body)
    assert check_syntax(set_body("a", 1, expect=None)) == [
        {"op": "test", "path": "a", "value": None},
        {"op": "set", "path": "a", "value": 1},
    ]


def test_a_later_body_sees_the_earlier_ones() -> None:
    check_against({}, [set_body("a", {"b": 1}), delete_body("a/b")])
    with pytest.raises(Refused, match="nothing to delete at a/b"):
        check_against({}, [delete_body("a/b"), set_body("a", {"b": 1})])
