"""The snapshotter with snapshots in Azure Blob Storage (Azurite), the hub being the emulator or in memory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from devservices.azurite import Azurite
from snapshotter.run import run_once
from statepump.components import make_pump, make_store
from statepump.core import codec
from statepump.emulator import Emulator
from statepump.settings import Settings, load
from statepump.stores import SnapshotRef
from tests.snapshotter.hubs import hub
from tests.snapshotter.test_command import finish, send, start
from tests.snapshotter.test_run import replay

pytestmark = pytest.mark.azurite


def settings(azurite: Azurite, container: str, **extra: Any) -> Settings:
    return load(
        {"snapshot_container": container, "storage_connection_string": azurite.connection_string, **extra},
        environ={},
    )


async def listing(s: Settings) -> list[SnapshotRef]:
    store = make_store(s)
    try:
        return await store.list()
    finally:
        await store.close()


async def read(s: Settings, ref: SnapshotRef) -> bytes:
    store = make_store(s)
    try:
        return await store.read(ref)
    finally:
        await store.close()


def blob_args(emulator: Emulator, azurite: Azurite, container: str, *more: str) -> list[str]:
    return [
        "--connection-string",
        emulator.connection_string,
        "--snapshot-container",
        container,
        "--storage-connection-string",
        azurite.connection_string,
        *more,
    ]


@pytest.mark.emulator
async def test_command_writes_to_blob_and_a_pump_loads_it(
    emulator: Emulator, azurite: Azurite, blob_container: str
) -> None:
    await send(emulator, 0, 50)
    done = await finish(await start(*blob_args(emulator, azurite, blob_container, "--json")))
    assert done.code == 0, done.err
    summary = json.loads(done.out)
    assert (summary["action"], summary["snapshot"]) == ("written", "snapshots/hub/0/00000000000000000049.snapshot")
    assert azurite.account_key not in done.err + done.out

    await send(emulator, 50, 7)
    s = settings(azurite, blob_container, connection_string=emulator.connection_string)
    pump = make_pump(s)
    async with pump:
        await pump.wait_ready(timeout=60)
        status = pump.status()
    assert (status["snapshot_sequence"], status["events_from_hub"], status["sequence"]) == (49, 7, 56)


@pytest.mark.emulator
async def test_two_commands_at_the_same_moment_leave_one_valid_blob(
    emulator: Emulator, azurite: Azurite, blob_container: str
) -> None:
    await send(emulator, 0, 200)
    processes = [await start(*blob_args(emulator, azurite, blob_container, "--json")) for _ in range(2)]
    results = await asyncio.gather(*(finish(p) for p in processes))
    assert [r.code for r in results] == [0, 0], [r.err for r in results]
    assert sorted(json.loads(r.out)["action"] for r in results).count("written") == 1
    s = settings(azurite, blob_container)
    refs = await listing(s)
    assert [r.sequence for r in refs] == [199]
    meta, _ = codec.decode(await read(s, refs[0]))
    assert (meta.sequence, meta.events_folded) == (199, 200)


async def test_overlapping_runs_in_one_process(azurite: Azurite, blob_container: str) -> None:
    s = settings(azurite, blob_container)
    outcomes = await asyncio.gather(*(run_once(s, source=hub(2000)) for _ in range(3)))
    assert [o.action for o in outcomes].count("written") == 1
    assert [r.sequence for r in await listing(s)] == [1999]


async def test_retention_deletes_exactly_what_the_policy_says(azurite: Azurite, blob_container: str) -> None:
    s = settings(azurite, blob_container, keep=2)
    for n in range(10, 60, 10):
        await run_once(s.model_copy(update={"keep": 100}), source=hub(n))  # 9, 19, 29, 39, 49
    outcome = await run_once(s, source=hub(60, first=25))  # the hub holds 25..59: anchor 29
    assert [d.sequence for d in outcome.deleted] == [9, 19, 39]
    assert [r.sequence for r in await listing(s)] == [29, 49, 59]


async def test_rebuild_in_blob(azurite: Azurite, blob_container: str, tmp_path: Path) -> None:
    v1 = settings(azurite, blob_container, reducer="tests.snapshotter.reducers:v1")
    v2 = settings(azurite, blob_container, reducer="tests.snapshotter.reducers:v2")
    await run_once(v1, source=hub(30))
    rebuilt = await run_once(v2.model_copy(update={"rebuild": True}), source=hub(30))
    assert (rebuilt.action, rebuilt.sequence) == ("written", 28)
    pump = make_pump(v2, source=hub(40, first=29))
    async with pump:
        await pump.wait_ready(timeout=10)
        assert pump.status()["snapshot_sequence"] == 28
        from statepump.core.reducer import load_reducer

        assert pump.state == replay(40, load_reducer("tests.snapshotter.reducers:v2"))
