"""Local snapshots for ``statepump run``'s embedded default: the snapshotter's writing, inside the sidecar.

Without a snapshotter (there is none on a laptop), every restart would
replay the whole local event log. :class:`SnapshotKeeper` writes the pump's
current version with :func:`statepump.stores.snapshots.write_snapshot` (the
snapshotter's own writer: create-only, the same format) every ``interval``
seconds and once more at stop, whenever the version moved past the newest
snapshot, and keeps the newest ``keep`` snapshots. A snapshot of the served
version is a valid starting point: every version is the fold of a prefix of
the partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from statepump.core.errors import SnapshotExists
from statepump.pump.lifecycle import Pump
from statepump.stores import SnapshotStore
from statepump.stores.snapshots import write_snapshot

log = logging.getLogger("statepump.keeper")


class SnapshotKeeper:
    """Writes ``pump``'s version into ``store`` every ``interval`` seconds and at :meth:`stop`."""

    def __init__(
        self,
        pump: Pump[Any],
        store: SnapshotStore,
        *,
        eventhub: str,
        interval: float,
        keep: int = 3,
        hmac_key: bytes | None = None,
    ) -> None:
        self._pump, self._store, self._eventhub = pump, store, eventhub
        self._interval, self._keep, self._hmac_key = interval, keep, hmac_key
        self._written = -1  # the newest sequence this keeper wrote
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start writing on schedule (on the running loop)."""
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop the schedule and write once more if the version moved; never raises (it is a cache)."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self.write_if_new()

    async def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)
            if not self._stop.is_set():
                await self.write_if_new()

    async def write_if_new(self) -> int | None:
        """Write the current version if it is newer than every snapshot; returns its sequence, or None."""
        pump = self._pump
        version = pump.version
        loaded = pump.loaded
        floor = max(self._written, loaded.version.sequence if loaded is not None else -1)
        if version.sequence <= floor:
            return None
        before = loaded.meta.events_folded if loaded is not None and loaded.meta is not None else 0
        folded = before + int(pump.status()["events_applied"])
        try:
            ref, size = await write_snapshot(
                self._store,
                version,
                pump.reducer,
                eventhub=self._eventhub,
                events_folded=folded,
                hmac_key=self._hmac_key,
            )
        except SnapshotExists:
            self._written = version.sequence  # someone (a snapshotter) wrote it first: as good
            return None
        except Exception as exc:  # a failed local snapshot costs a longer replay, never the pump
            log.warning("local snapshot at sequence %d not written: %s", version.sequence, exc)
            return None
        self._written = version.sequence
        log.info("local snapshot at sequence %d written: %s (%d bytes)", version.sequence, ref.name, size)
        await self._prune()
        return version.sequence

    async def _prune(self) -> None:
        try:
            refs = sorted(await self._store.list(), key=lambda r: r.sequence)
            for old in refs[: -self._keep]:
                await self._store.delete(old)
        except Exception as exc:
            log.warning("old local snapshots not pruned: %s", exc)
