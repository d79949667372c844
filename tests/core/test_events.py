"""The Event value: the fast constructor the readers use makes the same events as the class."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any, get_type_hints

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statepump.core.events import Event, EventSlots, new_event

T = datetime(2026, 1, 1, tzinfo=UTC)

fields = st.tuples(
    st.text(max_size=3),
    st.integers(0, 2**63 - 1),
    st.text(max_size=8),
    st.integers(-(10**6), 10**6).map(lambda ms: T + timedelta(milliseconds=ms)),
    st.none() | st.text(max_size=5),
    st.dictionaries(st.text(max_size=3), st.none() | st.integers() | st.text(max_size=3), max_size=3),
    st.binary(max_size=20),
)


@given(fields)
def test_new_event_is_the_event_the_class_makes(values: tuple[Any, ...]) -> None:
    made = new_event(*values)
    built = Event(*values)
    assert type(made) is Event
    assert made == built
    assert repr(made) == repr(built)
    assert dataclasses.astuple(made) == dataclasses.astuple(built)
    assert dataclasses.replace(made, sequence=1) == dataclasses.replace(built, sequence=1)
    assert pickle.loads(pickle.dumps(made)) == built
    assert copy.deepcopy(made) == built


def test_new_event_is_frozen() -> None:
    made = new_event("0", 1, "1", T, None, {}, b"")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.sequence = 2  # type: ignore[misc]
    # No other attribute either (Python 3.11's frozen slotted dataclasses say so
    # with a TypeError from their __setattr__, for Event(...) too).
    with pytest.raises((AttributeError, TypeError)):
        made.extra = 1  # type: ignore[attr-defined]
    assert made.sequence == 1


def test_keyword_construction_is_unchanged() -> None:
    made = Event(
        partition="0", sequence=3, offset="9", enqueued_time=T, partition_key="k", properties={"a": 1}, body=b"x"
    )
    assert made == new_event("0", 3, "9", T, "k", {"a": 1}, b"x")
    assert made != new_event("0", 4, "9", T, "k", {"a": 1}, b"x")


def test_the_slots_class_follows_the_event() -> None:
    # new_event's __class__ assignment needs the same slots in the same order.
    assert EventSlots.__slots__ == tuple(f.name for f in dataclasses.fields(Event))
    assert get_type_hints(EventSlots) == get_type_hints(Event)
