"""Decoding shares equal small maps and vectors, and never confuses values that only compare equal."""

from __future__ import annotations

import math
from typing import Any

from pyrsistent import PMap, pmap, pset, pvector

from statepump.core.codec import decode_state, encode_state


def test_equal_small_values_decode_to_one_object() -> None:
    state = pmap({f"k{i}": pmap({"enabled": True, "regions": pvector(["eu"])}) for i in range(100)})
    back = decode_state(encode_state(state))
    assert back == state
    assert len({id(v) for v in back.values()}) == 1
    assert len({id(v["regions"]) for v in back.values()}) == 1


def test_values_that_compare_equal_keep_their_own_type_and_sign() -> None:
    kinds: list[object] = [1, True, 1.0, 0, False, 0.0, -0.0, None, "1", b"1"]
    state: PMap[str, Any] = pmap({f"k{i}": pmap({"v": v}) for i, v in enumerate(kinds)})
    state = state.set("vec", pvector([pvector([v]) for v in kinds]))
    state = state.set("keys", pvector([pmap({k: "x"}) for k in (1, True, 1.0)]))
    state = state.set("sets", pvector([pset([1]), pset([True])]))
    back = decode_state(encode_state(state))
    for i, v in enumerate(kinds):
        got = back[f"k{i}"]["v"]
        assert type(got) is type(v) and got == v
        assert type(back["vec"][i][0]) is type(v)
    assert math.copysign(1.0, back["k6"]["v"]) == -1.0  # -0.0 did not become 0.0
    assert [type(next(iter(m.keys()))) for m in back["keys"]] == [int, bool, float]
    assert [type(next(iter(s))) for s in back["sets"]] == [int, bool]


def test_a_shared_value_can_be_updated_in_one_place_only() -> None:
    state = pmap({"a": pmap({"x": 1}), "b": pmap({"x": 1})})
    back = decode_state(encode_state(state))
    changed = back.set("a", back["a"].set("x", 2))
    assert changed["a"]["x"] == 2 and changed["b"]["x"] == 1 and back["a"]["x"] == 1
