"""Consumer group names and the pool of groups a fleet of pumps shares (pure).

Event Hubs allows five non-epoch receivers per partition and consumer group,
so a fleet larger than five reads through several groups. ``--consumer-group``
names them as the emulator's flag does (:func:`expand`: a comma list, each name
with at most one numbered range ``{A..B}``), and every node walks the same
list from its own starting point (:func:`start_index`, a stable hash of its
node id): nodes spread over the groups instead of all queueing on the first.

:class:`Pool` is what a reader decides after each answer from the hub: a
refusal for the receiver quota moves it on to the next group, wrapping; when
each group refused it in a row, every one is full (:attr:`Pool.all_full`),
and :meth:`Pool.full_reason` is the one line it is not ready with.

>>> pool = Pool.start(expand("web-{1..3}"), node_id="web-7d9f-abcde")
>>> pool.current in ("web-1", "web-2", "web-3")
True
>>> for _ in range(3):
...     pool = pool.refused()
>>> pool.all_full, pool.full_reason("0", 5)
(True, 'all 3 consumer groups of partition 0 have 5 readers; add groups or use a relay')
>>> Pool.start(["$Default"], node_id="any").current
'$Default'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

DEFAULT_GROUP: Final = "$Default"
#: The service's limit of non-epoch receivers per partition and consumer group, on every tier.
RECEIVERS_PER_PARTITION: Final = 5
#: The most groups one name may expand to (Dedicated's limit per event hub).
MAX_EXPANSION: Final = 1000

# Consumer group names: 1-50 letters, digits, periods, hyphens and underscores,
# beginning and ending with a letter or digit ($Default aside).
_GROUP_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?")
_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand(spec: str) -> list[str]:
    """The consumer group names ``spec`` stands for: names separated by commas, each with at most
    one numbered range ``{A..B}``, zero-padded as written (as the shell does).

    >>> expand("statepump-web-{01..03}, audit")
    ['statepump-web-01', 'statepump-web-02', 'statepump-web-03', 'audit']
    >>> expand("g{8..10}")
    ['g8', 'g9', 'g10']
    >>> expand("$Default")
    ['$Default']
    """
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        ranges = list(_RANGE.finditer(part))
        if not ranges:
            names.append(part)
            continue
        if len(ranges) > 1:
            raise ValueError(f"consumer group {part!r}: at most one {{A..B}} range per name")
        match = ranges[0]
        low, high = match[1], match[2]
        if int(low) > int(high):
            raise ValueError(f"consumer group {part!r}: the range {match[0]} counts down")
        if int(high) - int(low) + 1 > MAX_EXPANSION:
            raise ValueError(f"consumer group {part!r}: the range {match[0]} names more than {MAX_EXPANSION} groups")
        padded = (len(low) > 1 and low.startswith("0")) or (len(high) > 1 and high.startswith("0"))
        width = max(len(low), len(high)) if padded else 0
        names.extend(
            f"{part[: match.start()]}{n:0{width}d}{part[match.end() :]}" for n in range(int(low), int(high) + 1)
        )
    return names


def check_group_name(name: str) -> str:
    """``name`` if the service would accept it as a consumer group name, else :class:`ValueError`.

    >>> check_group_name("statepump-web-01")
    'statepump-web-01'
    >>> check_group_name("-web")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: '-web' is not a consumer group name: 1 to 50 letters, digits, '.', '-' or '_', ...
    """
    if name.lower() == DEFAULT_GROUP.lower() or _GROUP_NAME.fullmatch(name):
        return name
    raise ValueError(
        f"{name!r} is not a consumer group name: 1 to 50 letters, digits, '.', '-' or '_', "
        "beginning and ending with a letter or digit"
    )


def pool_names(spec: str) -> tuple[str, ...]:
    """The pool ``--consumer-group`` names: expanded, each checked, duplicates (in any case) once.

    >>> pool_names("web-{1..2},WEB-1")
    ('web-1', 'web-2')
    >>> pool_names(" , ")
    Traceback (most recent call last):
    ...
    ValueError: names no consumer group
    """
    seen: dict[str, str] = {}
    for name in expand(spec):
        seen.setdefault(check_group_name(name).lower(), name)
    if not seen:
        raise ValueError("names no consumer group")
    return tuple(seen.values())


def start_index(node_id: str, count: int) -> int:
    """Where node ``node_id`` starts in a pool of ``count`` groups: the same on every run and every
    machine (SHA-256, not Python's per-process ``hash()``), spread evenly over the pool.

    >>> start_index("web-0", 20) == start_index("web-0", 20)
    True
    >>> start_index("anything", 1)
    0
    """
    if count < 1:
        raise ValueError(f"a pool needs at least one group, not {count}")
    digest = hashlib.sha256(node_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True, slots=True)
class Pool:
    """The groups a reader may use, the one it tries or holds, and the refusals in a row.

    >>> pool = Pool(("a", "b"), index=1)
    >>> pool.current, pool.refused().current, pool.refused().refused().all_full
    ('b', 'a', True)
    >>> pool.refused().held().refusals_in_row
    0
    """

    groups: tuple[str, ...]
    index: int = 0
    #: Groups that refused in a row since the last one held (or the last full round).
    refusals_in_row: int = 0

    def __post_init__(self) -> None:
        if not self.groups:
            raise ValueError("a pool needs at least one group")
        if not 0 <= self.index < len(self.groups):
            raise ValueError(f"index {self.index} outside a pool of {len(self.groups)}")

    @classmethod
    def start(cls, groups: Iterable[str], node_id: str) -> Pool:
        """The pool of ``groups``, starting at ``node_id``'s place (a single group: always it)."""
        names = tuple(groups)
        return cls(names, start_index(node_id, len(names)) if names else 0)

    @property
    def current(self) -> str:
        """The group to try next, or the one held."""
        return self.groups[self.index]

    @property
    def all_full(self) -> bool:
        """Every group refused in a row: none has a free slot right now."""
        return self.refusals_in_row >= len(self.groups)

    def refused(self) -> Pool:
        """The current group answered the receiver quota: move on to the next one, wrapping."""
        return replace(self, index=(self.index + 1) % len(self.groups), refusals_in_row=self.refusals_in_row + 1)

    def held(self, group: str | None = None) -> Pool:
        """A receiver holds ``group`` (default: the current one): it stays current, the row ends."""
        index = self.index if group is None else self.position(group)
        return replace(self, index=index, refusals_in_row=0)

    def new_round(self) -> Pool:
        """After waiting out a full round: try every group again, from where the walk stands."""
        return replace(self, refusals_in_row=0)

    def position(self, group: str) -> int:
        """The index of ``group`` in the pool (names compare case-insensitively, as the service does)."""
        folded = group.lower()
        for i, name in enumerate(self.groups):
            if name.lower() == folded:
                return i
        raise ValueError(f"{group!r} is not in the pool")

    def round_order(self) -> Sequence[str]:
        """Every group, from the current one on: the order of a round of tries.

        >>> Pool(("a", "b", "c"), index=2).round_order()
        ('c', 'a', 'b')
        """
        return self.groups[self.index :] + self.groups[: self.index]

    def full_reason(self, partition: str, limit: int = RECEIVERS_PER_PARTITION) -> str:
        """The one line a reader is not ready with while every group is full.

        >>> Pool(("$Default",)).full_reason("0", 5)
        'consumer group $Default of partition 0 has 5 readers; add groups or use a relay'
        """
        if len(self.groups) == 1:
            return (
                f"consumer group {self.groups[0]} of partition {partition} has {limit} readers; "
                "add groups or use a relay"
            )
        return (
            f"all {len(self.groups)} consumer groups of partition {partition} have {limit} readers; "
            "add groups or use a relay"
        )

    def describe(self) -> str:
        """The pool as a log names it.

        >>> Pool(("a", "b", "c")).describe(), Pool(("a",)).describe()
        ('a pool of 3 consumer groups (a ... c)', 'consumer group a')
        """
        if len(self.groups) == 1:
            return f"consumer group {self.groups[0]}"
        return f"a pool of {len(self.groups)} consumer groups ({self.groups[0]} ... {self.groups[-1]})"
