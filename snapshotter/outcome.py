"""What one snapshotter run did, as a summary line or a JSON object (pure formatting)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Action = Literal["written", "nothing-new", "backed-off", "empty-hub"]


@dataclass(frozen=True, slots=True)
class Deletion:
    """One snapshot retention removed (or, in a dry run, would remove)."""

    name: str
    sequence: int
    size: int | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one run.

    ``action`` is ``written`` (a new snapshot), ``nothing-new`` (no event after
    the newest usable snapshot), ``backed-off`` (another run wrote the same
    sequence number first) or ``empty-hub``. ``snapshot``/``sequence`` name the
    snapshot written, found or started from; ``events_folded`` counts this run's
    events, ``events_total`` all events in the snapshot's state.

    >>> o = Outcome("written", "s/hub/0/00000000000000000041.snapshot", 41, 42, 42, 1.5, 2048)
    >>> o.line()
    'snapshotter: wrote s/hub/0/00000000000000000041.snapshot (sequence 41, 42 events folded, 1.50 s, 2,048 bytes)'
    """

    action: Action
    snapshot: str | None
    sequence: int | None
    events_folded: int
    events_total: int | None
    seconds: float
    size: int | None
    started_from: str | None = None
    hub_first: int | None = None
    hub_last: int | None = None
    events_from_capture: int = 0
    events_from_hub: int = 0
    events_skipped: int = 0
    rebuild: bool = False
    dry_run: bool = False
    deleted: tuple[Deletion, ...] = ()
    kept: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        """The one summary line the command prints on stdout."""
        tail = f"{self.seconds:.2f} s"
        if self.size is not None:
            tail += f", {self.size:,} bytes"
        if self.action == "written":
            extra = f", {self.events_skipped:,} events skipped (no source had them)" if self.events_skipped else ""
            head = (
                f"snapshotter: {'rebuilt' if self.rebuild else 'wrote'} {self.snapshot} "
                f"(sequence {self.sequence}, {self.events_folded:,} events folded{extra}, {tail})"
            )
        elif self.action == "backed-off":
            head = (
                f"snapshotter: another run wrote {self.snapshot} first; backed off "
                f"(sequence {self.sequence}, {self.events_folded:,} events folded, {tail})"
            )
        elif self.action == "empty-hub":
            head = f"snapshotter: the partition has no events yet; nothing to snapshot ({tail})"
        else:
            where = f"{self.snapshot} (sequence {self.sequence})" if self.snapshot else "no usable snapshot"
            head = f"snapshotter: nothing new after {where}; hub's last event is {self.hub_last} ({tail})"
        if self.deleted or self.kept:
            verb = "would delete" if self.dry_run else "deleted"
            head += f"; retention {verb} {len(self.deleted)}, kept {self.kept}"
        return head

    def deletion_lines(self) -> list[str]:
        """One line per snapshot retention deleted (or would delete)."""
        verb = "would delete" if self.dry_run else "deleted"
        return [f"snapshotter: {verb} {d.name} (sequence {d.sequence})" for d in self.deleted]

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` object."""
        return asdict(self)
