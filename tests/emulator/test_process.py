"""The emulator as a subprocess (``python -m statepump.emulator``): kill, restart, durability."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.eventhub.aio import EventHubProducerClient

from devservices.emulator import EmulatorProcess
from statepump.emulator.__main__ import parse_args

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


def test_command_line_limits() -> None:
    args = parse_args([])
    assert (args.consumer_groups, args.receivers_per_partition, args.max_connections) == ([], 5, None)
    assert (args.throughput_units, args.throttle_ingress) == (None, False)
    groups = ["--consumer-group", "audit", "--consumer-group", "web-{01..02}", "--consumer-groups", "2"]
    limits = ["--receivers-per-partition", "0", "--max-connections", "9", "--throughput-units", "2"]
    args = parse_args([*groups, *limits, "--throttle-ingress"])
    assert args.consumer_groups == ["audit", "web-01", "web-02", "group-1", "group-2"]
    assert (args.receivers_per_partition, args.max_connections, args.throughput_units) == (0, 9, 2)
    assert args.throttle_ingress is True
    for bad in (["--consumer-group", "-x"], ["--consumer-group", "w{2..1}"], ["--throttle-ingress"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_statepump_emulator_takes_the_limits_and_says_what_is_wrong(tmp_path: Path) -> None:
    """The user-facing command: its flags reach the emulator (seen on the admin endpoint)."""
    port, admin = free_port(), free_port()
    log = tmp_path / "emulator.log"
    command = [sys.executable, "-m", "statepump", "emulator", "--port", str(port), "--in-memory"]
    limits = ["--consumer-group", "web-{1..2}", "--consumer-groups", "1", "--receivers-per-partition", "3"]
    with open(log, "wb") as out:
        emulator = subprocess.Popen(
            [*command, "--admin-port", str(admin), *limits, "--throughput-units", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "emulator ready" not in log.read_text():
            assert emulator.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)  # poll interval of the readiness condition
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/receivers", timeout=10) as answer:
            table = json.loads(answer.read())
    finally:
        if emulator.poll() is None:
            os.kill(emulator.pid, signal.SIGTERM)
            emulator.wait(timeout=30)
    assert table["consumer_groups"] == ["$Default", "web-1", "web-2", "group-1"]
    assert (table["receivers_per_partition"], table["throughput_units"]) == (3, 1)
    bad = subprocess.run([*command, "--consumer-group", "web-"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "statepump emulator: invalid setting --consumer-group (STATEPUMP_CONSUMER_GROUP / consumer_group): "
        "'web-' is not a consumer group name: 1 to 50 letters, digits, '.', '-' or '_', beginning and ending "
        "with a letter or digit"
    ]
