"""Reading the pump's ring of recent events as a timeline: the history of a path, and past states.

Pure and synchronous (no I/O, no clock); the sidecar's ``/v1/history`` and
``/v1/diff`` are this module over ``Pump.history`` (:mod:`statepump.core.history`).

**History.** :func:`history` walks the ring newest first and keeps the entries
whose changed paths touch the asked path (:func:`statepump.core.changes.touches`);
the paths are derived from each event when asked, so the fold pays nothing.
:func:`entry_json` is what one entry looks like in the API: sequence, enqueued
time, application properties (the writer's identity is ``statepump-author``),
the operations (the body, decoded when it is JSON), the outcome and the paths.

**Past states.** A version's state cannot be computed backwards from a newer
one, so :class:`Checkpoints` keeps the states the pump published (every
published version is immutable and shares all it did not change with the next,
so a kept state costs only what changed after it). The state at ``n`` is the
newest checkpoint at or before ``n``, plus the ring's events after it, folded
again (:func:`state_at`): exact, because those are the very events the pump
folded, and rejected or poisoned ones changed nothing. A checkpoint is kept
only while the ring still holds every event after it, so the range answerable
is ``[oldest checkpoint, ring's newest]`` and memory follows the ring's bound.

>>> from datetime import datetime, timezone
>>> from pyrsistent import pmap
>>> from statepump.core.configops import config
>>> from statepump.core.events import Event
>>> from statepump.core.history import History
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> ring = History(max_events=100)
>>> ring.clear(at=-1)
>>> events = [Event("0", n, str(n), t, None, {}, b'{"op": "set", "path": "k", "value": %d}' % n) for n in range(5)]
>>> ring.record(events, through=4)
>>> kept = Checkpoints()
>>> kept.add(-1, pmap(), ring)
>>> state_at(kept, ring, config, 2)["k"]
2
>>> [e.sequence for e in history(ring, config, ("k",), limit=2)]
[4, 3]
"""

from __future__ import annotations

import base64
import bisect
import json
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from statepump.core import changes
from statepump.core.errors import Rejected
from statepump.core.history import Entry, History
from statepump.core.reducer import Reducer

#: The application property a writer's identity goes in (``statepump send --author``).
AUTHOR_PROPERTY: Final = "statepump-author"

#: Checkpoints kept at most (a pump publishes a version per batch when live).
MAX_CHECKPOINTS: Final = 4096


class NotKept(LookupError):
    """A sequence number outside the range the sidecar can still rebuild; names that range."""

    def __init__(self, sequence: int, oldest: int | None, newest: int | None) -> None:
        self.sequence = sequence
        self.oldest = oldest
        self.newest = newest
        kept = f"{oldest}..{newest}" if oldest is not None and newest is not None else "nothing yet"
        super().__init__(
            f"the state at sequence {sequence} is not kept: this sidecar can rebuild {kept} "
            "(use `statepump query --at-sequence` or `statepump diff`, which replay from snapshots and the hub)"
        )


class Checkpoints:
    """States the pump published, by sequence number, kept while the ring holds the events after them.

    >>> from pyrsistent import pmap
    >>> ring = History()
    >>> ring.clear(at=9)
    >>> kept = Checkpoints()
    >>> kept.add(9, pmap({"a": 1}), ring)
    >>> kept.newest_at_or_before(12)
    (9, pmap({'a': 1}))
    """

    def __init__(self, max_count: int = MAX_CHECKPOINTS) -> None:
        self.max_count = max_count
        self._sequences: deque[int] = deque()
        self._states: deque[Any] = deque()
        self._lock = threading.Lock()

    def add(self, sequence: int, state: Any, ring: History) -> None:
        """Keep ``state`` as the state at ``sequence``; forget those the ring no longer follows."""
        with self._lock:
            if self._sequences and sequence <= self._sequences[-1]:
                if sequence == self._sequences[-1]:
                    self._states[-1] = state  # published again (a skipped range announced): same events
                    return
                # The pump went back (a restart from a snapshot): what was kept describes another past.
                self._sequences.clear()
                self._states.clear()
            self._sequences.append(sequence)
            self._states.append(state)
            self._trim(ring)

    def _trim(self, ring: History) -> None:
        oldest = ring.oldest
        # A checkpoint is usable while the ring holds the event right after it (or it is the newest).
        while len(self._sequences) > 1 and (
            len(self._sequences) > self.max_count or oldest is None or self._sequences[0] + 1 < oldest
        ):
            self._sequences.popleft()
            self._states.popleft()

    @property
    def oldest(self) -> int | None:
        with self._lock:
            return self._sequences[0] if self._sequences else None

    def __len__(self) -> int:
        return len(self._sequences)

    def newest_at_or_before(self, sequence: int) -> tuple[int, Any] | None:
        with self._lock:
            i = bisect.bisect_right(self._sequences, sequence) - 1
            return (self._sequences[i], self._states[i]) if i >= 0 else None


def kept_range(checkpoints: Checkpoints, ring: History) -> tuple[int | None, int | None]:
    """The sequence numbers whose state :func:`state_at` can rebuild, as ``(oldest, newest)``."""
    oldest = checkpoints.oldest
    newest = ring.newest
    if oldest is None:
        return None, None
    if newest is None or (ring.oldest is not None and oldest + 1 < ring.oldest):
        return oldest, oldest  # only the checkpoint itself
    return oldest, max(oldest, newest)


def state_at(checkpoints: Checkpoints, ring: History, reducer: Reducer[Any], sequence: int) -> Any:
    """The state right after event ``sequence``; raises :class:`NotKept` outside :func:`kept_range`."""
    oldest, newest = kept_range(checkpoints, ring)
    if oldest is None or newest is None or not oldest <= sequence <= newest:
        raise NotKept(sequence, oldest, newest)
    found = checkpoints.newest_at_or_before(sequence)
    if found is None:
        raise NotKept(sequence, oldest, newest)
    at, state = found
    if at == sequence:
        return state
    try:
        entries = ring.after(at, through=sequence)
    except LookupError:
        raise NotKept(sequence, *kept_range(checkpoints, ring)) from None
    if not entries or entries[-1].sequence != sequence:
        raise NotKept(sequence, *kept_range(checkpoints, ring))
    for entry in entries:
        if entry.outcome != "applied":
            continue  # rejected and poisoned events changed nothing when the pump folded them
        try:
            state = reducer(state, entry.event)
        except Rejected:
            continue
    return state


def history(
    ring: History,
    reducer: Reducer[Any],
    path: Sequence[str] = (),
    *,
    limit: int = 100,
    before: int | None = None,
    after: int | None = None,
) -> list[Entry]:
    """The ring's entries that touched ``path`` (all of them for the root), newest first, below ``before``.

    Only entries after ``after`` when given (what ``statepump log --follow`` has not seen yet).
    An entry whose paths the reducer cannot name matches only the root.
    """
    out: list[Entry] = []
    if limit <= 0:
        return out
    for entry in ring.newest_first(before=before):
        if after is not None and entry.sequence <= after:
            break
        if path:
            paths = changes.event_paths(reducer, entry.event)
            if paths is None or not changes.touches(paths, path):
                continue
        out.append(entry)
        if len(out) >= limit:
            break
    return out


@dataclass(frozen=True, slots=True)
class Page:
    """One page of history, as ``/v1/history`` answers it."""

    entries: list[Entry]
    oldest: int | None  # what the ring holds
    newest: int | None
    more: bool  # older matching entries may exist in the ring (ask again with before=<the last sequence>)


def page(
    ring: History,
    reducer: Reducer[Any],
    path: Sequence[str],
    *,
    limit: int,
    before: int | None,
    after: int | None = None,
) -> Page:
    """:func:`history`, asking for one more entry to tell whether there are more."""
    found = history(ring, reducer, path, limit=limit + 1, before=before, after=after)
    return Page(found[:limit], ring.oldest, ring.newest, len(found) > limit)


def entry_json(entry: Entry, reducer: Reducer[Any]) -> dict[str, Any]:
    """One history entry for the API (JSON-ready).

    >>> from datetime import datetime, timezone
    >>> from statepump.core.configops import config
    >>> from statepump.core.events import Event
    >>> e = Event("0", 7, "7", datetime(2026, 1, 1, tzinfo=timezone.utc), None, {"statepump-author": "ann"},
    ...           b'{"op": "set", "path": "a/b", "value": 1}')
    >>> doc = entry_json(Entry(e), config)
    >>> doc["sequence"], doc["enqueued_time"], doc["author"], doc["outcome"], doc["paths"]
    (7, '2026-01-01T00:00:00+00:00', 'ann', 'applied', ['a/b'])
    >>> doc["operations"]
    [{'op': 'set', 'path': 'a/b', 'value': 1}]
    """
    event = entry.event
    properties = {str(k): _plain(v) for k, v in event.properties.items()}
    paths = changes.event_paths(reducer, event)
    out: dict[str, Any] = {
        "sequence": event.sequence,
        "enqueued_time": event.enqueued_time.isoformat(),
        "author": properties.get(AUTHOR_PROPERTY),
        "properties": properties,
        "outcome": entry.outcome,
        "reason": entry.reason,
    }
    try:
        doc = json.loads(event.body)
    except (UnicodeDecodeError, ValueError):
        out["operations"] = None
        out["body_base64"] = base64.b64encode(event.body[:4096]).decode()
    else:
        out["operations"] = doc["ops"] if isinstance(doc, dict) and isinstance(doc.get("ops"), list) else [doc]
    out["paths"] = None if paths is None else [changes.render(p) for p in paths]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return base64.b64encode(value).decode()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
