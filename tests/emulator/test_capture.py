"""Capture: Avro files per partition per window, to a directory or a Blob container."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubProducerClient
from azure.storage.blob.aio import ContainerClient

from statepump.core.captureformat import DEFAULT_NAME_FORMAT, parse_name, read_capture_file
from statepump.core.events import Event
from statepump.emulator import Emulator

pytestmark = pytest.mark.emulator


def captured(root: Path, partition: str) -> list[Event]:
    events: list[Event] = []
    for path in sorted((root / "emulator" / "hub" / partition).rglob("*.avro")):
        name = path.relative_to(root).as_posix()
        assert parse_name(DEFAULT_NAME_FORMAT, name) is not None, name
        with open(path, "rb") as f:
            events.extend(read_capture_file(f, partition, name=name))
    return events


async def send(emulator: Emulator, partition: str, *bodies: str, **properties: Any) -> None:
    async with EventHubProducerClient.from_connection_string(emulator.connection_string, retry_total=0) as producer:
        batch: list[Any] = []
        for body in bodies:
            event = EventData(body)
            event.properties = {**properties}  # type: ignore[dict-item]
            batch.append(event)
        await producer.send_batch(batch, partition_id=partition)


async def test_capture_to_a_directory_window_by_window(tmp_path: Path) -> None:
    root = tmp_path / "capture"
    emulator = Emulator(partitions=2, capture_dir=root, capture_interval=3600)
    await emulator.start()
    try:
        await send(emulator, "0", "a", "b", kind="text", n=3)
        await emulator.flush_capture()
        first = captured(root, "0")
        assert [(e.sequence, e.body, dict(e.properties)) for e in first] == [
            (0, b"a", {"kind": "text", "n": 3}),
            (1, b"b", {"kind": "text", "n": 3}),
        ]
        assert first[0].offset == "0"
        assert captured(root, "1") == []  # an empty window still gives a (readable, empty) file
        assert list((root / "emulator" / "hub" / "1").rglob("*.avro"))
        await send(emulator, "0", "c")
        await emulator.flush_capture()
        assert [e.sequence for e in captured(root, "0")] == [0, 1, 2]  # each event exactly once
    finally:
        await emulator.stop()


async def test_an_unreachable_destination_loses_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "mount"
    blocker.write_text("not a directory yet")
    root = blocker / "capture"
    emulator = Emulator(partitions=1, capture_dir=root, capture_interval=3600)
    await emulator.start()
    try:
        await send(emulator, "0", "a")
        await emulator.flush_capture()  # fails: logged, cursor kept
        assert emulator.capturer is not None and emulator.capturer.cursors == {}
        blocker.unlink()
        blocker.mkdir()
        await send(emulator, "0", "b")
        await emulator.flush_capture()
        assert [e.body for e in captured(root, "0")] == [b"a", b"b"]
    finally:
        await emulator.stop()


async def test_the_cursor_survives_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "capture"
    data = tmp_path / "data"
    emulator = Emulator(partitions=1, data_dir=data, capture_dir=root, capture_interval=3600)
    await emulator.start()
    await send(emulator, "0", "a")
    await emulator.flush_capture()
    await emulator.stop()
    for path in root.rglob("*.avro"):
        path.rename(path.with_suffix(".done"))  # so only the next window's file is read below
    emulator = Emulator(partitions=1, data_dir=data, capture_dir=root, capture_interval=3600)
    await emulator.start()
    try:
        await send(emulator, "0", "b")
        await emulator.flush_capture()
        assert [(e.sequence, e.body) for e in captured(root, "0")] == [(1, b"b")]
    finally:
        await emulator.stop()


async def test_the_interval_timer_writes_windows(tmp_path: Path) -> None:
    root = tmp_path / "capture"
    emulator = Emulator(partitions=1, capture_dir=root, capture_interval=0.2)
    await emulator.start()
    try:
        await send(emulator, "0", "a")
        deadline = asyncio.get_running_loop().time() + 10
        while not captured(root, "0"):
            assert asyncio.get_running_loop().time() < deadline, "no capture window was written"
            await asyncio.sleep(0.05)
        assert [e.body for e in captured(root, "0")] == [b"a"]
    finally:
        await emulator.stop()


@pytest.mark.azurite
async def test_capture_to_a_blob_container(azurite: Any, blob_container: str) -> None:
    emulator = Emulator(
        partitions=1,
        capture_container=blob_container,
        storage_connection_string=azurite.connection_string,
        capture_interval=3600,
    )
    await emulator.start()
    try:
        await send(emulator, "0", "x", "y")
        await emulator.flush_capture()
    finally:
        await emulator.stop()
    async with ContainerClient.from_connection_string(azurite.connection_string, blob_container) as container:
        names = [b.name async for b in container.list_blobs()]
        assert len(names) == 1 and names[0].startswith("emulator/hub/0/")
        data = await (await container.download_blob(names[0])).readall()
    assert [e.body for e in read_capture_file(io.BytesIO(data), "0")] == [b"x", b"y"]
