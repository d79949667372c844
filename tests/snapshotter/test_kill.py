"""A snapshotter SIGKILLed in the middle of writing leaves nothing a pump would pick up, and the next run succeeds.

The child (tests/snapshotter/kill_child.py) writes a big snapshot; the test
watches the store for the write in progress (the directory store's temporary
file; the Blob store's uncommitted blocks) and kills the child at that moment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from devservices.azurite import Azurite
from snapshotter.run import run_once
from snapshotter.store_view import StoreView
from statepump.core import codec
from statepump.core.reducer import load_reducer
from statepump.pump import Pump
from statepump.sources.memory import MemorySource
from statepump.stores import SnapshotStore, snapshot_name
from statepump.stores.blob import BlobStore
from statepump.stores.directory import DirectoryStore
from tests.snapshotter.kill_child import TAG

REPO = Path(__file__).resolve().parents[2]
KEYS = 200_000
DEADLINE = 120.0
BULK = load_reducer("tests.snapshotter.reducers:bulk")


def child(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.snapshotter.kill_child", str(KEYS), *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_when(process: subprocess.Popen[bytes], writing: object) -> None:
    """SIGKILL ``process`` as soon as ``writing()`` is true; fail if it finished first."""
    deadline = time.monotonic() + DEADLINE
    while not writing():  # type: ignore[operator]
        assert process.poll() is None, f"the child finished before the test saw its write: {process.communicate()}"
        assert time.monotonic() < deadline, "the child never started writing"
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL


def hub() -> MemorySource:
    source = MemorySource()
    source.append({"keys": KEYS, "tag": TAG})
    return source


async def check_after_kill(store: SnapshotStore) -> None:
    """Whatever is listed decodes; a pump loads no damaged snapshot; the next run writes a good one."""
    for ref in await store.list():
        codec.decode(await store.read(ref))  # a listed snapshot is always whole
    pump = Pump(hub(), reducer=BULK, store=StoreView(store))  # the pump closes its store on stop
    async with pump:
        await pump.wait_ready(timeout=DEADLINE)
        assert pump.status()["snapshots_rejected"] == 0
        assert len(pump.state) == KEYS
    from statepump.settings import load

    settings = load({"reducer": "tests.snapshotter.reducers:bulk"}, environ={})
    outcome = await run_once(settings, source=hub(), store=store)
    assert outcome.action in ("written", "nothing-new")
    refs = await store.list()
    assert [r.sequence for r in refs] == [0]
    meta, state = codec.decode(await store.read(refs[0]))
    assert (meta.sequence, len(state)) == (0, KEYS)


async def test_sigkill_during_a_directory_write(tmp_path: Path) -> None:
    directory = tmp_path / "snapshots" / "hub" / "0"

    def temp_file_exists() -> bool:
        try:
            return any(e.name.endswith(".tmp") for e in os.scandir(directory))
        except FileNotFoundError:
            return False

    process = child("dir", str(tmp_path))
    kill_when(process, temp_file_exists)
    assert not (directory / "00000000000000000000.snapshot").exists()
    await check_after_kill(DirectoryStore(tmp_path, "hub", "0"))


@pytest.mark.azurite
async def test_sigkill_during_a_blob_write(azurite: Azurite, blob_container: str) -> None:
    name = snapshot_name("snapshots", "hub", "0", 0)
    blob = ContainerClient.from_connection_string(azurite.connection_string, blob_container).get_blob_client(name)

    def blocks_staged() -> bool:
        try:
            _, uncommitted = blob.get_block_list("uncommitted")
        except ResourceNotFoundError:
            return False
        return len(uncommitted) > 0

    process = child("blob", azurite.connection_string, blob_container)
    kill_when(process, blocks_staged)
    store = BlobStore.from_connection_string(azurite.connection_string, blob_container, "hub", "0")
    try:
        assert await store.list() == []  # staged blocks are not a snapshot
        await check_after_kill(store)
    finally:
        await store.close()
