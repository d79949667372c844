"""The state at a past sequence number or time, built offline: no sidecar needed.

``statepump query --at-sequence N`` / ``--at-time ISO`` and ``statepump diff``
use the snapshotter's machinery: :func:`statepump.components.make_pump` with
``until=N`` over a view of the snapshot store that hides every snapshot after
N, so the pump loads the newest snapshot at or before N (or starts from the
reducer's initial state), then folds the events after it from Capture and the
hub exactly as ``statepump run`` would, and stops at N. The result is the very
state a pump had at N: the same code, the same events.

A time is turned into a sequence number first (:func:`sequence_at`): the last
event enqueued at or before it, read from the hub, or from Capture when the
hub's retention has dropped that far back.

>>> import asyncio, tempfile
>>> from statepump.settings import load
>>> from statepump.sources.memory import MemorySource
>>> hub = MemorySource()
>>> for n in range(3):
...     _ = hub.append({"op": "set", "path": "n", "value": n})
>>> settings = load({"snapshot_dir": tempfile.mkdtemp()}, environ={})
>>> asyncio.run(state_at(settings, 1, source=hub)).state["n"]
1
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime
from typing import Any, Final

from statepump.components import embedded_file, make_capture, make_hub, make_pump, make_store
from statepump.core.errors import ConfigError, StatepumpError
from statepump.core.events import Version
from statepump.pump import Pump, PumpFailed, StoppedAtGap
from statepump.settings import Settings
from statepump.sources import EventSource
from statepump.stores import SnapshotRef, SnapshotStore

log = logging.getLogger(__name__)

#: How often a replay checks whether its pump hit a gap.
GAP_POLL_SECONDS: Final = 0.1


class TimeTravelFailed(StatepumpError):
    """The state at the asked point cannot be built; the message says why, in one line."""


class AtMost:
    """``store`` showing only the snapshots at or before ``sequence``; ``close`` is the owner's.

    >>> import asyncio, tempfile
    >>> from pathlib import Path
    >>> from statepump.stores.directory import DirectoryStore
    >>> store = DirectoryStore(Path(tempfile.mkdtemp()), "hub", "0")
    >>> for n in (3, 9):
    ...     _ = asyncio.run(store.write(n, b"x"))
    >>> [r.sequence for r in asyncio.run(AtMost(store, 5).list())]
    [3]
    """

    def __init__(self, store: SnapshotStore, sequence: int) -> None:
        self.store = store
        self.sequence = sequence
        self.description = f"{store.description} (snapshots at or before {sequence})"

    async def list(self) -> list[SnapshotRef]:
        return [r for r in await self.store.list() if r.sequence <= self.sequence]

    async def read(self, ref: SnapshotRef) -> bytes:
        return await self.store.read(ref)

    async def write(self, sequence: int, data: bytes) -> SnapshotRef:
        raise TimeTravelFailed("time travel never writes snapshots")

    async def delete(self, ref: SnapshotRef) -> None:
        raise TimeTravelFailed("time travel never deletes snapshots")

    async def close(self) -> None:
        """The owner closes the store."""


def with_embedded_hub(settings: Settings) -> Settings:
    """``settings`` pointing at the hub ``statepump run`` embeds, when no hub is configured (as ``send`` does)."""
    if not settings.embedded:
        return settings
    from pydantic import SecretStr

    try:
        embedded = json.loads(embedded_file(settings).read_text())
    except (OSError, ValueError):
        raise ConfigError(
            "no hub configured (--connection-string or --namespace) and no embedded hub running: "
            "start `statepump run` first"
        ) from None
    return settings.model_copy(update={"connection_string": SecretStr(embedded["connection_string"])})


async def state_at(
    settings: Settings,
    sequence: int,
    *,
    source: EventSource | None = None,
    store: SnapshotStore | None = None,
) -> Version[Any]:
    """The version at ``sequence``: the newest snapshot at or before it plus the events after it."""
    if sequence < -1:
        raise ConfigError(f"--at-sequence must be -1 or more, not {sequence}")
    owned_store = store is None
    store = store if store is not None else make_store(settings)
    source = source if source is not None else make_hub(settings)
    try:
        bounds = await source.bounds()
        if sequence > bounds.last:
            raise TimeTravelFailed(f"sequence {sequence} is not in the hub yet: its last event is {bounds.last}")
        # The poison events a replay passes under --poison-policy skip were recorded when first folded.
        pump = make_pump(settings, source=source, store=AtMost(store, sequence), until=sequence, dead_letter=None)
        await _replay(pump, sequence)
        return pump.version
    finally:
        with contextlib.suppress(Exception):
            await source.close()
        if owned_store:
            await store.close()


async def _replay(pump: Pump[Any], aim: int) -> None:
    try:
        await pump.run_to_target(gap_poll=GAP_POLL_SECONDS)
    except StoppedAtGap as gap:
        raise TimeTravelFailed(
            f"cannot rebuild sequence {aim}: events {gap.expected}..{gap.last_missing} are in no snapshot, "
            "nor the hub, nor Capture"
        ) from None
    except PumpFailed as exc:
        raise TimeTravelFailed(f"cannot rebuild sequence {aim}: {exc}") from None
    if pump.version.sequence != aim:
        raise TimeTravelFailed(
            f"cannot rebuild sequence {aim}: stopped at {pump.version.sequence} ({pump.not_ready_reason})"
        )


async def sequence_at(
    settings: Settings,
    when: datetime,
    *,
    source: EventSource | None = None,
    capture: EventSource | None = None,
) -> int:
    """The last sequence number enqueued at or before ``when`` (-1: before the first event)."""
    if when.tzinfo is None:
        raise ConfigError("--at-time needs a time zone (e.g. 2026-01-01T12:00:00Z)")
    hub = source if source is not None else make_hub(settings)
    try:
        bounds = await hub.bounds()
        if bounds.last < bounds.first:
            return -1
        if bounds.last_enqueued_time is not None and bounds.last_enqueued_time <= when:
            return bounds.last
        found, seen = await _scan(hub, bounds.first - 1, bounds.last, when)
        if seen or bounds.first == 0:
            return found
    finally:
        with contextlib.suppress(Exception):
            await hub.close()
    # The hub's first event is already later: the answer is older than the hub's retention.
    capture = capture if capture is not None else make_capture(settings)
    if capture is None:
        raise TimeTravelFailed(
            f"{when.isoformat()} is before the hub's first event ({bounds.first}) and no Capture is configured"
        )
    try:
        found, _ = await _scan(capture, -1, bounds.first - 1, when)
        return found
    finally:
        with contextlib.suppress(Exception):
            await capture.close()


async def _scan(source: EventSource, after: int, last: int, when: datetime) -> tuple[int, bool]:
    """(the last sequence after ``after`` enqueued at or before ``when``, through ``last``; whether there was one)."""
    found, seen = after, False
    async for batch in source.read(after):
        for event in batch:
            if event.enqueued_time > when:
                return found, seen
            found, seen = event.sequence, True
            if found >= last:
                return found, True
    return found, seen
