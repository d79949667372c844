"""The reducer's fast map update agrees with ``PMap.set`` on every sequence of updates."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import pmap

from statepump.core.pyrsistent_internals import map_set

# Small integer keys hash to themselves, so buckets collide and the bucket
# vector has to grow: every branch of map_set is exercised.
keys = st.one_of(st.integers(-40, 40), st.sampled_from(["a", "b", "tenant-1:x", ""]))
values = st.one_of(st.integers(), st.text(max_size=3), st.none(), st.booleans(), st.floats(allow_nan=False))


@given(st.dictionaries(keys, values, max_size=30), st.lists(st.tuples(keys, values), max_size=200))
@settings(max_examples=300, deadline=None)
def test_fast_set_equals_pmap_set(initial: dict[object, object], updates: list[tuple[object, object]]) -> None:
    fast = slow = pmap(initial)
    model = dict(initial)
    for key, value in updates:
        fast = map_set(fast, key, value)
        slow = slow.set(key, value)
        model[key] = value
        assert fast == slow
        assert len(fast) == len(model)
        assert dict(fast.items()) == model
    assert all(fast[k] is v for k, v in model.items() if not isinstance(v, float))


def test_setting_the_same_object_returns_the_same_map() -> None:
    value = object()
    m = pmap({"a": value})
    assert map_set(m, "a", value) is m


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
paths = st.one_of(st.sampled_from(["a", "b", "a/b", "", "/", "x/"]), st.text(max_size=4), st.lists(st.text(max_size=2)))


@given(st.lists(st.tuples(paths, json_values), max_size=30))
@settings(max_examples=300, deadline=None)
def test_the_config_reducers_set_shortcut_equals_apply_op(sets: list[tuple[object, object]]) -> None:
    import json

    from statepump.core.configops import OperationError, apply_op, config
    from statepump.core.events import Event
    from tests.core.strategies import T0

    fast = slow = config.initial
    for i, (path, value) in enumerate(sets):
        op = {"op": "set", "path": path, "value": value}
        event = Event("0", i, str(i), T0, None, {}, json.dumps(op).encode())
        try:
            expected = apply_op(slow, json.loads(json.dumps(op)))
        except OperationError as exc:
            with pytest.raises(OperationError, match=re.escape(str(exc))):
                config(fast, event)
            continue
        fast, slow = config(fast, event), expected
        assert fast == slow
