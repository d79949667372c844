"""The pump's memory of recent events: one bounded ring, each event with its outcome.

Three readers share it: the replication feed that relays serve
(``GET /v1/events?after=N``: every event after N, in order), the outcome of one
event (``GET /v1/events/{sequence}``), and the history of a path
(``GET /v1/history``). Building it once keeps them consistent: what a relay
forwards is exactly what the sidecar says it applied.

Theory of operation. The pump folds batches; after each one it calls
:meth:`History.record` with the batch and the sequence number the fold reached.
The ring keeps the batch itself as one *chunk* (a reference to the events, not
a copy, plus the few outcomes that are not "applied"), so recording costs a
constant per batch, not per event: a catch-up of a million events keeps only
the chunks that still fit. Two invariants make the feed safe:

* **contiguous**: the chunks hold every sequence number from :attr:`oldest` to
  :attr:`newest`, each once. An event that does not follow :attr:`newest`
  (the pump started from a snapshot, or skipped a range under
  ``--allow-gap``) starts the ring afresh, so a reader never sees a hole;
  duplicates in a batch are dropped, as the fold drops them;
* **bounded**: by a count of events and by bytes (bodies and properties, an
  estimate of what the ring keeps alive); the oldest chunks go first, and a
  reader asking for something older gets :class:`Trimmed`, naming what is
  kept, never a partial answer.

Pure and synchronous; a lock makes it safe to read from threads other than
the pump's (an embedded pump serves request threads).

>>> from datetime import datetime, timezone
>>> from statepump.core.events import Event
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> batch = [Event("0", n, str(n), t, None, {}, b"{}") for n in range(5)]
>>> ring = History(max_events=3)
>>> ring.clear(at=-1)
>>> ring.record(batch, through=4, outcomes={3: ("poisoned", "ValueError: no")})
>>> (ring.oldest, ring.newest), [e.sequence for e in ring.after(2)]
((2, 4), [3, 4])
>>> ring.get(3).outcome, ring.get(3).reason
('poisoned', 'ValueError: no')
>>> ring.after(0)
Traceback (most recent call last):
...
statepump.core.history.Trimmed: events after 0 are no longer kept: this ring holds 2..4
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from statepump.core.events import Event

#: What the fold made of an event. ``rejected``: a deterministic no-op (the
#: event was invalid or its precondition failed); ``poisoned``: the reducer
#: failed, and the poison policy ``skip`` moved past it; ``skipped``: the
#: reducer failed, the pump halted, and a control event released it
#: (:mod:`statepump.core.control`); ``control``: a control event, never the reducer's.
Outcome = Literal["applied", "rejected", "poisoned", "skipped", "control"]

#: Default bounds of a pump's ring (``--history EVENTS``, ``--history-bytes``).
DEFAULT_EVENTS: Final = 10_000
DEFAULT_BYTES: Final = 64 << 20

# What one kept event costs beside its body: the Event object, its strings and
# datetime, and the chunk's share of bookkeeping; and each application property
# (a short name and value, as writers set them). An estimate: recording runs once
# per batch on the catch-up's path, so a large batch is measured by a sample of
# its events (configuration events of one writer are alike in size) instead of
# every one, which would cost a tenth of the fold's time per event.
_OVERHEAD: Final = 400
_PER_PROPERTY: Final = 96
_SAMPLE: Final = 32


@dataclass(frozen=True, slots=True)
class Entry:
    """One event the pump folded past, and what became of it."""

    event: Event
    outcome: Outcome = "applied"
    reason: str | None = None

    @property
    def sequence(self) -> int:
        return self.event.sequence


class Trimmed(LookupError):
    """The events asked for are older than the ring keeps (or it keeps none yet)."""

    def __init__(self, after: int, oldest: int | None, newest: int | None) -> None:
        self.after = after
        self.oldest = oldest
        self.newest = newest
        held = f"this ring holds {oldest}..{newest}" if oldest is not None else "this ring holds no events yet"
        super().__init__(f"events after {after} are no longer kept: {held}")


@dataclass(frozen=True, slots=True)
class _Chunk:
    first: int
    events: Sequence[Event]  # contiguous: events[i].sequence == first + i
    outcomes: Mapping[int, tuple[Outcome, str]]
    size: int  # bytes, estimated

    @property
    def last(self) -> int:
        return self.first + len(self.events) - 1

    def entry(self, sequence: int) -> Entry:
        event = self.events[sequence - self.first]
        found = self.outcomes.get(sequence)
        return Entry(event) if found is None else Entry(event, found[0], found[1])


def _size(events: Sequence[Event]) -> int:
    n = len(events)
    if n == 0:
        return 0
    step = max(1, n // _SAMPLE)
    sample = events[::step] if step > 1 else events
    measured = sum(len(e.body) + _PER_PROPERTY * len(e.properties) for e in sample)
    return _OVERHEAD * n + measured * n // len(sample)


class History:
    """A bounded, contiguous ring of the events a pump folded past, with their outcomes."""

    def __init__(self, max_events: int = DEFAULT_EVENTS, max_bytes: int = DEFAULT_BYTES) -> None:
        if max_events < 0 or max_bytes < 0:
            raise ValueError("a history's bounds must not be negative")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._chunks: deque[_Chunk] = deque()
        # The newest sequence number recorded (kept or trimmed since), or where the
        # pump's position was set by clear(at=...): what an empty ring follows.
        self._last: int | None = None
        self._count = 0
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def oldest(self) -> int | None:
        """The oldest sequence number kept, or ``None`` when the ring is empty."""
        chunks = self._chunks
        return chunks[0].first if chunks else None

    @property
    def newest(self) -> int | None:
        """The newest sequence number kept, or ``None`` when the ring is empty."""
        chunks = self._chunks
        return chunks[-1].last if chunks else None

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        """The estimated memory the kept events hold."""
        return self._bytes

    def record(
        self,
        events: Sequence[Event],
        *,
        through: int,
        outcomes: Mapping[int, tuple[Outcome, str]] | None = None,
    ) -> None:
        """Remember the events of ``events`` after :attr:`newest`, up to and including ``through``.

        ``events`` is a batch as the fold was given it (in order, maybe with
        duplicates before the new events); ``through`` is the sequence number
        the fold reached (events after it were not folded: a gap or a poison
        stop); ``outcomes`` gives the events that were not simply applied.
        """
        if not events:
            return
        newest = self._last
        start = 0
        if newest is not None and events[0].sequence <= newest:
            # Drop what the ring already holds (a re-delivery), as the fold drops duplicates.
            start = bisect.bisect_right(events, newest, key=lambda e: e.sequence)
        first = events[start].sequence if start < len(events) else None
        if first is None or first > through:
            return
        end = start + (through - first) + 1
        kept = events[start:end] if start or end < len(events) else events
        if kept[-1].sequence != through or len(kept) != through - first + 1:
            kept = _contiguous(kept, first)
            if not kept:
                return
        chunk_outcomes = {n: o for n, o in (outcomes or {}).items() if first <= n <= kept[-1].sequence}
        size = _size(kept)
        with self._lock:
            if newest is not None and first != newest + 1:
                # Not the next event: a skipped range the pump did not announce. A fresh ring has no hole.
                self._chunks.clear()
                self._count = self._bytes = 0
            self._last = kept[-1].sequence
            self._chunks.append(_Chunk(first, kept, chunk_outcomes, size))
            self._count += len(kept)
            self._bytes += size
            self._trim()

    def _trim(self) -> None:
        chunks = self._chunks
        # Whole chunks first, oldest first: by count, then by bytes.
        while chunks and (
            self._count - len(chunks[0].events) >= self.max_events
            or (self._bytes > self.max_bytes and len(chunks) > 1)
        ):
            self._drop_head()
        # Then cut the oldest chunk down to its newest events, for the count and for the bytes.
        if chunks and (self._count > self.max_events or self._bytes > self.max_bytes):
            head = chunks[0]
            keep = len(head.events) - max(0, self._count - self.max_events)
            events = head.events[len(head.events) - keep :]
            size = _size(events)
            while events and self._bytes - head.size + size > self.max_bytes:
                events = events[max(1, len(events) // 8) :]
                size = _size(events)
            self._drop_head()
            if events:
                first = events[0].sequence
                outcomes = {n: o for n, o in head.outcomes.items() if n >= first}
                chunks.appendleft(_Chunk(first, events, outcomes, size))
                self._count += len(events)
                self._bytes += size

    def _drop_head(self) -> None:
        head = self._chunks.popleft()
        self._count -= len(head.events)
        self._bytes -= head.size

    def clear(self, *, at: int) -> None:
        """Forget every event: the pump's position is now ``at`` (a snapshot loaded, a range skipped)."""
        with self._lock:
            self._chunks.clear()
            self._count = self._bytes = 0
            self._last = at

    def _find(self, sequence: int) -> _Chunk | None:
        chunks = self._chunks
        if not chunks or sequence < chunks[0].first or sequence > chunks[-1].last:
            return None
        i = bisect.bisect_right(chunks, sequence, key=lambda c: c.first) - 1
        return chunks[i]

    def get(self, sequence: int) -> Entry | None:
        """The event ``sequence`` and its outcome, or ``None`` when it is not kept."""
        with self._lock:
            chunk = self._find(sequence)
            return chunk.entry(sequence) if chunk is not None else None

    def after(self, sequence: int, *, through: int | None = None, limit: int | None = None) -> list[Entry]:
        """The events after ``sequence`` (through ``through``, at most ``limit``), oldest first.

        Raises :class:`Trimmed` when events after ``sequence`` exist but the
        oldest of them is no longer kept: an answer always starts exactly at
        ``sequence + 1``, or is empty because nothing newer is held.
        """
        with self._lock:
            last = self._last
            if last is None:
                raise Trimmed(sequence, None, None)
            if sequence >= last:
                return []
            oldest, newest = self.oldest, self.newest
            if oldest is None or newest is None or sequence + 1 < oldest:
                raise Trimmed(sequence, oldest, newest)
            stop = newest if through is None else min(through, newest)
            if limit is not None:
                stop = min(stop, sequence + limit)
            out: list[Entry] = []
            n = sequence + 1
            while n <= stop:
                chunk = self._find(n)
                assert chunk is not None
                last = min(chunk.last, stop)
                out.extend(chunk.entry(k) for k in range(n, last + 1))
                n = last + 1
            return out

    def newest_first(self, *, before: int | None = None) -> Iterator[Entry]:
        """Every kept entry, newest first, starting below ``before`` (a snapshot of the ring when called)."""
        with self._lock:
            chunks = list(self._chunks)
        for chunk in reversed(chunks):
            top = chunk.last if before is None else min(chunk.last, before - 1)
            for n in range(top, chunk.first - 1, -1):
                yield chunk.entry(n)


def _contiguous(events: Sequence[Event], first: int) -> list[Event]:
    """The run of ``events`` numbered ``first, first + 1, ...`` (a batch with a hole or repeats inside)."""
    out: list[Event] = []
    want = first
    for event in events:
        if event.sequence == want:
            out.append(event)
            want += 1
        elif event.sequence > want:
            break
    return out
