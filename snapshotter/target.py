"""Which sequence number a run snapshots: pure.

A snapshot's name is its sequence number, and names are create-only, so a run
aims at the hub's last number as read at its start, unless that name is
already taken by a snapshot this run cannot use (another reducer version's,
or a damaged one): then at the highest free number below it. Had it aimed at
the taken name, its write could never succeed; one event short of the hub's
tail is just as good a starting point for a pump.
"""

from __future__ import annotations

from collections.abc import Collection


def choose(hub_last: int, taken: Collection[int], *, floor: int = -1) -> int | None:
    """The highest sequence number ``<= hub_last`` and ``> floor`` whose name is free, or ``None``.

    >>> choose(41, taken=[])
    41
    >>> choose(41, taken=[41, 40])
    39
    >>> choose(-1, taken=[]) is None
    True
    >>> choose(5, taken=[5], floor=4) is None
    True
    """
    candidate = hub_last
    occupied = set(taken)
    while candidate > floor and candidate >= 0:
        if candidate not in occupied:
            return candidate
        candidate -= 1
    return None
