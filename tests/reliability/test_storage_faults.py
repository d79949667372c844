"""Azurite stopped under `statepump run` and the snapshotter: loading a snapshot, writing one, reading Capture."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from azure.storage.blob.aio import ContainerClient

from devservices.azurite import ACCOUNT_KEY, AzuriteProcess
from devservices.emulator import EmulatorProcess
from statepump.core import codec
from statepump.core.captureformat import DEFAULT_NAME_FORMAT, render_name, write_capture_file
from statepump.core.configops import config
from statepump.core.events import Event
from statepump.stores.blob import BlobStore
from statepump.stores.snapshots import write_snapshot
from tests.reliability.replay import read_everything, replay, send
from tests.reliability.sidecar import Sidecar, clean_environment, poll_until
from tests.reliability.test_snapshots import version_at

pytestmark = pytest.mark.emulator

CONTAINER = "snapshots"


def bodies(count: int, start: int = 0) -> list[bytes]:
    return [b'{"op":"set","path":"k/%d","value":%d}' % (i % 53, i) for i in range(start, start + count)]


async def make_container(connection_string: str, name: str) -> None:
    async with ContainerClient.from_connection_string(connection_string, name) as container:
        await container.create_container()


def one_line_failure(log: str) -> str:
    assert "Traceback" not in log, log
    assert ACCOUNT_KEY not in log
    return log.strip().splitlines()[-1]


async def test_store_down_while_loading_a_snapshot(
    emulator_process: Callable[..., EmulatorProcess], azurite_process: AzuriteProcess, tmp_path: Path
) -> None:
    hub = emulator_process(None)
    send(hub.connection_string, bodies(100))
    events = await read_everything(hub.connection_string)
    cs = azurite_process.info.connection_string
    await make_container(cs, CONTAINER)
    async with BlobStore.from_connection_string(cs, CONTAINER, "hub", "0") as store:
        await write_snapshot(store, version_at(events, 49), config, eventhub="hub", events_folded=50)
    azurite_process.stop()
    flags = ["--connection-string", hub.connection_string, "--snapshot-container", CONTAINER]
    flags += ["--storage-connection-string", cs]

    # Down for longer than the budget: one clear line, exit 1, nothing served as ready.
    with Sidecar([*flags, "--retry-seconds", "3"], tmp_path / "first") as car:
        assert car.wait_exit(60) == 1
        last = one_line_failure(car.log())
        assert last.startswith("statepump run: ") and CONTAINER in last and "127.0.0.1" in last, last
        assert car.log().count("retry") >= 2

    # Down at start, back within the budget: the snapshot is loaded, then the hub read.
    with Sidecar([*flags, "--retry-seconds", "60"], tmp_path / "second") as car:
        car.wait(lambda: car.log().count("retry") >= 2, "the sidecar to retry the store")
        azurite_process.start()
        status = car.wait_status(lambda s: s["ready"] and s["sequence"] == 99, "event 99 to be applied")
        assert status["snapshot_sequence"] == 49 and status["events_from_hub"] == 50
        assert car.state() == replay(events)
        assert car.terminate() == 0


def snapshotter(flags: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "snapshotter", *flags], stdout=out, stderr=out, env=clean_environment()
        )


async def listed_and_usable(cs: str) -> list[int]:
    async with BlobStore.from_connection_string(cs, CONTAINER, "hub", "0") as store:
        found = []
        for ref in await store.list():
            codec.decode(await store.read(ref))
            found.append(ref.sequence)
        return found


async def test_store_down_while_the_snapshotter_writes(
    emulator_process: Callable[..., EmulatorProcess], azurite_process: AzuriteProcess, tmp_path: Path
) -> None:
    hub = emulator_process(None)
    send(hub.connection_string, bodies(200))
    cs = azurite_process.info.connection_string
    await make_container(cs, CONTAINER)
    flags = ["--connection-string", hub.connection_string, "--snapshot-container", CONTAINER]
    flags += ["--storage-connection-string", cs, "--log-level", "INFO"]

    # The store goes away once the events are folded, and stays away past the budget.
    log = tmp_path / "first.log"
    process = snapshotter([*flags, "--retry-seconds", "3"], log)
    try:
        poll_until(lambda: "catching up to" in log.read_text() or process.poll() is not None, 60, "catch-up")
        azurite_process.stop()
        assert process.wait(60) == 1, log.read_text()
    finally:
        process.kill()
    last = one_line_failure(log.read_text())
    assert last.startswith("snapshotter: "), last
    azurite_process.start()
    assert await listed_and_usable(cs) == [], "a failed write left a snapshot visible"

    # Away for a moment, back within the budget: the write goes through.
    azurite_process.stop()
    log = tmp_path / "second.log"
    process = snapshotter([*flags, "--retry-seconds", "60"], log)
    try:
        poll_until(lambda: log.read_text().count("retry") >= 2, 60, "the snapshotter to retry the store")
        azurite_process.start()
        assert process.wait(60) == 0, log.read_text()
    finally:
        process.kill()
    assert await listed_and_usable(cs) == [199]


def expire(hub: EmulatorProcess, before: int) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{hub.admin_port}/partitions/0/expire?before_sequence={before}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


async def put_capture(cs: str, container: str, events: list[Event], per_file: int) -> int:
    """Capture files of ``per_file`` events each, one window a minute apart, as the service names them."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    files = 0
    async with ContainerClient.from_connection_string(cs, container) as client:
        await client.create_container()
        for n, first in enumerate(range(0, len(events), per_file)):
            buffer = BytesIO()
            write_capture_file(buffer, events[first : first + per_file], codec="deflate")
            name = render_name(DEFAULT_NAME_FORMAT, "emulator", "hub", "0", start + timedelta(minutes=n))
            await client.upload_blob(name, buffer.getvalue())
            files += 1
    return files


async def test_store_down_while_catching_up_from_capture(
    emulator_process: Callable[..., EmulatorProcess], azurite_process: AzuriteProcess, tmp_path: Path
) -> None:
    hub = emulator_process(None, admin=True)
    total = 4000
    for start in range(0, total, 1000):
        send(hub.connection_string, bodies(1000, start))
    events = await read_everything(hub.connection_string)
    cs = azurite_process.info.connection_string
    # Capture holds 0..3499 in 140 small files; the hub's retention has dropped everything below 3000.
    await put_capture(cs, "capture", events[:3500], per_file=25)
    expire(hub, 3000)
    flags = ["--connection-string", hub.connection_string, "--capture-container", "capture"]
    flags += ["--storage-connection-string", cs, "--snapshot-dir", str(tmp_path / "snapshots"), "--retry-seconds", "60"]
    with Sidecar(flags, tmp_path) as car:
        car.wait_status(lambda s: s["events_from_capture"] > 0, "the Capture catch-up to start", 60)
        azurite_process.stop()
        during = car.status()
        assert during["events_from_capture"] < 3000, "Capture was read before the store could be stopped"
        assert during["ready"] is False
        azurite_process.start()
        status = car.wait_status(lambda s: s["ready"] and s["sequence"] == total - 1, "the last event", 120)
        assert car.state() == replay(events)
        assert status["events_from_capture"] + status["events_from_hub"] == total, status
        assert status["gap"] is None and status["events_skipped_by_gap"] == 0
        assert car.terminate() == 0
