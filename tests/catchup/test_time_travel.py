"""Time travel (issue 17): the state at N, rebuilt offline, equals a replay of events 0..N.

Real emulator (the SDK on the wire), Capture files in a directory, snapshots in a
directory, the hub's retention moved past the oldest events: N before the oldest
snapshot, between snapshots, in Capture only, at a snapshot, at the hub's tail.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from statepump import timetravel
from statepump.components import make_capture, make_store
from statepump.core.configops import config
from statepump.core.events import Event
from statepump.core.fold import fold
from statepump.emulator import Emulator
from statepump.eventhubs.send import send_events
from statepump.settings import Settings, load
from statepump.stores.snapshots import initial_version, write_snapshot
from tests.core.strategies import T0

pytestmark = pytest.mark.emulator

TOTAL = 3000


def body(i: int) -> bytes:
    if i % 89 == 7:
        return json.dumps({"op": "delete", "path": ["k", str((i - 7) % 200)]}).encode()
    if i % 61 == 3:
        return json.dumps({"op": "merge", "path": "m", "value": {str(i % 5): i}}).encode()
    return json.dumps({"op": "set", "path": ["k", str(i % 200)], "value": i}).encode()


def replay(n: int) -> Any:
    events = [Event("0", i, str(i), T0, None, {}, body(i)) for i in range(n + 1)]
    return fold(initial_version(config, "0"), events, config, applied_at=T0).version


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Emulator, Settings]]:
    emulator = Emulator(partitions=1, capture_dir=tmp_path / "capture", capture_interval=3600)
    await emulator.start()
    try:
        settings = load(
            {
                "connection_string": emulator.connection_string,
                "snapshot_dir": str(tmp_path / "snapshots"),
                "capture_dir": str(tmp_path / "capture"),
                "capture_namespace": "emulator",
                "retry_seconds": "20",
            },
            environ={},
        )
        for lo in range(0, TOTAL, 1000):
            sent = await send_events(
                connection_string=emulator.connection_string,
                eventhub="hub",
                bodies=[body(i) for i in range(lo, lo + 1000)],
                partition="0",
            )
            assert sent == list(range(lo, lo + 1000))
        await emulator.flush_capture()  # Capture holds 0..2999
        store = make_store(settings)
        try:
            for at in (1000, 2000):
                await write_snapshot(store, replay(at), config, eventhub="hub", events_folded=at + 1)
        finally:
            await store.close()
        emulator.expire("0", 1500)  # the hub now begins at 1500: 0..1499 are in Capture only
        yield emulator, settings
    finally:
        await emulator.stop()


async def test_the_state_at_n_or_at_a_time_equals_a_replay(world: tuple[Emulator, Settings]) -> None:
    _, settings = world
    # before the oldest snapshot (Capture only), after a snapshot in Capture only, between snapshots
    # (Capture then the hub), exactly at a snapshot, the hub's tail
    for n in (500, 1200, 1700, 2000, TOTAL - 1):
        version = await timetravel.state_at(settings, n)
        assert version.sequence == n
        assert version.state == replay(n).state, n

    # One world for all three (sending 3000 events costs most of the test): a time, then a sequence not reached.
    capture = make_capture(settings)
    assert capture is not None
    times: list[tuple[int, Any]] = []
    async for batch in capture.read(-1):
        times += [(e.sequence, e.enqueued_time) for e in batch]
    await capture.close()
    assert [n for n, _ in times] == list(range(TOTAL))
    for n in (700, 2200):
        when = times[n][1]
        expected = max(k for k, t in times if t <= when)
        assert await timetravel.sequence_at(settings, when) == expected
    assert await timetravel.sequence_at(settings, times[0][1] - timedelta(days=1)) == -1
    assert await timetravel.sequence_at(settings, times[-1][1] + timedelta(days=1)) == TOTAL - 1
    with pytest.raises(timetravel.TimeTravelFailed, match=f"its last event is {TOTAL - 1}$"):
        await timetravel.state_at(settings, TOTAL + 5)
