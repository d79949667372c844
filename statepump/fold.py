"""Applying events to a version: strict order, duplicates, gaps and poison.

This is the heart of statepump's promise that every published version is
exactly the fold of events ``0..N`` of the partition. It is pure: no I/O, no
clock (the caller passes ``applied_at``), no shared state.

Rules, in the order they are checked for each event:

1. ``event.sequence <= version.sequence``: a **duplicate** (a source
   re-delivering after a reconnect, or Capture overlapping the hub). Skipped
   and counted, never applied twice.
2. ``event.sequence > version.sequence + 1``: a **gap**. The events before it
   in the batch are folded, then :class:`SequenceGapError` is raised with that
   partial result attached as ``error.result``, so nothing already applied is
   lost and nothing after the hole is applied.
3. The reducer raises: a **poison** event. Reducers work on immutable values,
   so the state before the event is untouched by construction. Under the
   ``stop`` policy the fold ends there (``result.stopped``) and the caller keeps
   serving the last good version; under ``skip`` the event is recorded in
   ``result.skipped`` and the version moves past it with the state unchanged.

A batch produces one version: callers publish once per batch, and that
version's sequence number is the last event it covers, so every published
version corresponds to exactly one sequence number. Since no one sees the
states between two events of a batch, a reducer with a ``batch`` hook (see
:class:`~statepump.reducers.Transient`) is given the whole batch to apply in
place and freeze once; the rules above hold the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

from statepump.errors import SequenceGapError
from statepump.events import Event, Version
from statepump.reducers import Reducer

S = TypeVar("S")

PoisonPolicy = Literal["stop", "skip"]
POISON_POLICIES: tuple[PoisonPolicy, ...] = ("stop", "skip")


@dataclass(frozen=True, slots=True)
class Poisoned:
    """An event the reducer rejected, and why."""

    event: Event
    error: str

    @classmethod
    def of(cls, event: Event, exc: BaseException) -> Poisoned:
        return cls(event, f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class FoldResult(Generic[S]):
    """What one call of :func:`fold` did."""

    version: Version[S]
    applied: int = 0
    duplicates: int = 0
    skipped: tuple[Poisoned, ...] = ()
    stopped: Poisoned | None = None


class FoldGap(SequenceGapError):
    """A :class:`SequenceGapError` raised by :func:`fold`, carrying the events folded before the gap."""

    def __init__(self, expected: int, got: int, result: FoldResult[object]) -> None:
        super().__init__(expected, got)
        self.result = result


def fold(
    version: Version[S],
    events: Iterable[Event],
    reducer: Reducer[S],
    *,
    applied_at: datetime,
    policy: PoisonPolicy = "stop",
) -> FoldResult[S]:
    """Fold ``events`` into ``version``; return the new version and what happened.

    >>> from datetime import datetime, timezone
    >>> from statepump.reducers import config
    >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> def ev(n, body):
    ...     return Event("0", n, str(n), now, None, {}, body)
    >>> start = Version(config.initial, -1, None, "0")
    >>> r = fold(start, [ev(0, b'{"op":"set","path":"a","value":1}'), ev(0, b'{}')], config, applied_at=now)
    >>> (r.version.sequence, r.applied, r.duplicates, dict(r.version.state))
    (0, 1, 1, {'a': 1})
    """
    transient = reducer.batch(version.state) if reducer.batch is not None else _OneByOne(reducer.apply, version.state)
    last = version.sequence
    last_event: Event | None = None  # the last event folded or skipped: its number and time make the version
    applied = duplicates = 0
    skipped: list[Poisoned] = []
    apply = transient.apply

    def result(stopped: Poisoned | None = None) -> FoldResult[S]:
        if last_event is None:
            new = version  # nothing moved: keep the identical object, readers compare by identity
        else:
            new = Version(transient.result(), last, last_event.enqueued_time, version.partition, applied_at)
        return FoldResult(new, applied, duplicates, tuple(skipped), stopped)

    for event in events:
        n = event.sequence
        if n <= last:
            duplicates += 1
            continue
        if n != last + 1:
            raise FoldGap(last + 1, n, result())  # type: ignore[arg-type]
        try:
            apply(event)
        except Exception as exc:  # any reducer failure is a poison event, by design
            poisoned = Poisoned.of(event, exc)
            if policy == "stop":
                return result(poisoned)
            skipped.append(poisoned)
        else:
            applied += 1
        last, last_event = n, event
    return result()


class _OneByOne(Generic[S]):
    """The :class:`~statepump.reducers.Transient` of a reducer without a batch hook: a new state per event."""

    __slots__ = ("_apply", "_state")

    def __init__(self, apply: Callable[[S, Event], S], state: S) -> None:
        self._apply = apply
        self._state = state

    def apply(self, event: Event) -> None:
        self._state = self._apply(self._state, event)

    def result(self) -> S:
        return self._state
