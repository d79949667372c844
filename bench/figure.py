"""What one figure of the table says, and the sizes figures run at.

>>> Figure("2", "fold", "1 events/s", "dict: 2 events/s", "0.50×", "≥ 1 events/s", True).row()[-1]
'yes'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Size:
    """How big each figure's work is; ``QUICK`` exists so a test can run every figure in seconds."""

    name: str
    keys: int  # keys in "the 1,000,000-key state"
    fold_events: int  # figure 2
    gc_on_events: int  # figure 2, with the collector on (slow by design)
    catchup_events: int  # figures 7, 2b
    replay_events: int  # figure 9
    capture_events: int  # figure 3
    propagation_seconds: float  # figure 4
    propagation_rate: int  # figure 4, events/s
    gets: int  # figure 5
    runs: int
    warmup: int = 1


FULL = Size("full", 1_000_000, 200_000, 2_000, 100_000, 1_000_000, 200_000, 60.0, 1_000, 20_000, 5)
QUICK = Size("quick", 5_000, 2_000, 200, 2_000, 5_000, 2_000, 2.0, 200, 200, 2)


@dataclass(frozen=True)
class Figure:
    """One row of ``BENCHMARKS.md``; ``met`` is None when the figure has no goal or did not run."""

    number: str
    title: str
    measured: str
    anchor: str
    ratio: str
    goal: str
    met: bool | None
    notes: tuple[str, ...] = field(default=())
    # The cheapest way this machine does the same work, measured in the same run ("—" where none is named):
    # the anchor says what statepump replaces, the floor how far it is from what the machine can do at all.
    floor: str = "—"

    def row(self) -> list[str]:
        met = "—" if self.met is None else ("yes" if self.met else "**no**")
        return [self.number, self.title, self.measured, self.anchor, self.floor, self.ratio, self.goal, met]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Figure:
        return cls(**{**d, "notes": tuple(d.get("notes", ()))})


class ServiceUnavailable(Exception):
    """A service a figure needs cannot be had; the message is one line naming what to install."""


def spread(median: float, low: float, high: float, fmt: str = "{:,.0f}") -> str:
    """``median (min–max)`` in one format.

    >>> spread(2.0, 1.0, 3.0, "{:.1f}")
    '2.0 (1.0–3.0)'
    """
    return f"{fmt.format(median)} ({fmt.format(low)}–{fmt.format(high)})"
