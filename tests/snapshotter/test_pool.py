"""The snapshotter on a pool of consumer groups: it moves past a full group and holds its slot
only for its run (the emulator enforces 5 receivers per partition and group, through the real SDK)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from snapshotter.run import run_once
from statepump.core.consumergroups import Pool
from statepump.emulator import Emulator
from statepump.settings import load
from tests.emulator.clients import Receiver, attached, enqueue

pytestmark = pytest.mark.emulator

GROUPS = ["snap-1", "snap-2"]


@pytest.fixture
async def hub() -> AsyncIterator[Emulator]:
    emulator = Emulator(port=0, partitions=1, admin_port=0, consumer_groups=GROUPS)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


def held(emulator: Emulator) -> dict[str, int]:
    groups = emulator.receivers()["partitions"]["0"]
    return {group: len(receivers) for group, receivers in groups.items() if receivers}


async def test_the_snapshotter_moves_past_a_full_group_and_frees_its_slot_when_it_ends(
    hub: Emulator, tmp_path: Path
) -> None:
    for i in range(50):
        enqueue(hub, "0", json.dumps({"op": "set", "path": f"k{i}", "value": i}))
    node = "snapshotter-29012345-abcde"
    first = Pool.start(GROUPS, node).current  # where this node id starts: that group is full
    full = [await Receiver(hub.connection_string, "0", consumer_group=first).start() for _ in range(5)]
    try:
        await attached(hub, "0", 5, timeout=30)
        settings = load(
            {
                "connection_string": hub.connection_string,
                "consumer_group": "snap-{1..2}",
                "node_id": node,
                "snapshot_dir": str(tmp_path / "snapshots"),
            },
            environ={},
        )
        outcome = await run_once(settings)
        assert outcome.action == "written" and outcome.sequence == 49
        # Its receiver is gone the moment the run returns: only the five the test holds remain.
        assert held(hub) == {first: 5}
    finally:
        for receiver in full:
            await receiver.stop()
