"""Diffs and changed paths: pure, checked against replays of random operation sequences."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import freeze, pmap

from statepump.core.changes import (
    Change,
    apply_diff,
    config_paths,
    diff,
    diff_paths,
    event_paths,
    touches,
    within,
)
from statepump.core.configops import config
from statepump.core.events import Event, Version
from statepump.core.fold import fold
from statepump.core.reducer import Reducer
from statepump.core.statejson import MISSING
from tests.core.strategies import bodies, event, events_from, pyrsistent_values

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def replay(events: list[Event], through: int) -> Any:
    """The state after events 0..through, folded from scratch (rejected events change nothing)."""
    start = Version(config.initial, -1, None, "0")
    kept = [e for e in events if e.sequence <= through]
    return fold(start, kept, config, applied_at=NOW, policy="skip").version.state


@given(st.lists(bodies, min_size=1, max_size=40), st.data())
@settings(max_examples=300, deadline=None)
def test_the_diff_of_two_replays_applied_to_the_old_state_gives_the_new_one(body_list: list[bytes], data: Any) -> None:
    events = events_from(body_list)
    n = data.draw(st.integers(-1, len(events) - 1))
    m = data.draw(st.integers(-1, len(events) - 1))
    old, new = replay(events, n), replay(events, m)
    changes = diff(old, new)
    assert apply_diff(old, changes) == new
    assert (changes == []) == (old == new)
    # Looking only below the paths the events in between touched gives the same changes.
    lo, hi = sorted((n, m))
    touched = [p for e in events[lo + 1 : hi + 1] for p in (config_paths(e) or ())]
    assert diff_paths(old, new, touched) == changes


@given(pyrsistent_values, pyrsistent_values)
@settings(max_examples=300, deadline=None)
def test_any_two_values_diff_and_apply_back(a: Any, b: Any) -> None:
    assert apply_diff(a, diff(a, b)) == b
    assert diff(a, a) == []


def test_a_change_names_kind_path_old_and_new() -> None:
    old = freeze({"markup": {"tshirt": 0.03, "hat": 0.1}, "gone": 1})
    new = freeze({"markup": {"tshirt": 0.05, "cap": 0.2}})
    assert diff(old, new) == [
        Change("removed", ("gone",), 1, None),
        Change("added", ("markup", "cap"), None, 0.2),
        Change("removed", ("markup", "hat"), 0.1, None),
        Change("changed", ("markup", "tshirt"), 0.03, 0.05),
    ]
    assert [c.as_json() for c in within(diff(old, new), ("markup", "tshirt"))] == [
        {"kind": "changed", "path": "markup/tshirt", "old": 0.03, "new": 0.05}
    ]
    # A whole state appears or disappears at the root.
    assert diff(MISSING, pmap()) == [Change("added", (), None, pmap())]
    # 1 and True are equal in Python, not in JSON.
    assert diff(freeze({"a": 1}), freeze({"a": True})) == [Change("changed", ("a",), 1, True)]


def test_the_paths_of_config_events() -> None:
    def paths(body: bytes) -> Any:
        return config_paths(event(0, body))

    assert paths(b'{"op": "set", "path": ["servers", 0, "host"], "value": "x"}') == (("servers", 0, "host"),)
    assert paths(b'{"op": "merge", "path": "limits", "value": {"rps": 1, "b": {"c": 2, "d": {}}}}') == (
        ("limits", "rps"),
        ("limits", "b", "c"),
        ("limits", "b", "d"),
    )
    assert paths(b'{"op": "merge", "path": "limits", "value": {}}') == (("limits",),)
    assert paths(b"not json") is None
    assert paths(b'{"ops": []}') == ()


def test_a_custom_reducer_names_its_paths_or_they_are_unknown() -> None:
    plain: Reducer[Any] = Reducer("count", 1, lambda s, e: s, pmap())
    assert event_paths(plain, event(0, b"x")) is None
    offering: Reducer[Any] = Reducer("flags", 1, lambda s, e: s, pmap(), paths=lambda e: [(e.body.decode(),)])
    assert event_paths(offering, event(0, b"dark-mode")) == (("dark-mode",),)


def test_touches_compares_paths_as_text() -> None:
    assert touches([("servers", 0)], ("servers", "0"))
    assert touches([()], ("anything",))
    assert not touches([], ("a",))
