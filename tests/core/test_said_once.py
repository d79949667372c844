"""Each thing the pump has to report is logged once, with its reason (issue 18)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from statepump.core.configops import config
from statepump.core.events import Event
from statepump.core.fold import fold
from statepump.pump import Pump
from statepump.sources.memory import MemorySource
from statepump.stores.directory import DirectoryStore
from statepump.stores.snapshots import initial_version, write_snapshot
from tests.core.strategies import T0


def _events(n: int) -> list[Event]:
    return [
        Event("0", i, str(i), T0, None, {}, json.dumps({"op": "set", "path": f"k{i}", "value": i}).encode())
        for i in range(n)
    ]


async def test_a_corrupt_newest_snapshot_is_one_warning_with_its_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    source = MemorySource(max_wait=0.1)
    for i in range(20):
        source.append({"op": "set", "path": f"k{i}", "value": i})
    good = fold(initial_version(config, "0"), _events(10), config, applied_at=T0).version
    await write_snapshot(store, good, config, eventhub="hub", events_folded=10)
    newer = fold(good, _events(15)[10:], config, applied_at=T0).version
    ref, _ = await write_snapshot(store, newer, config, eventhub="hub", events_folded=15)
    path = tmp_path / ref.name
    path.write_bytes(path.read_bytes()[:-5])  # truncated
    with caplog.at_level(logging.INFO, logger="statepump"):
        async with Pump[Any](source, store=store) as pump:
            await pump.wait_ready(timeout=10)
    about = [r for r in caplog.records if ref.name in r.getMessage()]
    assert [(r.levelname, r.name) for r in about] == [("WARNING", "statepump.stores.snapshots")], caplog.text
    assert about[0].getMessage().startswith(f"snapshot {ref.name} not used: ")
    assert pump.status()["snapshot_sequence"] == 9


async def test_a_poison_event_is_one_error_saying_not_ready_and_why(caplog: pytest.LogCaptureFixture) -> None:
    source = MemorySource(max_wait=0.1)
    source.append({"op": "set", "path": "a", "value": 1})
    source.append(b"5")  # JSON, but not an operation object: poison
    with caplog.at_level(logging.INFO, logger="statepump"):
        async with Pump[Any](source) as pump:
            while True:  # halted, reading on for a `statepump skip 1` (tests/core/test_control.py)
                changed = pump.readiness_change()
                if pump.status()["halted_on_poison"] is not None:
                    break
                await asyncio.wait_for(changed, 10)
    about = [r for r in caplog.records if "poison event 1" in r.getMessage()]
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in about] == [("ERROR", "not serving as ready")]
    assert about[0].getMessage().endswith(
        "serving sequence 0 (policy stop); `statepump skip 1 --reason ...` releases every node"
    )
