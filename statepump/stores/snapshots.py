"""Loading the newest usable snapshot, and writing a new one.

"Usable" means: it decodes and verifies (:mod:`statepump.core.codec`), it belongs to
this event hub and partition, its name agrees with its content, and it was
made by this reducer at this version, under the same ``--schema`` (by its
identity, or none on both sides: the schema decides which events are
rejected, so a state folded under another one is another state; such a
snapshot is passed over like another reducer version's, and the pump folds
from an older one or from the first event). Anything else is reported and the next
older snapshot is tried: a damaged newest snapshot costs a longer catch-up,
never a wrong state.

A store that cannot be *reached* is different from a snapshot that is
*damaged*: I/O errors (after the store's own retries) propagate, because
silently falling back to an older snapshot on a flaky network could turn a
short catch-up into a gap.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from statepump.core import codec
from statepump.core.errors import SnapshotCorrupt
from statepump.core.events import NOTHING_APPLIED, Version
from statepump.core.reducer import Reducer
from statepump.stores import SnapshotRef, SnapshotStore

S = TypeVar("S")
log = logging.getLogger("statepump.stores.snapshots")


@dataclass(frozen=True, slots=True)
class Rejected:
    """A snapshot that was passed over, and why."""

    ref: SnapshotRef
    reason: str


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    """The version a pump starts from, and how it was found."""

    version: Version[S]
    ref: SnapshotRef | None
    meta: codec.SnapshotMeta | None
    rejected: tuple[Rejected, ...] = ()


def initial_version(reducer: Reducer[S], partition: str) -> Version[S]:
    """The version before any event: the reducer's initial state at sequence -1."""
    return Version(reducer.initial, NOTHING_APPLIED, None, partition)


def check(meta: codec.SnapshotMeta, ref: SnapshotRef, reducer: Reducer[Any], eventhub: str, partition: str) -> None:
    """Raise :class:`SnapshotCorrupt` if a verified snapshot is not one this pump may use."""
    if meta.eventhub != eventhub or meta.partition != partition:
        raise SnapshotCorrupt(
            f"snapshot is for event hub {meta.eventhub!r} partition {meta.partition!r}, "
            f"not {eventhub!r} partition {partition!r}"
        )
    if meta.sequence != ref.sequence:
        raise SnapshotCorrupt(f"snapshot named for sequence {ref.sequence} holds sequence {meta.sequence}")
    if meta.reducer_identity != reducer.identity:
        raise SnapshotCorrupt(
            f"snapshot was made by reducer {meta.reducer_identity}, this pump runs {reducer.identity}"
        )
    if meta.schema != reducer.schema:
        raise SnapshotCorrupt(
            f"snapshot was folded under schema {meta.schema or 'none'}, this pump checks {reducer.schema or 'none'}"
        )


async def load_latest(
    store: SnapshotStore,
    reducer: Reducer[S],
    *,
    eventhub: str,
    partition: str,
    hmac_key: bytes | None = None,
    max_sequence: int | None = None,
) -> Loaded[S]:
    """The newest usable snapshot in ``store``, or the initial version if there is none.

    ``max_sequence`` ignores snapshots above it (the snapshotter's ``--rebuild``
    and tests use it).
    """
    from statepump.core import collector

    rejected: list[Rejected] = []
    refs = await store.list()
    for ref in reversed(refs):
        if max_sequence is not None and ref.sequence > max_sequence:
            continue
        try:
            data = await store.read(ref)
        except FileNotFoundError:
            rejected.append(Rejected(ref, "deleted while loading"))
            continue

        def decode(data: bytes = data) -> tuple[codec.SnapshotMeta, Any, Any]:
            with collector.paused():
                return codec.decode_all(data, hmac_key=hmac_key)

        try:
            meta, state, changed = await asyncio.to_thread(decode)
            check(meta, ref, reducer, eventhub, partition)
        except SnapshotCorrupt as exc:
            log.warning("snapshot %s not used: %s", ref.name, exc)
            rejected.append(Rejected(ref, str(exc)))
            continue
        version = Version(state, meta.sequence, meta.enqueued_time, partition, datetime.now(UTC), changed)
        return Loaded(version, ref, meta, tuple(rejected))
    return Loaded(initial_version(reducer, partition), None, None, tuple(rejected))


async def write_snapshot(
    store: SnapshotStore,
    version: Version[Any],
    reducer: Reducer[Any],
    *,
    eventhub: str,
    events_folded: int,
    hmac_key: bytes | None = None,
    compress: bool = False,
) -> tuple[SnapshotRef, int]:
    """Encode ``version`` and store it create-only; returns the ref and the size in bytes.

    Raises :class:`statepump.core.errors.SnapshotExists` if another writer stored
    that sequence number first (the caller decides whether that is fine).
    """
    if version.sequence < 0:
        raise ValueError("nothing has been applied: there is no version to snapshot")
    meta = codec.SnapshotMeta(
        eventhub=eventhub,
        partition=version.partition,
        sequence=version.sequence,
        enqueued_time=version.enqueued_time,
        reducer=reducer.name,
        reducer_version=reducer.version,
        created_at=datetime.now(UTC),
        events_folded=events_folded,
        schema=reducer.schema,
    )

    def encode() -> bytes:
        from statepump.core import collector

        with collector.paused():
            return codec.encode(meta, version.state, compress=compress, hmac_key=hmac_key, changed=version.changed)

    data = await asyncio.to_thread(encode)
    ref = await store.write(version.sequence, data)
    return ref, len(data)
