"""The reducer's fast map update agrees with ``PMap.set`` on every sequence of updates."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import pmap

from statepump.reducers import _map_set

# Small integer keys hash to themselves, so buckets collide and the bucket
# vector has to grow: every branch of _map_set is exercised.
keys = st.one_of(st.integers(-40, 40), st.sampled_from(["a", "b", "tenant-1:x", ""]))
values = st.one_of(st.integers(), st.text(max_size=3), st.none(), st.booleans(), st.floats(allow_nan=False))


@given(st.dictionaries(keys, values, max_size=30), st.lists(st.tuples(keys, values), max_size=200))
@settings(max_examples=300, deadline=None)
def test_fast_set_equals_pmap_set(initial: dict[object, object], updates: list[tuple[object, object]]) -> None:
    fast = slow = pmap(initial)
    model = dict(initial)
    for key, value in updates:
        fast = _map_set(fast, key, value)
        slow = slow.set(key, value)
        model[key] = value
        assert fast == slow
        assert len(fast) == len(model)
        assert dict(fast.items()) == model
    assert all(fast[k] is v for k, v in model.items() if not isinstance(v, float))


def test_setting_the_same_object_returns_the_same_map() -> None:
    value = object()
    m = pmap({"a": value})
    assert _map_set(m, "a", value) is m
