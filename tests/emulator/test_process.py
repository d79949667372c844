"""The emulator as a subprocess (``python -m statepump.emulator``): kill, restart, durability."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.eventhub.aio import EventHubProducerClient

from statepump.emulator.__main__ import parse_args

from ..fixtures.emulator import EmulatorProcess
from .clients import bodies, receive, send

pytestmark = pytest.mark.emulator


async def test_events_survive_sigkill_and_a_torn_record(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    hub = emulator_process(data)
    async with EventHubProducerClient.from_connection_string(hub.connection_string, retry_total=0) as producer:
        await send(producer, ["a", "b", "c"], partition="0")
    hub.kill()
    # A kill in the middle of a write leaves a partial record at the end.
    log = data / "partition-0.log"
    log.write_bytes(log.read_bytes() + b"\x00\x00\x01\x00partial")
    await asyncio.to_thread(hub.start)
    events = await receive(hub.connection_string, "0", 3)
    assert bodies(events) == ["a", "b", "c"]
    async with EventHubProducerClient.from_connection_string(hub.connection_string, retry_total=0) as producer:
        await send(producer, ["d"], partition="0")
        props = await producer.get_partition_properties("0")
    assert props["last_enqueued_sequence_number"] == 3
    hub.stop()
    assert hub.process is not None and hub.process.returncode == 0  # SIGTERM is a clean stop


async def test_in_memory_process_forgets_on_restart(emulator_process: Callable[..., EmulatorProcess]) -> None:
    hub = emulator_process(None, partitions=1)
    async with EventHubProducerClient.from_connection_string(hub.connection_string, retry_total=0) as producer:
        await send(producer, ["a"], partition="0")
    hub.kill()
    await asyncio.to_thread(hub.start)
    async with EventHubProducerClient.from_connection_string(hub.connection_string, retry_total=0) as producer:
        props = await producer.get_partition_properties("0")
    assert props["is_empty"] is True and props["last_enqueued_sequence_number"] == -1


def test_command_line() -> None:
    args = parse_args(
        ["--port", "0", "--data", "d", "--retention", "60", "--admin-port", "0", "--capture-interval", "5"]
    )
    assert (args.port, args.data, args.retention, args.admin_port, args.capture_interval) == (
        0,
        Path("d"),
        60.0,
        0,
        5.0,
    )
    with pytest.raises(SystemExit):
        parse_args(["--data", "d", "--in-memory"])
