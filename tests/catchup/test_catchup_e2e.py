"""Issue 4 end to end: Blob snapshots, Capture in Azurite, the emulator's retention, through the real SDKs.

Every scenario ends by comparing the pump's state with a full replay of the
same events, or by checking that the exact gap is reported and nothing past
it is served.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.storage.blob.aio import ContainerClient

from devservices.azurite import Azurite
from statepump.components import make_pump
from statepump.core.configops import config
from statepump.core.events import Event
from statepump.core.fold import fold
from statepump.emulator import Emulator
from statepump.eventhubs.send import send_events
from statepump.pump import Pump
from statepump.settings import Settings, load
from statepump.stores.blob import BlobStore
from statepump.stores.snapshots import initial_version, write_snapshot
from tests.core.strategies import T0

pytestmark = [pytest.mark.emulator, pytest.mark.azurite]


def body(i: int) -> bytes:
    if i % 97 == 5:
        return json.dumps({"op": "delete", "path": ["k", str((i - 5) % 300)]}).encode()
    return json.dumps({"op": "set", "path": ["k", str(i % 300)], "value": i}).encode()


def replay(n: int) -> Any:
    events = [Event("0", i, str(i), T0, None, {}, body(i)) for i in range(n)]
    return fold(initial_version(config, "0"), events, config, applied_at=T0).version.state


@dataclass
class World:
    emulator: Emulator
    azurite: Azurite
    container: str

    def settings(self, **extra: Any) -> Settings:
        return load(
            {
                "connection_string": self.emulator.connection_string,
                "storage_connection_string": self.azurite.connection_string,
                "snapshot_container": self.container,
                "capture_container": self.container,
                "capture_namespace": "emulator",
                "retry_seconds": "20",
                **extra,
            },
            environ={},
        )

    async def send(self, start: int, stop: int) -> None:
        for lo in range(start, stop, 2000):
            numbers = await send_events(
                connection_string=self.emulator.connection_string,
                eventhub="hub",
                bodies=[body(i) for i in range(lo, min(stop, lo + 2000))],
                partition="0",
            )
            assert numbers == list(range(lo, min(stop, lo + 2000)))

    async def close_window(self) -> None:
        """Flush Capture into a file of its own. Files are named by the second their window opened,
        and the emulator merges two windows opened in the same second into one file (as a name
        collision must), so with sends this fast, wait for the clock to reach the next second."""
        capturer = self.emulator.capturer
        assert capturer is not None
        opened = capturer.window_opened.replace(microsecond=0)
        async with asyncio.timeout(5):
            while datetime.now(UTC).replace(microsecond=0) <= opened:  # polled: the clock is the condition
                await asyncio.sleep(0.02)
        await self.emulator.flush_capture()

    async def snapshot(self, at: int) -> None:
        events = [Event("0", i, str(i), T0, None, {}, body(i)) for i in range(at + 1)]
        version = fold(initial_version(config, "0"), events, config, applied_at=T0).version
        store = BlobStore.from_connection_string(self.azurite.connection_string, self.container, "hub", "0")
        async with store:
            await write_snapshot(store, version, config, eventhub="hub", events_folded=at + 1)

    async def capture_names(self) -> list[str]:
        async with ContainerClient.from_connection_string(self.azurite.connection_string, self.container) as c:
            return sorted([b.name async for b in c.list_blobs(name_starts_with="emulator/hub/0/")])


@pytest.fixture
async def world(azurite: Azurite, blob_container: str) -> AsyncIterator[World]:
    emulator = Emulator(
        partitions=1,
        capture_container=blob_container,
        storage_connection_string=azurite.connection_string,
        capture_interval=3600,  # windows are closed by the tests with flush_capture()
    )
    await emulator.start()
    try:
        yield World(emulator, azurite, blob_container)
    finally:
        await emulator.stop()


async def run_until_ready(pump: Pump[Any], timeout: float = 120) -> dict[str, Any]:
    await pump.start()
    try:
        await pump.wait_ready(timeout)
        return pump.status()
    finally:
        await pump.stop()


async def test_a_snapshot_still_covered_by_the_hub_reads_the_hub_only(world: World) -> None:
    await world.send(0, 3000)
    await world.emulator.flush_capture()
    await world.snapshot(1000)
    pump = make_pump(world.settings())
    status = await run_until_ready(pump)
    assert status["snapshot_sequence"] == 1000
    assert status["events_from_capture"] == 0
    assert status["events_from_hub"] == 1999
    assert pump.state == replay(3000)


async def test_b_retention_past_the_snapshot_reads_capture_then_flips_to_the_hub(world: World) -> None:
    await world.send(0, 6001)
    await world.emulator.flush_capture()  # Capture holds 0..6000
    await world.send(6001, 8000)
    world.emulator.expire("0", 5000)  # the hub now begins at 5000
    await world.snapshot(1000)
    pump = make_pump(world.settings())
    status = await run_until_ready(pump)
    assert status["snapshot_sequence"] == 1000
    assert status["events_from_capture"] == 3999  # 1001..4999
    assert status["events_from_hub"] == 3000  # 5000..7999
    assert status["duplicates_skipped"] == 0
    assert pump.version.sequence == 7999
    assert pump.state == replay(8000)


async def test_c_missing_capture_files_are_an_exact_gap_and_the_pump_is_not_ready(world: World) -> None:
    await world.send(0, 2000)
    await world.close_window()
    await world.send(2000, 4000)
    await world.close_window()
    await world.send(4000, 6001)
    await world.close_window()
    names = await world.capture_names()
    assert len(names) == 3
    async with ContainerClient.from_connection_string(world.azurite.connection_string, world.container) as c:
        await c.delete_blob(names[1])  # the file holding 2000..3999
    world.emulator.expire("0", 5000)
    await world.snapshot(1000)
    pump = make_pump(world.settings(), replan_interval=0.2)
    await pump.start()
    try:
        async with asyncio.timeout(60):
            while pump.status()["gap"] is None:  # polled: the gap is a state of the pump
                await asyncio.sleep(0.05)
        status = pump.status()
        assert status["gap"] == {"first": 2000, "last": 3999}
        assert not status["ready"]
        assert "events 2000..3999 are missing" in status["not_ready_reason"]
        assert pump.version.sequence == 1999  # everything before the hole, nothing after it
        assert pump.state == replay(2000)
    finally:
        await pump.stop()


async def test_d_a_corrupt_newest_snapshot_is_skipped_for_the_previous_one(world: World) -> None:
    await world.send(0, 2500)
    await world.snapshot(1000)
    store = BlobStore.from_connection_string(world.azurite.connection_string, world.container, "hub", "0")
    async with store:
        good = await store.read((await store.list())[0])
        await store.write(2000, good[: len(good) // 2])
    pump = make_pump(world.settings())
    status = await run_until_ready(pump)
    assert status["snapshot_sequence"] == 1000
    assert status["snapshots_rejected"] == 1
    assert pump.state == replay(2500)


async def test_e_retention_advancing_during_catch_up_is_followed_by_replanning(world: World) -> None:
    await world.send(0, 6001)
    await world.emulator.flush_capture()  # Capture holds 0..6000
    await world.send(6001, 7000)
    world.emulator.expire("0", 3000)
    await world.snapshot(1000)
    pump = make_pump(world.settings())
    moved: list[int] = []

    def retention_moves(old: Any, new: Any) -> None:
        # Runs in the pump's loop right after a Capture batch is published, mid catch-up.
        if not moved and new.sequence >= 1500:
            world.emulator.expire("0", 5500)
            moved.append(new.sequence)

    pump.subscribe(retention_moves)
    status = await run_until_ready(pump)
    assert moved and moved[0] < 3000  # it moved while Capture was being read
    assert status["events_from_capture"] == 4499  # 1001..5499: planned to 2999, re-planned to 5499
    assert status["events_from_hub"] == 1500  # 5500..6999
    assert pump.state == replay(7000)


async def test_e_retention_overtaking_capture_during_catch_up_is_an_exact_gap(world: World) -> None:
    await world.send(0, 4001)
    await world.emulator.flush_capture()  # Capture holds 0..4000 only
    await world.send(4001, 9000)
    world.emulator.expire("0", 3000)
    await world.snapshot(1000)
    pump = make_pump(world.settings(), replan_interval=0.2)
    pump.subscribe(lambda old, new: world.emulator.expire("0", 7000) if new.sequence >= 1500 else None)
    await pump.start()
    try:
        async with asyncio.timeout(60):
            while pump.status()["gap"] is None:
                await asyncio.sleep(0.05)
        status = pump.status()
        assert status["gap"] == {"first": 4001, "last": 6999}
        assert not status["ready"]
        # Planned through 2999 before retention moved; re-planning then sees that Capture
        # (..4000) cannot reach the hub's new beginning (7000) and reports the gap at once,
        # rather than reading 3000..4000 first. What is served is an exact prefix.
        assert pump.version.sequence == 2999
        assert pump.state == replay(3000)
    finally:
        await pump.stop()


def mixed(i: int) -> bytes:
    """Events with invalid operations among them: rejections, which every reader must decide alike."""
    if i % 41 == 3:
        return json.dumps({"op": "frobnicate", "path": ["k", str(i % 300)], "value": i}).encode()
    if i % 53 == 7:
        return json.dumps({"op": "merge", "path": ["k", str(i % 300)], "value": i}).encode()  # not an object
    if i % 67 == 11:
        return json.dumps(
            {"ops": [{"op": "set", "path": ["k", "0"], "value": -i}, {"op": "bad", "path": "x"}]}
        ).encode()
    return body(i)


async def test_f_hub_capture_and_snapshot_plus_replay_reach_identical_states_and_outcomes(world: World) -> None:
    n = 4000
    bodies = [mixed(i) for i in range(n)]
    numbers = await send_events(
        connection_string=world.emulator.connection_string, eventhub="hub", bodies=bodies, partition="0"
    )
    assert numbers == list(range(n))
    await world.emulator.flush_capture()  # Capture holds 0..3999
    events = [Event("0", i, str(i), T0, None, {}, b) for i, b in enumerate(bodies)]
    expected = fold(initial_version(config, "0"), events, config, applied_at=T0)
    rejected = {r.event.sequence: r.reason for r in expected.rejected}
    assert len(rejected) > 100 and expected.skipped == ()

    def outcomes(pump: Pump[Any], after: int) -> dict[int, str | None]:
        return {e.sequence: e.reason for e in pump.history.after(after) if e.outcome != "applied"}

    from_hub = make_pump(world.settings())  # no snapshot yet: the hub from 0
    status = await run_until_ready(from_hub)
    assert status["events_from_capture"] == 0 and status["events_rejected"] == len(rejected)
    # A snapshot at 1000 (written from the fold above), then replay from the hub.
    at_1000 = fold(initial_version(config, "0"), events[:1001], config, applied_at=T0).version
    store = BlobStore.from_connection_string(world.azurite.connection_string, world.container, "hub", "0")
    async with store:
        await write_snapshot(store, at_1000, config, eventhub="hub", events_folded=1001)
    from_snapshot = make_pump(world.settings())
    status = await run_until_ready(from_snapshot)
    assert status["snapshot_sequence"] == 1000
    assert status["events_rejected"] == sum(1 for s in rejected if s > 1000)
    # Capture: with the hub's retention past everything but the last events and the snapshot gone.
    store = BlobStore.from_connection_string(world.azurite.connection_string, world.container, "hub", "0")
    async with store:
        for ref in await store.list():
            await store.delete(ref)
    world.emulator.expire("0", 3500)
    from_capture = make_pump(world.settings())
    status = await run_until_ready(from_capture)
    assert status["events_from_capture"] > 3000 and status["events_from_hub"] < 500
    assert status["events_from_capture"] + status["events_from_hub"] + status["events_rejected"] == n
    assert status["events_rejected"] == len(rejected)

    for pump in (from_hub, from_snapshot, from_capture):
        assert pump.version.sequence == n - 1
        assert pump.state == expected.version.state
    assert outcomes(from_hub, -1) == outcomes(from_capture, -1) == rejected
    assert outcomes(from_snapshot, 1000) == {s: r for s, r in rejected.items() if s > 1000}
    assert {from_hub.history.get(s).outcome for s in rejected} == {"rejected"}  # type: ignore[union-attr]
