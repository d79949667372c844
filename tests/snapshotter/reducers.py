"""Two versions of one reducer, for the --rebuild tests (loaded by name: tests.snapshotter.reducers:v1)."""

from __future__ import annotations

import json
from typing import Any

from pyrsistent import pmap

from statepump.core.events import Event
from statepump.core.reducer import Reducer


def _count(step: int) -> Any:
    def apply(state: Any, event: Event) -> Any:
        key = str(json.loads(event.body)["k"])
        return state.set(key, state.get(key, 0) + step)

    return apply


#: counter@1 counts each key's events; counter@2 (a "bug fix") counts them twice.
v1: Reducer[Any] = Reducer("counter", 1, _count(1), pmap())
v2: Reducer[Any] = Reducer("counter", 2, _count(2), pmap())


def _bulk(state: Any, event: Event) -> Any:
    spec = json.loads(event.body)
    evolver = state.evolver()
    for i in range(int(spec["keys"])):
        evolver[f"key-{i:07d}"] = f"{spec['tag']}-{i}"
    return evolver.persistent()


#: One event {"keys": N, "tag": T} sets N keys: a big state from few events (kill and benchmark tests).
bulk: Reducer[Any] = Reducer("bulk", 1, _bulk, pmap())
