"""Figure 12: start to ready of an N-key pump from a relay's snapshot, against figure 1's start from Azurite.

The relay is ``python -m statepump run`` in a process of its own, loading the
N-key snapshot from Azurite and reading the emulator (figure 1's set-up: the
snapshot, then 100 events after it); its ``/v1/snapshot`` is asked once
before timing (it encodes each version once and caches it, and that first
encode is the relay's own start, not its downstreams'). Then, interleaved in
the same run, in this process: a pump with ``RelaySource`` and ``RelayStore``
on the relay's socket, and figure 1's pump (``BlobStore`` on Azurite,
``EventHubSource`` on the emulator), each timed from ``start()`` to ready.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import dataset, services
from bench.figure import Figure, Size, spread
from bench.measure import Stats
from bench.services import ROOT, wait_until
from statepump.client import Client, SidecarError
from statepump.core.configops import config
from statepump.core.events import Version
from statepump.pump import Pump
from statepump.sources.eventhub import EventHubSource
from statepump.sources.relay import RelaySource, Upstream, UpstreamClient
from statepump.stores.blob import BlobStore
from statepump.stores.relaystore import RelayStore
from statepump.stores.snapshots import write_snapshot

GOAL = 1.0  # x the start from Azurite
AFTER_SNAPSHOT = 100
CONTAINER = "snapshots"


def _relay(hub_cs: str, blob_cs: str, directory: Path) -> tuple[subprocess.Popen[bytes], Path]:
    socket_path = directory / "relay.sock"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "statepump", "run", "--connection-string", hub_cs, "--eventhub", "hub"),
            *("--storage-connection-string", blob_cs, "--snapshot-container", CONTAINER),
            *("--socket", str(socket_path), "--data-dir", str(directory / "relay"), "--log-level", "WARNING"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def ready() -> bool:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"the relay exited: {err.strip().splitlines()[-1:]}")
        try:
            with Client(socket_path, timeout=2) as client:
                return client.ready()
        except SidecarError:
            return False

    wait_until(ready, 600, "the relay becoming ready")
    return process, socket_path


def run(size: Size) -> Figure:
    from bench.hub_throughput import emulator, preload

    n = size.keys
    state = dataset.state(n)
    runs = max(2, min(size.runs, 5))
    relayed: list[float] = []
    direct: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-relay-start-") as tmp,
        services.azurite() as blob_cs,
        emulator() as hub_cs,
    ):
        hub_events = AFTER_SNAPSHOT * 2
        preload(hub_cs, dataset.set_bodies(hub_events, n))
        snapshot_at = hub_events - AFTER_SNAPSHOT - 1

        async def put_snapshot() -> None:
            store = BlobStore.from_connection_string(blob_cs, CONTAINER, "hub", "0", create_container=True)
            try:
                version: Version[Any] = Version(state, snapshot_at, dataset.T0, "0")
                await write_snapshot(store, version, config, eventhub="hub", events_folded=n)
            finally:
                await store.close()

        asyncio.run(put_snapshot())
        relay, socket_path = _relay(hub_cs, blob_cs, Path(tmp))
        try:
            # The relay's one encode of this version, before timing (see the module doc).
            answer = asyncio.run(UpstreamClient().get(Upstream(socket=socket_path), b"/v1/snapshot", 600))
            assert answer.status == 200, answer.status

            async def start(make: Any) -> float:
                began = time.perf_counter_ns()
                source, store = make()
                async with Pump(source, store=store, eventhub="hub") as pump:
                    await pump.wait_ready(timeout=600)
                    took = (time.perf_counter_ns() - began) / 1e9
                    if pump.version.sequence != hub_events - 1 or len(pump.state) < n:
                        raise AssertionError(f"ready at {pump.version.sequence} with {len(pump.state)} keys")
                return took

            def from_relay() -> tuple[Any, Any]:
                where = [str(socket_path)]
                return RelaySource(where), RelayStore(where, "hub", "0")

            def from_azurite() -> tuple[Any, Any]:
                store = BlobStore.from_connection_string(blob_cs, CONTAINER, "hub", "0")
                return EventHubSource(connection_string=hub_cs), store

            for i in range(size.warmup + runs):
                r, d = asyncio.run(start(from_relay)), asyncio.run(start(from_azurite))
                if i >= size.warmup:
                    relayed.append(r)
                    direct.append(d)
        finally:
            relay.terminate()
            relay.wait(30)
    ours, anchor = Stats.of(relayed), Stats.of(direct)
    ratio = ours.median / anchor.median
    return Figure(
        "12",
        f"start to ready, {n:,}-key state, from a relay's snapshot and feed",
        spread(ours.median, ours.min, ours.max, "{:,.2f}") + " s",
        f"figure 1's start (snapshot from Azurite, hub from the emulator), same run: {anchor.median:,.2f} s",
        f"{ratio:.2f}×",
        f"≤ {GOAL:g}× the start from Azurite",
        ratio <= GOAL,
        (
            f"{runs} starts of each after {size.warmup} warm-up, interleaved; in-process from creating the source "
            "and store to ready. The relay (a `statepump run` process) had loaded the same snapshot from Azurite "
            f"and the {AFTER_SNAPSHOT} events after it, and encoded its snapshot once before timing.",
        ),
    )
