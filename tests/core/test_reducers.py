"""The built-in reducers and reducer loading."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pyrsistent import freeze, pmap

from statepump.core.configops import OperationError, UndecodableBody, config
from statepump.core.errors import ConfigError, Rejected
from statepump.core.markup import markup
from statepump.core.reducer import load_reducer
from tests.core.strategies import event


def apply(*ops: object, state: Any = None) -> Any:
    s = config.initial if state is None else state
    for i, op in enumerate(ops):
        s = config(s, event(i, json.dumps(op).encode()))
    return s


def test_set_delete_merge_and_string_paths() -> None:
    s = apply(
        {"op": "set", "path": ["markup", "tshirt"], "value": 0.03},
        {"op": "set", "path": "markup/jeans", "value": {"eu": 0.1, "us": [1, 2]}},
        {"op": "merge", "path": ["markup", "jeans"], "value": {"us": [3], "uk": 0.2}},
        {"op": "delete", "path": "markup/tshirt"},
    )
    assert s == freeze({"markup": {"jeans": {"eu": 0.1, "us": [3], "uk": 0.2}}})


def test_merge_is_deep_and_creates_missing_parents() -> None:
    s = apply(
        {"op": "set", "path": "a/b/c", "value": 1},
        {"op": "merge", "path": "a", "value": {"b": {"d": 2}}},
        {"op": "merge", "path": "x/y", "value": {"z": 3}},
    )
    assert s == freeze({"a": {"b": {"c": 1, "d": 2}}, "x": {"y": {"z": 3}}})


def test_ops_apply_atomically() -> None:
    s = apply({"op": "set", "path": "keep", "value": 1})
    body = json.dumps({"ops": [{"op": "set", "path": "new", "value": 2}, {"op": "nope", "path": "x"}]}).encode()
    with pytest.raises(OperationError, match="unknown op 'nope'"):
        config(s, event(1, body))
    assert s == freeze({"keep": 1})  # the first op of the failed event left no trace
    ok = json.dumps({"ops": [{"op": "set", "path": "a", "value": 1}, {"op": "set", "path": "b", "value": 2}]})
    assert config(s, event(1, ok.encode())) == freeze({"keep": 1, "a": 1, "b": 2})


def test_vectors_are_indexed_by_integer_segments() -> None:
    s = apply(
        {"op": "set", "path": "servers", "value": ["a", "b"]},
        {"op": "set", "path": ["servers", 1], "value": "B"},
        {"op": "set", "path": "servers/2", "value": "c"},
        {"op": "delete", "path": ["servers", 0]},
    )
    assert s == freeze({"servers": ["B", "c"]})


def test_deleting_what_is_not_there_is_a_no_op() -> None:
    s = apply({"op": "set", "path": "a", "value": 1})
    assert apply({"op": "delete", "path": "zzz/y"}, state=s) == s


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"op": "set", "value": 1}', "has no 'path'"),
        (b'{"op": "set", "path": "a"}', "'set' at a has no 'value'"),
        (b'{"op": "set", "path": "", "value": 1}', "non-empty path"),
        (b'{"op": "set", "path": 5, "value": 1}', "'path' must be a list"),
        (b'{"op": "set", "path": [true], "value": 1}', "segment True must be a string or an integer"),
        (b'{"op": "merge", "path": "a", "value": 3}', "needs an object 'value'"),
        (b'{"op": "explode", "path": "a"}', "unknown op 'explode'"),
        (b'{"ops": []}', "non-empty list"),
    ],
)
def test_invalid_operations_are_rejections_that_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(OperationError, match=message) as info:
        config(pmap(), event(0, body))
    assert isinstance(info.value, Rejected)  # a deterministic no-op in the fold, not a poison event


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bodies_that_are_not_json_objects_are_poison_not_rejections(body: bytes, message: str) -> None:
    with pytest.raises(UndecodableBody, match=message) as info:
        config(pmap(), event(0, body))
    assert not isinstance(info.value, Rejected)


def test_descending_into_a_scalar_is_an_error_naming_the_path() -> None:
    s = apply({"op": "set", "path": "a", "value": 5})
    with pytest.raises(OperationError, match="path a/b/c: cannot descend into int at segment 'b'"):
        apply({"op": "set", "path": "a/b/c", "value": 1}, state=s)


def test_markup_example_sets_and_removes_markups() -> None:
    s = markup.initial
    s = markup(s, event(0, b'{"type": "tshirt", "price": 0.03}'))
    s = markup(s, event(1, b'{"type": "jeans", "price": 0.1}'))
    s = markup(s, event(2, b'{"type": "tshirt", "price": 0}'))
    assert s == pmap({"jeans": 0.1})
    with pytest.raises(OperationError, match="'type' and 'price'"):
        markup(s, event(3, b'{"type": "x"}'))
    with pytest.raises(UndecodableBody, match="must be JSON"):
        markup(s, event(3, b"{x"))


def test_load_reducer_names_what_is_wrong() -> None:
    assert load_reducer("config") is config
    assert load_reducer("statepump.core.markup:markup") is markup
    with pytest.raises(ConfigError, match="neither a built-in"):
        load_reducer("nonsense")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_xyz'"):
        load_reducer("no_such_module_xyz:f")
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_reducer("statepump.core.markup:nope")


def test_a_plain_function_becomes_a_reducer_with_its_version() -> None:
    r = load_reducer("tests.core.custom_reducer:count")
    assert r.identity == "tests.core.custom_reducer:count@3"
    assert r(r.initial, event(0, b"")) == pmap({"n": 1})


# --- test: JSON Patch's precondition -------------------------------------------------------------


def _body(*ops: dict[str, Any]) -> bytes:
    return json.dumps({"ops": list(ops)}).encode()


def test_a_passing_test_lets_the_ops_after_it_apply() -> None:
    s = apply({"op": "set", "path": "markup/tshirt", "value": 0.02})
    t = config(s, event(1, _body({"op": "test", "path": "markup/tshirt", "value": 0.02}, SET_3)))
    assert t["markup"]["tshirt"] == 0.03


SET_3 = {"op": "set", "path": "markup/tshirt", "value": 0.03}


@pytest.mark.parametrize(
    ("expected", "reason"),
    [
        (0.05, "test failed at markup/tshirt: 0.05 != 0.02"),
        ("0.02", 'test failed at markup/tshirt: "0.02" != 0.02'),
        (True, "test failed at markup/tshirt: true != 0.02"),
    ],
)
def test_a_failing_test_rejects_the_whole_event_naming_both_values(expected: Any, reason: str) -> None:
    s = apply({"op": "set", "path": "markup/tshirt", "value": 0.02})
    with pytest.raises(OperationError) as info:
        config(s, event(1, _body({"op": "test", "path": "markup/tshirt", "value": expected}, SET_3)))
    assert str(info.value) == reason and isinstance(info.value, Rejected)


def test_test_compares_as_json_and_tells_null_from_missing() -> None:
    s = apply({"op": "set", "path": "a", "value": {"n": 1, "l": [1, None, {"b": True}]}})
    config(s, event(1, _body({"op": "test", "path": "a", "value": {"l": [1.0, None, {"b": True}], "n": 1}})))
    config(s, event(1, _body({"op": "test", "path": "a/l/1", "value": None})))
    with pytest.raises(OperationError, match=r"test failed at a/x: null != nothing \(no value there\)"):
        config(s, event(1, _body({"op": "test", "path": "a/x", "value": None})))
    with pytest.raises(OperationError, match="test failed at a/n: true != 1"):
        config(s, event(1, _body({"op": "test", "path": "a/n", "value": True})))
    with pytest.raises(OperationError, match="'test' at a has no 'value'"):
        config(s, event(1, _body({"op": "test", "path": "a"})))


def test_a_test_sees_the_ops_before_it_in_the_same_event() -> None:
    ops = _body({"op": "set", "path": "a", "value": 2}, {"op": "test", "path": "a", "value": 2})
    assert config(pmap({"a": 1}), event(1, ops)) == pmap({"a": 2})
