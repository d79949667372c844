"""Snapshot stores: where versioned snapshots live.

Every adapter (a local directory, an Azure Blob container) implements
:class:`SnapshotStore` and passes the one conformance suite in
``tests/stores/conformance.py``. Stores move bytes; they never look inside a
snapshot (that is :mod:`statepump.stores.snapshots`'s job).

Names sort by sequence number because the number is zero-padded:
``{prefix}/{eventhub}/{partition}/{sequence:020d}.snapshot``. Listing one
partition's prefix therefore gives the snapshots oldest first, without
reading any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

SUFFIX = ".snapshot"


@dataclass(frozen=True, slots=True, order=True)
class SnapshotRef:
    """A stored snapshot: its sequence number and the store's name for it."""

    sequence: int
    name: str
    size: int | None = None
    modified: datetime | None = None


def snapshot_name(prefix: str, eventhub: str, partition: str, sequence: int) -> str:
    """The store-relative name of the snapshot at ``sequence``.

    >>> snapshot_name("snapshots", "hub", "0", 42)
    'snapshots/hub/0/00000000000000000042.snapshot'
    """
    if sequence < 0:
        raise ValueError(f"a snapshot needs a sequence number >= 0, not {sequence}")
    parts = [p.strip("/") for p in (prefix, eventhub, partition) if p.strip("/")]
    return "/".join([*parts, f"{sequence:020d}{SUFFIX}"])


def parse_sequence(name: str) -> int | None:
    """The sequence number in a snapshot name, or ``None`` if it is not one.

    >>> parse_sequence("a/b/00000000000000000042.snapshot")
    42
    >>> parse_sequence("a/b/notes.txt") is None
    True
    """
    leaf = name.rsplit("/", 1)[-1]
    if not leaf.endswith(SUFFIX):
        return None
    digits = leaf[: -len(SUFFIX)]
    if len(digits) != 20 or not digits.isdigit():
        return None
    return int(digits)


@runtime_checkable
class SnapshotStore(Protocol):
    """Create-only storage of one partition's snapshots."""

    #: For logs: where this store is, with no secret in it.
    description: str

    async def list(self) -> list[SnapshotRef]:
        """This partition's snapshots, oldest (lowest sequence) first."""
        ...

    async def read(self, ref: SnapshotRef) -> bytes:
        """The snapshot's bytes; ``FileNotFoundError`` if it is gone."""
        ...

    async def write(self, sequence: int, data: bytes) -> SnapshotRef:
        """Store a snapshot under its sequence number, atomically.

        Raises :class:`statepump.core.errors.SnapshotExists` if that name exists;
        a partly written snapshot is never visible to ``list``.
        """
        ...

    async def delete(self, ref: SnapshotRef) -> None:
        """Remove a snapshot; removing one that is already gone is not an error."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
