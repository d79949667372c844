"""Figure 1: start to ready with the N-key state (snapshot in Azurite, hub in the emulator) against a pre-warm.

statepump: a :class:`~statepump.pump.Pump` with a
:class:`~statepump.stores.blob.BlobStore` on Azurite holding the snapshot of
the N-key state and an :class:`~statepump.sources.eventhub.EventHubSource` on
the bundled emulator holding the 100 events after it; timed from ``start()``
to ready (list and download the snapshot, verify, decode, connect to the hub,
fold the 100 events), not counting the shutdown after. Anchor, the "before" architecture: ``SELECT key, value``
of the same N rows (``value`` is ``jsonb``) from PostgreSQL into a ``dict``
with psycopg, connection included.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import dataset, services
from bench.figure import Figure, ServiceUnavailable, Size, spread
from bench.measure import Stats, seconds
from statepump.core.configops import config
from statepump.core.events import Version
from statepump.pump import Pump
from statepump.sources.eventhub import EventHubSource
from statepump.stores.blob import BlobStore
from statepump.stores.snapshots import write_snapshot

GOAL_SECONDS = 2.0
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

        for _ in range(size.warmup + runs):
            start()
        ours = Stats.of(ready_after[size.warmup :])
    ratio = ours.median / anchor.median
    return Figure(
        "1",
        f"start to ready, {n:,}-key state (snapshot in Azurite, hub in the emulator, {AFTER_SNAPSHOT} events after it)",
        spread(ours.median, ours.min, ours.max, "{:,.2f}") + " s",
        f"pre-warm `SELECT key, value` of {n:,} rows from PostgreSQL into a dict: {anchor.median:,.2f} s",
        f"{ratio:.2f}× the pre-warm",
        f"≤ {GOAL_SECONDS:g} s p50 and ≤ 1.0× the pre-warm",
        ours.median <= GOAL_SECONDS and ratio <= 1.0,
        (
            f"Snapshot {snapshot_bytes / 1e6:,.1f} MB; in-process, from creating the store and the `Pump` to ready "
            "(interpreter start and imports not included, nor the shutdown after); "
            f"{runs} runs after {size.warmup} warm-up each side.",
            "PostgreSQL (Debian's, `initdb` into a temporary directory, Unix socket, fsync off) holds "
            "`settings(key text primary key, value jsonb)`; psycopg 3 parses the jsonb into Python values.",
        ),
    )
