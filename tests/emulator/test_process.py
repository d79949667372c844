"""The emulator as a subprocess (``python -m statepump.emulator``): kill, restart, durability."""

from __future__ import annotations

import asyncio
import json
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
    hub = emulator_process(data, admin=True)
    async with EventHubProducerClient.from_connection_string(hub.connection_string, retry_total=0) as producer:
        await send(producer, ["a", "b", "c"], partition="0")
    hub.kill()
    # A kill in the middle of a write leaves a partial record at the end.
    log = data / "partition-0.log"
    log.write_bytes(log.read_bytes() + b"\x00\x00\x01\x00partial")
    await asyncio.to_thread(hub.start)
    events = await receive(hub.connection_string, "0", 3)
    assert bodies(events) == ["a", "b", "c"]
    assert hub.admin_port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.admin_port)
    writer.write(b"GET /partitions/0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    info = json.loads((await reader.read()).split(b"\r\n\r\n", 1)[1])
    writer.close()
    assert (info["begin_sequence_number"], info["last_enqueued_sequence_number"]) == (0, 2)
    hub.stop()
    assert hub.process is not None and hub.process.returncode == 0  # SIGTERM is a clean stop


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
    assert parse_args(["--in-memory"]).data is None
    assert parse_args([]).emulator_key is None
    assert parse_args(["--emulator-key", "k"]).emulator_key == "k"
    with pytest.raises(SystemExit):
        parse_args(["--data", "d", "--in-memory"])
