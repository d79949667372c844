"""Which snapshots to delete: the retention policy, as one pure function.

Pure: no I/O, no clock (``now`` is an argument). The snapshotter lists the
store, calls :func:`decide`, prints the decision and deletes ``decision.delete``
(or, with ``--dry-run``, only prints it).

The rules, and how they are read
================================

A snapshot is kept when **any** of these holds; every other snapshot is deleted.

1. **Newest N** (``--keep``): it is among the ``keep`` highest sequence numbers.
2. **Young** (``--keep-younger-than``): it was written less than that many
   seconds ago. A snapshot whose time the store does not report is kept: its
   age is unknown, and unknown is not old.
3. **Newest usable**: it is the newest snapshot this run *verified* this
   reducer can start from (the one it loaded, or the one it wrote). If no
   snapshot is known to be usable, nothing at all is deleted: the policy
   never judges snapshots it has not proved it can replace.
4. **Not ours to judge**: its sequence number is above the newest usable one.
   Such a snapshot was written by another reducer (version), or by a
   concurrent run, or is damaged; the pumps that use it are not this run's
   to second-guess, and a damaged one costs only space.
5. **The anchor, when Capture is off**: of the snapshots the hub can still
   continue (sequence ``S`` with ``S + 1 >= hub_first``: the hub holds the
   event after it), the *oldest*. Without Capture the hub is the only copy of
   the events, and a snapshot behind its retention window (``S + 1 <
   hub_first``) can never be caught up again; the anchor is the oldest state
   from which the present can still be reached exactly, and the next one to
   fall behind the window. It is the fallback of last resort if every newer
   snapshot turns out to be damaged or was written by a faulty build. Once
   retention moves past it, it is an ordinary snapshot again and the next
   one becomes the anchor, so this keeps at most one extra snapshot.
   With Capture on, any snapshot can be caught up from Capture, so there is
   no anchor. If the hub's bounds are unknown, no anchor is chosen
   (rules 1 to 4 still apply).

This is our reading of "never delete the newest usable one, nor the only one
old enough to be behind the hub's retention window if Capture is off": the
snapshots that matter when Capture is off are the ones the hub can still
continue, and the one at the edge of that window is kept even when the
newest-N and age rules would drop it.

>>> from datetime import datetime, timedelta, timezone
>>> from statepump.stores import SnapshotRef
>>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> refs = [SnapshotRef(s, f"{s:020d}.snapshot", modified=now - timedelta(hours=10 - s)) for s in range(5)]
>>> d = decide(refs, Policy(keep=2), now=now, newest_usable=4, hub_first=None, capture=True)
>>> [r.sequence for r in d.delete]
[0, 1, 2]
>>> d = decide(refs, Policy(keep=2), now=now, newest_usable=4, hub_first=2, capture=False)
>>> [r.sequence for r in d.delete], d.reasons_for(1)
([0, 2], ('anchor: the oldest snapshot the hub can still continue (Capture is off)',))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from statepump.stores import SnapshotRef

NEWEST = "newest {keep}"
YOUNG = "younger than {seconds:g} s"
AGE_UNKNOWN = "age unknown"
USABLE = "the newest usable snapshot"
NO_USABLE = "no snapshot is known to be usable: nothing is deleted"
ABOVE_USABLE = "newer than the newest usable snapshot (another reducer's, or a concurrent run's)"
ANCHOR = "anchor: the oldest snapshot the hub can still continue (Capture is off)"


@dataclass(frozen=True, slots=True)
class Policy:
    """``keep`` newest snapshots, and any younger than ``keep_younger_than`` seconds.

    >>> Policy(keep=3).keep_younger_than
    0.0
    """

    keep: int = 10
    keep_younger_than: float = 0.0

    def __post_init__(self) -> None:
        if self.keep < 1:
            raise ValueError(f"keep must be at least 1, not {self.keep}")
        if self.keep_younger_than < 0:
            raise ValueError(f"keep_younger_than must be >= 0, not {self.keep_younger_than}")


@dataclass(frozen=True, slots=True)
class Decision:
    """What to keep (with every reason that applies) and what to delete, oldest first."""

    keep: tuple[tuple[SnapshotRef, tuple[str, ...]], ...]
    delete: tuple[SnapshotRef, ...]
    anchor: int | None = field(default=None)

    def reasons_for(self, sequence: int) -> tuple[str, ...]:
        """Why the snapshot at ``sequence`` is kept (empty if it is deleted or unknown)."""
        for ref, reasons in self.keep:
            if ref.sequence == sequence:
                return reasons
        return ()


def anchor(sequences: Sequence[int], hub_first: int | None, capture: bool) -> int | None:
    """The oldest sequence number the hub can still continue, when Capture is off (rule 5).

    >>> anchor([3, 9, 20], hub_first=10, capture=False)
    9
    >>> anchor([3, 9, 20], hub_first=10, capture=True) is None
    True
    """
    if capture or hub_first is None:
        return None
    continuable = [s for s in sequences if s + 1 >= hub_first]
    return min(continuable) if continuable else None


def decide(
    refs: Sequence[SnapshotRef],
    policy: Policy,
    *,
    now: datetime,
    newest_usable: int | None,
    hub_first: int | None,
    capture: bool,
) -> Decision:
    """Apply the retention rules (module docstring) to one partition's snapshots.

    ``refs`` may come in any order and may repeat a sequence number only if
    it is the same snapshot; ``now`` and ``ref.modified`` must be timezone-aware.
    """
    ordered = sorted({r.sequence: r for r in refs}.values())
    newest = {r.sequence for r in ordered[-policy.keep :]}
    anchored = anchor([r.sequence for r in ordered], hub_first, capture)
    keep: list[tuple[SnapshotRef, tuple[str, ...]]] = []
    delete: list[SnapshotRef] = []
    for ref in ordered:
        reasons: list[str] = []
        if newest_usable is None:
            reasons.append(NO_USABLE)
        elif ref.sequence == newest_usable:
            reasons.append(USABLE)
        elif ref.sequence > newest_usable:
            reasons.append(ABOVE_USABLE)
        if ref.sequence in newest:
            reasons.append(NEWEST.format(keep=policy.keep))
        if ref.modified is None:
            reasons.append(AGE_UNKNOWN)
        elif (now - ref.modified).total_seconds() < policy.keep_younger_than:
            reasons.append(YOUNG.format(seconds=policy.keep_younger_than))
        if ref.sequence == anchored:
            reasons.append(ANCHOR)
        if reasons:
            keep.append((ref, tuple(reasons)))
        else:
            delete.append(ref)
    return Decision(tuple(keep), tuple(delete), anchored)
