"""Figure 1: start to ready with the N-key state (snapshot in Azurite, hub in the emulator) against a pre-warm.

statepump: a :class:`~statepump.pump.Pump` with a
:class:`~statepump.stores.blob.BlobStore` on Azurite holding the snapshot of
the N-key state and an :class:`~statepump.sources.eventhub.EventHubSource` on
the bundled emulator holding the 100 events after it; timed from ``start()``
to ready (list and download the snapshot, verify, decode, connect to the hub,
fold the 100 events), not counting the shutdown after. Anchor, the "before" architecture: ``SELECT key, value``
of the same N rows (``value`` is ``jsonb``) from PostgreSQL into a ``dict``
with psycopg, connection included. Floor, in the same runs: downloading the
same snapshot blob from the same Azurite (``azure-storage-blob``'s async
client, as the store does) plus ``msgpack.unpackb`` of the same data as a
plain dict, collector paused; and beside it the SDK's connect time (a bare
async consumer from creation to its first event), which the pump overlaps
with the snapshot: the floor is the longer of the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench import dataset, services
from bench.figure import Figure, ServiceUnavailable, Size, spread
from bench.measure import Stats, seconds
from statepump.core import collector
from statepump.core.configops import config
from statepump.core.events import Version
from statepump.pump import Pump
from statepump.sources.eventhub import EventHubSource
from statepump.stores.blob import BlobStore
from statepump.stores.snapshots import write_snapshot

GOAL_PREWARM = 0.25  # x the PostgreSQL pre-warm
GOAL_FLOOR = 1.5  # x the floor
AFTER_SNAPSHOT = 100
CONTAINER = "snapshots"


def _prewarm_table(conninfo: str, plain: dict[str, Any]) -> None:
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TABLE settings (key text PRIMARY KEY, value jsonb NOT NULL)")
        with conn.cursor() as cur, cur.copy("COPY settings (key, value) FROM STDIN") as copy:
            for key, value in plain.items():
                copy.write_row((key, Jsonb(value)))
        conn.commit()


async def _fetch_and_unpack(blob_cs: str, plain_bytes: bytes) -> int:
    """The snapshot's blob downloaded as the store downloads it, then msgpack of the same data unpacked."""
    import msgpack
    from azure.storage.blob.aio import ContainerClient

    async with ContainerClient.from_connection_string(blob_cs, CONTAINER) as container:
        names = [b.name async for b in container.list_blobs()]
        stream = await container.download_blob(names[-1], max_concurrency=2)
        data = await stream.readall()
    with collector.paused():
        loaded = msgpack.unpackb(plain_bytes, raw=False)
    del data
    return len(loaded)


async def _connect(hub_cs: str) -> float:
    """Seconds from a bare SDK consumer's creation to its first event (its close not counted)."""
    from azure.eventhub.aio import EventHubConsumerClient

    began = time.perf_counter_ns()
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def on_event(_context: Any, _event: Any) -> None:
        if not first.done():
            first.set_result((time.perf_counter_ns() - began) / 1e9)

    client = EventHubConsumerClient.from_connection_string(hub_cs, consumer_group="$Default")
    task = asyncio.ensure_future(client.receive(on_event, partition_id="0", starting_position="-1"))
    try:
        return await asyncio.wait_for(first, 60)
    finally:
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _timed_fetch(blob_cs: str, plain_bytes: bytes) -> float:
    """Seconds of one download + unpack, timed inside the loop (no loop set-up, as the pump's start)."""

    async def go() -> float:
        began = time.perf_counter_ns()
        await _fetch_and_unpack(blob_cs, plain_bytes)
        return (time.perf_counter_ns() - began) / 1e9

    return asyncio.run(go())


def run(size: Size) -> Figure:
    try:
        import psycopg
    except ImportError:
        raise ServiceUnavailable("figure 1 needs psycopg: pip install -e '.[bench]'") from None
    from bench.hub_throughput import emulator, preload

    n = size.keys
    plain = dataset.config_dict(n)
    state = dataset.state(n)
    runs = max(2, min(size.runs, 5))

    with services.postgres() as conninfo:
        _prewarm_table(conninfo, plain)

        def prewarm() -> None:
            with psycopg.connect(conninfo) as conn:
                loaded: dict[str, Any] = dict(conn.execute("SELECT key, value FROM settings").fetchall())
            if len(loaded) != n:
                raise AssertionError(f"pre-warm read {len(loaded)} rows, expected {n}")

        anchor = seconds(prewarm, runs=runs, warmup=size.warmup)

    with services.azurite() as blob_cs, emulator() as hub_cs:
        hub_events = AFTER_SNAPSHOT * 2
        preload(hub_cs, dataset.set_bodies(hub_events, n))
        snapshot_at = hub_events - AFTER_SNAPSHOT - 1

        async def put_snapshot() -> int:
            store = BlobStore.from_connection_string(blob_cs, CONTAINER, "hub", "0", create_container=True)
            try:
                version: Version[Any] = Version(state, snapshot_at, dataset.T0, "0")
                _ref, nbytes = await write_snapshot(store, version, config, eventhub="hub", events_folded=n)
                return nbytes
            finally:
                await store.close()

        snapshot_bytes = asyncio.run(put_snapshot())

        ready_after: list[float] = []

        def start() -> None:
            async def go() -> None:
                began = time.perf_counter_ns()
                store = BlobStore.from_connection_string(blob_cs, CONTAINER, "hub", "0")
                pump: Pump[Any]
                async with Pump(EventHubSource(connection_string=hub_cs), store=store, eventhub="hub") as pump:
                    await pump.wait_ready(timeout=600)
                    ready_after.append((time.perf_counter_ns() - began) / 1e9)
                    if pump.version.sequence != hub_events - 1 or len(pump.state) < n:
                        raise AssertionError(f"ready at {pump.version.sequence} with {len(pump.state)} keys")
                # Leaving the block closes the SDK's connections (about 1.5 s): that is shutdown, not start.

            asyncio.run(go())

        import msgpack

        plain_bytes = msgpack.packb(plain, use_bin_type=True)
        fetches: list[float] = []
        connects: list[float] = []
        # Interleaved with the pump's starts, so that the machine's load touches the floor alike.
        for i in range(size.warmup + runs):
            start()
            fetch = _timed_fetch(blob_cs, plain_bytes)
            connect = asyncio.run(_connect(hub_cs))
            if i >= size.warmup:
                fetches.append(fetch)
                connects.append(connect)
        ours = Stats.of(ready_after[size.warmup :])
    fetched, connected = Stats.of(fetches), Stats.of(connects)
    floor = Stats.of([max(f, c) for f, c in zip(fetches, connects, strict=True)])
    ratio = ours.median / anchor.median
    to_floor = ours.median / floor.median
    return Figure(
        "1",
        f"start to ready, {n:,}-key state (snapshot in Azurite, hub in the emulator, {AFTER_SNAPSHOT} events after it)",
        spread(ours.median, ours.min, ours.max, "{:,.2f}") + " s",
        f"pre-warm `SELECT key, value` of {n:,} rows from PostgreSQL into a dict: {anchor.median:,.2f} s",
        f"{ratio:.2f}× the pre-warm, {to_floor:.2f}× the floor",
        f"≤ {GOAL_PREWARM:g}× the pre-warm and ≤ {GOAL_FLOOR:g}× the floor",
        ratio <= GOAL_PREWARM and to_floor <= GOAL_FLOOR,
        (
            f"Snapshot {snapshot_bytes / 1e6:,.1f} MB; in-process, from creating the store and the `Pump` to ready "
            "(interpreter start and imports not included, nor the shutdown after); "
            f"{runs} runs after {size.warmup} warm-up each side.",
            "PostgreSQL (Debian's, `initdb` into a temporary directory, Unix socket, fsync off) holds "
            "`settings(key text primary key, value jsonb)`; psycopg 3 parses the jsonb into Python values.",
            f"Floor, interleaved with the starts: the blob download plus `msgpack.unpackb` of the same data as a "
            f"dict ({len(plain_bytes) / 1e6:,.1f} MB, collector paused) "
            f"{spread(fetched.median, fetched.min, fetched.max, '{:,.2f}')} s; the SDK's connect to its first event "
            f"{spread(connected.median, connected.min, connected.max, '{:,.2f}')} s; the pump overlaps the two, so "
            "the floor is the longer one of each run. What the pump adds over it: verifying the SHA-256, building "
            "pmaps instead of dicts, and folding the events after the snapshot.",
            f"The floor itself is {floor.median / anchor.median:.2f}× the pre-warm in this run"
            + (
                f": the goal's {GOAL_PREWARM:g}× is below what downloading these bytes, unpacking them into a dict "
                "and connecting take on their own, so the goal asks for a start faster than this machine's floor."
                if floor.median > GOAL_PREWARM * anchor.median
                else f", under the goal's {GOAL_PREWARM:g}×."
            ),
        ),
        floor=f"Azurite download + `msgpack.unpackb`, or the SDK's connect if longer: {floor.median:,.2f} s",
    )
