"""The catch-up plan: from where the state stands to the next thing to read.

Theory of operation
===================

A partition is one line of sequence numbers 0, 1, 2, ... with no holes. The
state stands at a *position*: the number of the last event folded into it
(``-1`` when nothing has been applied, i.e. there is no snapshot). Getting
from there to "now" means applying ``position + 1``, ``position + 2``, ...
each exactly once, in order, from whichever place still holds it.

Two places can hold an event::

    0                     B                               L
    |---------------------|===============================|   the hub: B..L
    |======================|                                 Capture: C0..C1
    C0                   C1

* The **hub** holds ``B..L`` (its *beginning* and *last*). Retention moves
  ``B`` forward at any moment, a segment at a time, and ``L`` grows as events
  arrive. The hub is the live source: reading it never ends.
* **Capture**, when it is configured, holds ``C0..C1`` in Avro files. It
  only holds what arrived after it was enabled, and it lags the hub by up to
  a capture window. It is finite and cheap to read in bulk.

The plan looks at one number, ``want = position + 1``, and asks who holds it:

1. ``want >= B``: the hub holds it (or it has not happened yet, which is the
   same to a live reader). **Read the hub after ``position``.** This is the
   only terminal step of a live pump.
2. ``want < B`` and Capture holds it: **read Capture after ``position``
   through ``B - 1``**, the last number the hub no longer has. That is also
   the moment to flip: the next number is the hub's. If Capture ends before
   ``B - 1`` the numbers ``C1 + 1 .. B - 1`` are in neither place, and that
   is a gap, reported now rather than after minutes of reading.
3. ``want`` is in neither place: a **gap**. :class:`SequenceGapError` names
   the exact missing range ``want .. next - 1``, where ``next`` is the first
   number some source holds. Nothing is read: a state that silently lacks
   events is never served. Two exceptions skip the range instead and say so
   in the step's :class:`Skipped`: ``allow_gap=True`` (the operator's
   ``--allow-gap``), and ``position == -1`` (no snapshot: rule 4 of the
   design, start from the earliest event any source still has).
4. Capture is configured but its coverage is not known yet, and it is
   needed (``want < B``): **probe Capture** (read its bounds) and plan again.
   Reading Capture's bounds costs blob listings and a few reads, so the plan
   asks for it only when the hub cannot serve.

And two checks come first: a position past the hub's last event means the
snapshot is not from this hub (or the hub was recreated), which no amount of
reading fixes; and a position at or past ``until`` (a snapshotter's target)
means **done**.

Every answer is a function of ``(position, hub bounds, capture coverage)``
and nothing else, so the executor's loop is::

    while True:
        step = next_step(position, await hub.bounds(), coverage, until=target)
        ... perform one step (or part of it), advancing position ...

Retention moves while a step runs, so a step is a plan for *now*, not a
promise: after each step (or every few batches), the executor re-reads the
bounds and asks again. Re-planning is always safe: the plan depends on where
the state *is*, never on what was planned before. In particular:

* Reading the hub after ``p`` and getting first ``q > p + 1`` (retention
  overtook the reader) is answered by planning again from ``p``: Capture may
  hold ``p + 1 .. q - 1``; if not, that is the gap.
* The pump at start (position from the snapshot), the pump after a long
  disconnect (position of its current version), and the snapshotter
  (position from the snapshot it loaded, ``until`` the hub's last at start)
  all call the same :func:`next_step`.

Pure: no I/O, no clock. Tested with hypothesis in ``tests/plan/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from statepump.core.errors import SequenceGapError, StatepumpError
from statepump.core.events import NOTHING_APPLIED, PartitionBounds

__all__ = [
    "CaptureCoverage",
    "Done",
    "PositionAheadError",
    "ProbeCapture",
    "ReadCapture",
    "ReadHub",
    "Skipped",
    "Step",
    "caught_up",
    "lag",
    "next_step",
]


class PositionAheadError(StatepumpError):
    """The state stands past the hub's last event: the snapshot belongs to
    another hub, or the hub was deleted and recreated. Reading cannot fix it;
    an operator must remove the snapshot or point at the right hub."""

    def __init__(self, position: int, hub_last: int) -> None:
        self.position = position
        self.hub_last = hub_last
        super().__init__(
            f"the state is at event {position} but the hub's last event is {hub_last}: "
            "the snapshot is not from this hub, or the hub was recreated"
        )


@dataclass(frozen=True, slots=True)
class CaptureCoverage:
    """What is known of Capture for the partition.

    ``configured`` says whether Capture is set up at all; ``bounds`` is its
    first and last sequence numbers as last read, or ``None`` when they have
    not been read (the plan then answers :class:`ProbeCapture` if it needs them).

    >>> CaptureCoverage.off().configured, CaptureCoverage.unknown().bounds
    (False, None)
    >>> CaptureCoverage.of(0, 99).bounds
    PartitionBounds(first=0, last=99, last_enqueued_time=None)
    """

    configured: bool
    bounds: PartitionBounds | None = None

    @classmethod
    def off(cls) -> CaptureCoverage:
        """Capture is not configured."""
        return cls(False, None)

    @classmethod
    def unknown(cls) -> CaptureCoverage:
        """Capture is configured but its bounds have not been read."""
        return cls(True, None)

    @classmethod
    def of(cls, first: int, last: int) -> CaptureCoverage:
        """Capture holds ``first..last`` (``last < first``: configured but empty)."""
        return cls(True, PartitionBounds(first, last))

    def holds(self, sequence: int) -> bool:
        """True when Capture is known to hold ``sequence``."""
        b = self.bounds
        return self.configured and b is not None and b.first <= sequence <= b.last

    def describe(self) -> str:
        """A phrase for error messages and status.

        >>> CaptureCoverage.of(3, 9).describe()
        'Capture holds 3..9'
        """
        if not self.configured:
            return "Capture is not configured"
        if self.bounds is None:
            return "Capture's coverage is not known"
        if self.bounds.empty:
            return "Capture holds no events"
        return f"Capture holds {self.bounds.first}..{self.bounds.last}"


@dataclass(frozen=True, slots=True)
class Skipped:
    """Events ``first..last`` that no source holds and that the plan chose
    to go past: ``reason`` is ``"no-snapshot"`` (the partition's early events
    are gone and there is no snapshot to stand for them) or ``"allowed-gap"``
    (the operator's ``--allow-gap``). The executor logs it and counts it."""

    first: int
    last: int
    reason: Literal["no-snapshot", "allowed-gap"]

    @property
    def count(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class ReadHub:
    """Read the hub: events with sequence numbers greater than ``after``.

    ``after`` equals the position unless ``skipped`` is set, in which case
    it is ``skipped.last`` and the executor moves its position there before
    reading (the fold then expects ``after + 1``). The step never ends for a
    live pump; with ``until`` set, stop after applying ``until``.
    """

    after: int
    until: int | None = None
    skipped: Skipped | None = None


@dataclass(frozen=True, slots=True)
class ReadCapture:
    """Read Capture: events greater than ``after``, through ``through``.

    ``through`` is the last number the hub no longer had when planned (or
    ``until``, whichever is smaller); stop after applying it, or earlier,
    and plan again. If Capture ends or skips a number before ``through``,
    that is a gap (the Capture source raises :class:`SequenceGapError`).
    ``after`` and ``skipped`` work as in :class:`ReadHub`.
    """

    after: int
    through: int
    skipped: Skipped | None = None


@dataclass(frozen=True, slots=True)
class ProbeCapture:
    """Read Capture's bounds (``CaptureSource.bounds()``) and plan again with them."""


@dataclass(frozen=True, slots=True)
class Done:
    """The position has reached ``until``: nothing more to read.

    ``position`` is where the state stands; it is past the caller's position
    only when ``skipped`` is set (``until`` fell inside a skipped range).
    """

    position: int
    skipped: Skipped | None = None


Step = ReadHub | ReadCapture | ProbeCapture | Done


def next_step(
    position: int,
    hub: PartitionBounds,
    capture: CaptureCoverage,
    *,
    until: int | None = None,
    allow_gap: bool = False,
) -> Step:
    """The next thing to read to move the state on from ``position``.

    ``position`` is the last applied sequence number (``-1``: none, no
    snapshot); ``hub`` the hub's bounds read just now; ``capture`` what is
    known of Capture; ``until`` a target after which there is nothing to do
    (a snapshotter's; a live pump passes ``None``). Raises
    :class:`SequenceGapError` with the exact missing range when the next
    number is in neither source (unless ``allow_gap``), and
    :class:`PositionAheadError` when ``position`` is past the hub's last.

    Snapshot at 1000 and the hub still has 1001 (rule 1):

    >>> next_step(1000, PartitionBounds(500, 9000), CaptureCoverage.off())
    ReadHub(after=1000, until=None, skipped=None)

    The hub's retention moved to 5000; Capture has 0..6000 (rule 2):

    >>> next_step(1000, PartitionBounds(5000, 9000), CaptureCoverage.of(0, 6000))
    ReadCapture(after=1000, through=4999, skipped=None)

    The same, before Capture's bounds have been read:

    >>> next_step(1000, PartitionBounds(5000, 9000), CaptureCoverage.unknown())
    ProbeCapture()

    Capture files for 3001.. are gone (rule 3):

    >>> next_step(1000, PartitionBounds(5000, 9000), CaptureCoverage.of(0, 3000))
    Traceback (most recent call last):
    ...
    statepump.core.errors.SequenceGapError: sequence gap: no source has the next events \
(events 3001..4999 are missing) (the hub holds 5000..9000, Capture holds 0..3000)

    No snapshot, nothing in Capture, the hub starts at 70 (rule 4):

    >>> next_step(-1, PartitionBounds(70, 90), CaptureCoverage.of(0, -1))
    ReadHub(after=69, until=None, skipped=Skipped(first=0, last=69, reason='no-snapshot'))

    A snapshotter that has reached its target:

    >>> next_step(90, PartitionBounds(70, 95), CaptureCoverage.off(), until=90)
    Done(position=90, skipped=None)
    """
    if position < NOTHING_APPLIED:
        raise ValueError(f"a position is a sequence number or -1, not {position}")
    if position > hub.last:
        raise PositionAheadError(position, hub.last)
    if until is not None and position >= until:
        return Done(position)
    want = position + 1
    if want >= hub.first:
        return ReadHub(after=position, until=until)
    if capture.configured and capture.bounds is None:
        return ProbeCapture()
    if capture.holds(want):
        assert capture.bounds is not None  # holds() checked it
        through = hub.first - 1
        if until is not None:
            through = min(through, until)
        if capture.bounds.last < through:
            # The hub has already dropped numbers Capture does not (yet) have.
            missing_first, missing_last = capture.bounds.last + 1, hub.first - 1
            if not allow_gap:
                raise _gap(missing_first, missing_last, hub, capture)
            through = capture.bounds.last
        return ReadCapture(after=position, through=through)
    # ``want`` is in neither source: find the next number one of them holds.
    following = hub.first
    b = capture.bounds
    if capture.configured and b is not None and not b.empty and want < b.first < following:
        following = b.first
    if position != NOTHING_APPLIED and not allow_gap:
        raise _gap(want, following - 1, hub, capture)
    skipped = Skipped(want, following - 1, "no-snapshot" if position == NOTHING_APPLIED else "allowed-gap")
    step = next_step(following - 1, hub, capture, until=until, allow_gap=allow_gap)
    if isinstance(step, ReadHub):
        return ReadHub(step.after, step.until, skipped)
    if isinstance(step, ReadCapture):
        return ReadCapture(step.after, step.through, skipped)
    if isinstance(step, Done):
        return Done(step.position, skipped)
    return step  # ProbeCapture: the skip is decided again once Capture's bounds are known


def _gap(first: int, last: int, hub: PartitionBounds, capture: CaptureCoverage) -> SequenceGapError:
    held = f"the hub holds {hub.first}..{hub.last}" if not hub.empty else f"the hub is empty from {hub.first}"
    return SequenceGapError(first, last_missing=last, where=f"({held}, {capture.describe()})")


def lag(position: int, hub: PartitionBounds) -> int:
    """How many events the hub has that the state does not (never negative).

    >>> lag(90, PartitionBounds(0, 100)), lag(100, PartitionBounds(0, 100))
    (10, 0)
    """
    return max(0, hub.last - position)


def caught_up(position: int, hub: PartitionBounds, max_lag: int = 0) -> bool:
    """True when the state is within ``max_lag`` events of the hub's last:
    the readiness condition of a pump that is reading the hub.

    >>> caught_up(98, PartitionBounds(0, 100), max_lag=5), caught_up(90, PartitionBounds(0, 100), max_lag=5)
    (True, False)
    """
    if max_lag < 0:
        raise ValueError(f"max_lag must be >= 0, not {max_lag}")
    return lag(position, hub) <= max_lag
