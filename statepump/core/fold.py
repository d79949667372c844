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
3. The reducer raises :class:`~statepump.core.errors.Rejected`: a
   **rejection** (an invalid ``config`` operation, a failed precondition
   (``test``, ``if_sequence``), a ``--schema`` violation, or
   a custom reducer's own refusal). The event is a no-op: the state stays as
   it was, the version moves past it, whatever the policy, and it is recorded
   in ``result.rejected``. Rejections are deterministic, so every node that
   folds the same log rejects the same events for the same reasons.
4. The reducer raises anything else: a **poison** event. Reducers work on immutable values,
   so the state before the event is untouched by construction. Under the
   ``stop`` policy the fold ends there (``result.stopped``) and the caller keeps
   serving the last good version; under ``skip`` the event is recorded in
   ``result.skipped`` and the version moves past it with the state unchanged.

Before any of rules 3 and 4, a **control event** (the application property
``statepump-control``, see :mod:`statepump.core.control`) is never passed to
the reducer: it is a no-op on the state, recorded in ``result.controls`` (or
in ``result.rejected`` when its body is no valid order). What a skip order
does to a pump halted on poison is the pump's to carry out, by that module's
rules; the fold only guarantees that no reducer ever sees one.

A reducer that keeps the record of when each path last changed
(``Reducer.tracking``: the ``config`` reducer, for ``if_sequence``) is given the
version's record beside its state, and each frozen version carries the new one
(``Version.changed``); a version without one (an older snapshot's) starts a
record whose floor is its sequence (:mod:`statepump.core.lastchanged`).

A batch produces one version (a :class:`Folder`, several batches), and that
version's sequence number is the last event it covers, so every published
version corresponds to exactly one sequence number. Since no one sees the
states between two events of a batch, a reducer with a ``batch`` hook (see
:class:`~statepump.core.reducer.Transient`) is given the whole batch to apply in
place and freeze once; the rules above hold the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

from statepump.core import control
from statepump.core.errors import Rejected, SequenceGapError
from statepump.core.events import Event, Version
from statepump.core.lastchanged import LastChanged
from statepump.core.reducer import Reducer, TrackingTransient, Transient

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
class Rejection:
    """An event the reducer rejected (:class:`~statepump.core.errors.Rejected`): a no-op, and why."""

    event: Event
    reason: str


@dataclass(frozen=True, slots=True)
class FoldResult(Generic[S]):
    """What one call of :func:`fold` did."""

    version: Version[S]
    applied: int = 0
    duplicates: int = 0
    skipped: tuple[Poisoned, ...] = ()
    stopped: Poisoned | None = None
    rejected: tuple[Rejection, ...] = ()
    controls: tuple[control.Skip, ...] = ()


class FoldGap(SequenceGapError):
    """A :class:`SequenceGapError` raised by :func:`fold`, carrying the events folded before the gap."""

    def __init__(self, expected: int, got: int, result: FoldResult[object]) -> None:
        super().__init__(expected, got)
        self.result = result


@dataclass(frozen=True, slots=True)
class Fed:
    """What one :meth:`Folder.feed` did. ``gap`` is ``(expected, got)`` when the batch broke off at a gap."""

    applied: int = 0
    duplicates: int = 0
    skipped: tuple[Poisoned, ...] = ()
    stopped: Poisoned | None = None
    gap: tuple[int, int] | None = None
    rejected: tuple[Rejection, ...] = ()
    controls: tuple[control.Skip, ...] = ()


class Folder(Generic[S]):
    """Folds batch after batch into one working copy of a version's state; :meth:`freeze` makes the new version.

    :func:`fold` is one batch through a Folder. The pump keeps one open across
    the batches of a catch-up, when no one waits for each version, and freezes
    it about once a second: freezing a reducer's transient costs about as much
    as a few thousand events (the ``config`` reducer rewrites the touched
    buckets of its map), and freezing once for many batches lets it rebuild a
    map in one pass instead of path-copying it batch after batch.

    The rules of this module hold across batches exactly as within one: a
    batch that meets a gap or, under ``stop``, a poison event ends there
    (:attr:`Fed.gap`, :attr:`Fed.stopped`), and :meth:`freeze` gives the
    version of the last event folded before it. After a ``stop`` the folder
    takes no more events.

    >>> from datetime import datetime, timezone
    >>> from statepump.core.configops import config
    >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> def ev(n, path):
    ...     return Event("0", n, str(n), now, None, {}, b'{"op":"set","path":"%s","value":%d}' % (path, n))
    >>> folder = Folder(Version(config.initial, -1, None, "0"), config)
    >>> folder.feed([ev(0, b"a"), ev(1, b"b")]).applied, folder.feed([ev(1, b"b"), ev(2, b"a")]).duplicates
    (2, 1)
    >>> v = folder.freeze(now)
    >>> (v.sequence, sorted(v.state.items()))
    (2, [('a', 2), ('b', 1)])
    """

    __slots__ = ("_last", "_last_event", "_policy", "_reducer", "_stopped", "_tracking", "_transient", "_version")

    def __init__(self, version: Version[S], reducer: Reducer[S], *, policy: PoisonPolicy = "stop") -> None:
        self._version = version
        self._reducer = reducer
        self._policy = policy
        self._transient: Transient[S] | None = None
        self._tracking: TrackingTransient[S] | None = None  # the transient, when it keeps Version.changed
        self._last = version.sequence
        self._last_event: Event | None = None  # the last event folded or skipped since the last freeze
        self._stopped = False

    @property
    def sequence(self) -> int:
        """The sequence number of the last event folded (or skipped), frozen or not."""
        return self._last

    @property
    def pending(self) -> bool:
        """Whether events were folded since the last :meth:`freeze`."""
        return self._last_event is not None

    def feed(self, events: Iterable[Event]) -> Fed:
        """Fold ``events`` into the working copy, by the rules of this module."""
        if self._stopped:
            raise RuntimeError("this fold was stopped by a poison event: freeze it and start a new one")
        transient = self._transient
        if transient is None:
            reducer, state = self._reducer, self._version.state
            if reducer.tracking is not None:
                # A version without a record (an older snapshot's) knows only that every path last changed
                # at or before it: its sequence is the record's floor (statepump.core.lastchanged).
                changed = self._version.changed or LastChanged.since(self._version.sequence)
                transient = self._tracking = reducer.tracking(state, changed)
            else:
                transient = reducer.batch(state) if reducer.batch is not None else _OneByOne(reducer.apply, state)
            self._transient = transient
        last, last_event = self._last, self._last_event
        applied = duplicates = 0
        skipped: list[Poisoned] = []
        rejected: list[Rejection] = []
        controls: list[control.Skip] = []
        stopped: Poisoned | None = None
        gap: tuple[int, int] | None = None
        apply = transient.apply
        try:
            for event in events:
                n = event.sequence
                if n <= last:
                    duplicates += 1
                    continue
                if n != last + 1:
                    gap = (last + 1, n)
                    break
                if control.CONTROL_PROPERTY in event.properties:  # one dict lookup per event on the fold's path
                    try:
                        controls.append(control.read(event))
                    except Rejected as exc:
                        rejected.append(Rejection(event, str(exc)))
                    last, last_event = n, event
                    continue
                try:
                    apply(event)
                except Rejected as exc:  # deterministic: a no-op here and on every other node
                    rejected.append(Rejection(event, str(exc)))
                except Exception as exc:  # any reducer failure is a poison event, by design
                    poisoned = Poisoned.of(event, exc)
                    if self._policy == "stop":
                        stopped = poisoned
                        self._stopped = True
                        break
                    skipped.append(poisoned)
                else:
                    applied += 1
                last, last_event = n, event
        finally:
            self._last, self._last_event = last, last_event
        return Fed(applied, duplicates, tuple(skipped), stopped, gap, tuple(rejected), tuple(controls))

    def freeze(self, applied_at: datetime) -> Version[S]:
        """The version of everything folded so far (the same object when nothing was)."""
        last_event = self._last_event
        if last_event is not None and self._transient is not None:
            tracking = self._tracking
            self._version = Version(
                self._transient.result(),
                self._last,
                last_event.enqueued_time,
                self._version.partition,
                applied_at,
                tracking.changed() if tracking is not None else self._version.changed,
            )
            self._transient = self._tracking = None  # the next feed starts from the frozen state
            self._last_event = None
        return self._version


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
    >>> from statepump.core.configops import config
    >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> def ev(n, body):
    ...     return Event("0", n, str(n), now, None, {}, body)
    >>> start = Version(config.initial, -1, None, "0")
    >>> r = fold(start, [ev(0, b'{"op":"set","path":"a","value":1}'), ev(0, b'{}')], config, applied_at=now)
    >>> (r.version.sequence, r.applied, r.duplicates, dict(r.version.state))
    (0, 1, 1, {'a': 1})
    """
    folder = Folder(version, reducer, policy=policy)
    fed = folder.feed(events)
    result = FoldResult(
        folder.freeze(applied_at), fed.applied, fed.duplicates, fed.skipped, fed.stopped, fed.rejected, fed.controls
    )
    if fed.gap is not None:
        raise FoldGap(*fed.gap, result)  # type: ignore[arg-type]
    return result


class _OneByOne(Generic[S]):
    """The :class:`~statepump.core.reducer.Transient` of a reducer without a batch hook: a new state per event."""

    __slots__ = ("_apply", "_state")

    def __init__(self, apply: Callable[[S, Event], S], state: S) -> None:
        self._apply = apply
        self._state = state

    def apply(self, event: Event) -> None:
        self._state = self._apply(self._state, event)

    def result(self) -> S:
        return self._state
