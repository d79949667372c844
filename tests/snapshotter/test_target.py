"""Choosing the sequence number a run snapshots (snapshotter/target.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from snapshotter.target import choose


@given(st.integers(-1, 200), st.sets(st.integers(0, 200), max_size=30), st.integers(-1, 200))
def test_the_target_is_the_highest_free_name_in_range(hub_last: int, taken: set[int], floor: int) -> None:
    got = choose(hub_last, taken, floor=floor)
    free = [n for n in range(max(floor + 1, 0), hub_last + 1) if n not in taken]
    assert got == (max(free) if free else None)


def test_the_hubs_last_when_free() -> None:
    assert choose(41, {40, 39}) == 41
    assert choose(41, {41}) == 40
