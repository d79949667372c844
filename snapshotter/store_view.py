"""The snapshot store as the snapshotter lends it to its pump.

The pump closes its store when it stops, but the snapshotter still has to
write and prune afterwards, so the pump gets a view whose ``close`` does
nothing. For ``--rebuild`` the view also hides every existing snapshot, so the
pump starts from the reducer's initial state and the earliest event, exactly
as it would with an empty store.
"""

from __future__ import annotations

from statepump.stores import SnapshotRef, SnapshotStore


class StoreView:
    """``store`` lent out: ``close`` is a no-op, and with ``hide=True`` it lists nothing.

    >>> import asyncio, tempfile
    >>> from pathlib import Path
    >>> from statepump.stores.directory import DirectoryStore
    >>> store = DirectoryStore(Path(tempfile.mkdtemp()), "hub", "0")
    >>> _ = asyncio.run(store.write(3, b"x"))
    >>> asyncio.run(StoreView(store, hide=True).list())
    []
    """

    def __init__(self, store: SnapshotStore, *, hide: bool = False) -> None:
        self.store = store
        self.hide = hide
        self.description = store.description + (" (existing snapshots ignored: --rebuild)" if hide else "")

    async def list(self) -> list[SnapshotRef]:
        return [] if self.hide else await self.store.list()

    async def read(self, ref: SnapshotRef) -> bytes:
        return await self.store.read(ref)

    async def write(self, sequence: int, data: bytes) -> SnapshotRef:
        return await self.store.write(sequence, data)

    async def delete(self, ref: SnapshotRef) -> None:
        await self.store.delete(ref)

    async def close(self) -> None:
        """The owner closes the store, not the borrower."""
