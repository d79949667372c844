"""``/v1/watch`` streams: who watches which path, and whether a new version changed it.

The server keeps one :class:`Watchers` registry; each Server-Sent Events
stream (the connection that serves it is in :mod:`statepump.serving.apiconnection`)
registers a :class:`Watcher` for its path and sleeps until the registry
pushes it a version.

Why it is built the way it is:

* Watchers are grouped by path, so a publish walks each watched path once
  (in the old and the new version), however many clients watch it.
* Persistent structures share unchanged subtrees, so :func:`changed` settles
  most cases by identity; publishing costs nothing per unchanged watcher.
* A watcher's backlog is bounded: a slow client loses intermediate versions,
  never the latest one.

>>> from pyrsistent import freeze
>>> from statepump.core.events import Version
>>> from statepump.serving.metrics import RequestStats
>>> watchers = Watchers(RequestStats())
>>> watcher = Watcher(("a",), backlog=8)
>>> watchers.add(watcher)
>>> old = Version(freeze({"a": 1, "b": 1}), 0, None, "0")
>>> watchers.publish(old, Version(old.state.set("b", 2), 1, None, "0"))
>>> len(watcher.backlog)
0
>>> watchers.publish(old, Version(old.state.set("a", 2), 2, None, "0"))
>>> [version.sequence for version in watcher.backlog], watcher.wake.is_set()
([2], True)
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from statepump.core import statejson
from statepump.core.events import Version
from statepump.serving.metrics import RequestStats


def changed(before: Any, after: Any) -> bool:
    """Whether a watched subtree changed between two versions.

    Persistent structures share unchanged subtrees, so identity settles most
    cases; equal scalars (a value set again) and small equal containers are
    not reported as changes.

    >>> from pyrsistent import freeze
    >>> changed(1000, int("1000")), changed(1, True), changed(freeze([1]), freeze([1]))
    (False, True, False)
    """
    if before is after:
        return False
    if type(before) is not type(after):
        return True
    try:
        if len(before) > 64:
            return True
    except TypeError:
        pass
    return bool(before != after)


class Watcher:
    """One ``/v1/watch`` stream: the versions published since it last wrote."""

    __slots__ = ("backlog", "segments", "wake")

    def __init__(self, segments: tuple[str, ...], backlog: int) -> None:
        self.segments = segments
        # A slow watcher loses intermediate versions, never the latest one.
        self.backlog: deque[Version[Any]] = deque(maxlen=backlog)
        self.wake = asyncio.Event()

    def push(self, version: Version[Any]) -> None:
        self.backlog.append(version)
        self.wake.set()


class Watchers:
    """The open watch streams of one server, grouped by watched path (counted in ``stats.watchers``)."""

    __slots__ = ("_groups", "_stats")

    def __init__(self, stats: RequestStats) -> None:
        self._stats = stats
        self._groups: dict[tuple[str, ...], set[Watcher]] = {}

    def add(self, watcher: Watcher) -> None:
        self._groups.setdefault(watcher.segments, set()).add(watcher)
        self._stats.watchers += 1

    def remove(self, watcher: Watcher) -> None:
        group = self._groups.get(watcher.segments)
        if group is not None and watcher in group:
            group.discard(watcher)
            self._stats.watchers -= 1
            if not group:
                del self._groups[watcher.segments]

    def publish(self, old: Version[Any], new: Version[Any]) -> None:
        """Push ``new`` to every watcher whose path it changed (a ``pump.subscribe`` callback)."""
        # Runs in the pump's loop right after a publish: one walk per watched
        # path, not per watcher, and identity says whether a subtree changed.
        for segments, group in self._groups.items():
            if changed(statejson.walk(old.state, segments), statejson.walk(new.state, segments)):
                for watcher in group:
                    watcher.push(new)
