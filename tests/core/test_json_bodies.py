"""The reducer's JSON reading gives exactly what ``json.loads`` gives, for every body json accepts."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statepump.core.configops import _loads

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
values = st.recursive(scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20)


def same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


@given(values, st.booleans())
@settings(max_examples=500, deadline=None)
def test_same_values_and_types_as_json(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert same(_loads(body), json.loads(body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"n": 123456789012345678901234567890}',
        b'{"n": -9223372036854775809}',
        b'{"n": 18446744073709551616}',
        b'{"x": NaN, "y": -Infinity}',
        b'{"s": "\\ud800"}',
        b'{"a": 1, "a": 2}',
        '{"utf16": 1}'.encode("utf-16"),
    ],
)
def test_bodies_orjson_reads_differently_or_refuses_match_json(body: bytes) -> None:
    assert same(_loads(body), json.loads(body)) or (
        # NaN != NaN: compare its repr instead
        repr(_loads(body)) == repr(json.loads(body))
    )


def test_invalid_json_raises_json_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        _loads(b'{"a": ')
