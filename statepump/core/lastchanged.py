"""The sequence number at which each path of a state last changed: what ``if_sequence`` is checked against.

A ``config`` operation may carry ``"if_sequence": N``: "apply this event only
if the path last changed at or before event N" (optimistic concurrency for a
writer who read the state at version N). Every node must answer that the same
way, including one that started from a snapshot, so the answer is part of the
folded version (:attr:`statepump.core.events.Version.changed`) and of every
snapshot, kept by the ``config`` reducer beside the state.

Theory of operation. An operation at path ``P`` that changes the state
(``set``, ``delete``, ``merge``; not ``test``) at event ``n`` changes ``P``,
everything below ``P`` (it replaced that subtree) and every ancestor of ``P``
(its value now differs). So for each path the record keeps two numbers:

* ``exact``: the last event whose operation was *at* this path;
* ``below``: the last event whose operation was at this path or under it.

The last change of ``Q`` is then ``max(below[Q], exact[A] for every proper
ancestor A of Q)``: a change under ``Q`` or at it, or a replacement of a
subtree that holds ``Q``. A change to a sibling (``markup/hoodie``) is not a
change of ``markup/tshirt``, but it is one of ``markup``. An operation counts
as a change whether or not the value it writes differs (a ``set`` of the same
value, a ``delete`` of nothing): that is decided from the event alone, the
same everywhere.

``floor``: a version whose history is not fully known (it was loaded from a
snapshot written before the record existed, or the pump skipped a gap) knows
only that every path last changed at or before that point, and answers
``floor`` for any path not changed since: an ``if_sequence`` older than the
floor fails rather than wrongly passing. A fold from the first event has
``floor == -1``.

Layout. One-segment paths (the common case: a top-level key) are keyed by
their segment in ``top``; longer ones by their JSON text in ``deep``. A value
is ``n`` when ``exact == below == n`` (every top-level ``set``), else
``(exact, below)``. The fold's hot path records a top-level change as one
dict assignment (:class:`Recorder`); a batch's are kept as one more layer
and merged into ``top`` once many batches have piled up, so the record costs
the fold a few percent (bench figure 2s), not a second map as large as the
state to update per batch (which halved the fold of a 1,000,000-key state).

>>> r = LastChanged.since(-1).record(("markup", "tshirt"), 5).record(("markup", "hoodie"), 7)
>>> r.at(("markup", "tshirt")), r.at(("markup",)), r.at(("markup", "hoodie")), r.at(("other",))
(5, 7, 7, -1)
>>> r.record(("markup",), 9).at(("markup", "tshirt"))
9
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pyrsistent import PMap, pmap, pvector

from statepump.core.pyrsistent_internals import map_update

Path = tuple[str | int, ...]


def _exact(value: object) -> int:
    return value if type(value) is int else int(value[0])  # type: ignore[index]


def _below(value: object) -> int:
    return value if type(value) is int else int(value[1])  # type: ignore[index]


def deep_key(path: Path) -> str:
    """The key of a path of two or more segments in ``deep``: its JSON text (``0`` and ``"0"`` differ).

    >>> deep_key(("servers", 0, "host"))
    '["servers",0,"host"]'
    """
    return json.dumps(list(path), ensure_ascii=False, separators=(",", ":"))


#: Layers kept before they are merged into ``top``: each is one batch's changes (see :class:`LastChanged`).
MOST_LAYERS = 64
MOST_LAYERED = 1 << 16


@dataclass(frozen=True, slots=True, eq=False)
class LastChanged:
    """The sequence each path last changed at; immutable (see the module's docstring).

    One-segment changes arrive a batch at a time: each batch's are kept as one more *layer* (a
    dict no one changes again, newest last) and merged into ``top`` once many have piled up
    (:data:`MOST_LAYERS` batches or :data:`MOST_LAYERED` entries), so a batch costs the fold
    a dict copy, not an update of a map as large as the state. Equality is that of the merged
    record.
    """

    floor: int
    top: PMap[Any, Any] = field(default_factory=pmap)
    deep: PMap[str, Any] = field(default_factory=pmap)
    layers: tuple[dict[Any, Any], ...] = ()

    @classmethod
    def since(cls, floor: int) -> LastChanged:
        """A record that knows only that everything last changed at or before ``floor``."""
        return cls(floor)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LastChanged):
            return NotImplemented
        a, b = self.merged(), other.merged()
        return (a.floor, a.top, a.deep) == (b.floor, b.top, b.deep)

    __hash__ = None  # type: ignore[assignment]

    def merged(self) -> LastChanged:
        """The same record with its layers merged into ``top`` (what a snapshot stores)."""
        if not self.layers:
            return self
        changes: dict[Any, Any] = {}
        for layer in self.layers:
            changes.update(layer)
        return LastChanged(self.floor, map_update(self.top, changes), self.deep)

    def _top(self, key: object) -> object:
        for layer in reversed(self.layers):
            found = layer.get(key)
            if found is not None:
                return found
        return self.top.get(key)

    def _get(self, path: Path) -> object:
        return self._top(path[0]) if len(path) == 1 else self.deep.get(deep_key(path))

    def at(self, path: Path) -> int:
        """The sequence at which ``path`` last changed (``floor`` if not since); ``()`` is the root."""
        last = self.floor
        if not path:  # the root changes with every change
            for value in self.merged().top.values():
                last = max(last, _below(value))
            return last
        own = self._get(path)
        if own is not None:
            last = max(last, _below(own))
        for i in range(1, len(path)):
            ancestor = self._get(path[:i])
            if ancestor is not None:
                last = max(last, _exact(ancestor))
        return last

    def raised_to(self, floor: int) -> LastChanged:
        """This record with a higher floor (after events whose changes are unknown, e.g. a skipped gap)."""
        return LastChanged(max(self.floor, floor), self.top, self.deep, self.layers)

    def record(self, path: Path, sequence: int) -> LastChanged:
        """This record after an operation at ``path`` at event ``sequence``."""
        recorder = Recorder(self)
        recorder.record(path, sequence)
        return recorder.result()


class Recorder:
    """A :class:`LastChanged` being updated in place by a batch of events, then frozen by :meth:`result`.

    >>> rec = Recorder(LastChanged.since(-1))
    >>> rec.top("a", 3); rec.record(("b", "c"), 4)
    >>> rec.result().at(("a",)), rec.result().at(("b",))
    (3, 4)
    """

    __slots__ = ("_base", "_deep", "tops")

    def __init__(self, base: LastChanged) -> None:
        self._base = base
        #: Pending one-segment changes, key -> sequence: the fold's hot path assigns here directly.
        self.tops: dict[Any, Any] = {}
        self._deep: dict[str, Any] = {}

    def top(self, key: object, sequence: int) -> None:
        """An operation at the one-segment path ``(key,)``: the fold's hot path."""
        self.tops[key] = sequence

    def _current(self, path: Path) -> object:
        if len(path) == 1:
            found = self.tops.get(path[0])
            return found if found is not None else self._base._top(path[0])
        key = deep_key(path)
        found = self._deep.get(key)
        return found if found is not None else self._base.deep.get(key)

    def _put(self, path: Path, value: object) -> None:
        if len(path) == 1:
            self.tops[path[0]] = value
        else:
            self._deep[deep_key(path)] = value

    def record(self, path: Path, sequence: int) -> None:
        """An operation at ``path`` (``()``, the root: a merge there) at event ``sequence``."""
        if not path:
            return  # a root merge is recorded as changes of the keys it merged (the caller's)
        self._put(path, sequence)
        for i in range(1, len(path)):
            ancestor = path[:i]
            old = self._current(ancestor)
            exact = _exact(old) if old is not None else self._base.floor
            self._put(ancestor, sequence if exact == sequence else pvector([exact, sequence]))

    def record_all(self, paths: Iterable[Path], sequence: int) -> None:
        for path in paths:
            self.record(path, sequence)

    def result(self) -> LastChanged:
        base = self._base
        if self.tops or self._deep:
            layers = base.layers
            if self.tops:
                # A copy, then cleared, not replaced: the fold's hot path holds this very dict.
                layers = (*layers, dict(self.tops))
                self.tops.clear()
            deep = map_update(base.deep, self._deep) if self._deep else base.deep
            self._deep = {}
            base = LastChanged(base.floor, base.top, deep, layers)
            if len(layers) > MOST_LAYERS or sum(map(len, layers)) > MOST_LAYERED:
                base = base.merged()
            self._base = base
        return base
