"""Hypothesis strategies shared by the core tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from pyrsistent import pmap, pset, pvector

from statepump.core.events import Event

T0 = datetime(2026, 1, 1, tzinfo=UTC)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
hashables = st.one_of(st.integers(-1000, 1000), st.text(max_size=8))

pyrsistent_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.dictionaries(hashables, children, max_size=6).map(pmap),
        st.lists(children, max_size=6).map(pvector),
        st.frozensets(hashables, max_size=6).map(pset),
    ),
    max_leaves=40,
)

keys = st.sampled_from(["a", "b", "c", "d/e", "d/f", "g/h/i"])
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-100, 100), st.text(max_size=5)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)


def _op(kind: str, path: str, value: Any) -> dict[str, Any]:
    if kind == "delete":
        return {"op": "delete", "path": path}
    if kind == "merge":
        return {"op": "merge", "path": path, "value": {"m": value}}
    return {"op": "set", "path": path, "value": value}


ops = st.builds(_op, st.sampled_from(["set", "set", "delete", "merge"]), keys, json_values)
bodies = st.one_of(
    ops.map(lambda o: json.dumps(o).encode()),
    st.lists(ops, min_size=1, max_size=3).map(lambda os: json.dumps({"ops": os}).encode()),
)


def event(n: int, body: bytes, partition: str = "0") -> Event:
    return Event(partition, n, str(n), T0 + timedelta(seconds=n), None, {}, body)


def events_from(bodies: list[bytes], start: int = 0) -> list[Event]:
    return [event(start + i, b) for i, b in enumerate(bodies)]
