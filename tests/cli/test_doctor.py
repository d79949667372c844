"""``statepump doctor`` against the emulator (a process, through the real SDK): healthy, and with
each fault a starting node would meet: a hub that does not answer, retention past the newest
snapshot without Capture, a snapshot of another reducer, a group that does not exist, a full pool."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devservices import free_port
from devservices.emulator import EmulatorProcess, connection_string
from tests.emulator.clients import Receiver
from tests.reliability.replay import send
from tests.reliability.sidecar import clean_environment

pytestmark = pytest.mark.emulator

POOL = "web-{1..2}"


def doctor(hub: str, *flags: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statepump", "doctor", "--connection-string", hub, "--data-dir", str(data), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_environment(),
    )


def admin(hub: EmulatorProcess, method: str, target: str) -> object:
    assert hub.admin_port is not None
    connection = http.client.HTTPConnection("127.0.0.1", hub.admin_port, timeout=10)
    try:
        connection.request(method, target)
        return json.loads(connection.getresponse().read() or b"null")
    finally:
        connection.close()


def events(start: int, count: int) -> list[bytes]:
    return [json.dumps({"op": "set", "path": f"k{i}", "value": i}).encode() for i in range(start, start + count)]


@pytest.fixture
def hub(emulator_process: Callable[..., EmulatorProcess]) -> EmulatorProcess:
    hub = emulator_process(None, partitions=1, admin=True, extra=["--consumer-group", POOL])
    send(hub.connection_string, events(0, 20))
    return hub


def snapshot(hub: EmulatorProcess, snapshots: Path, *flags: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "snapshotter", "--connection-string", hub.connection_string, "--consumer-group",
         "web-1", "--snapshot-dir", str(snapshots), *flags],
        check=True, capture_output=True, timeout=60, env=clean_environment(),
    )  # fmt: skip


def test_a_healthy_deployment_is_all_ok_and_frees_the_slots_it_counted(hub: EmulatorProcess, tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    snapshot(hub, snapshots)
    send(hub.connection_string, events(20, 5))
    began = time.monotonic()
    result = doctor(hub.connection_string, "--consumer-group", POOL, "--snapshot-dir", str(snapshots), data=tmp_path)
    took = time.monotonic() - began
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ok: the hub answers; it has one partition, 0"
    assert lines[1].startswith("ok: a new node loads the snapshot at 19 (")
    assert lines[1].endswith("s old) and reads 5 events from the hub")
    assert lines[2] == "ok: 10 more readers can start: web-1 5 free, web-2 5 free"
    assert len(lines) == 3
    assert "a new node would become ready" in result.stderr
    print(f"\nstatepump doctor, healthy: {took:.1f} s")
    listing = admin(hub, "GET", "/partitions/0")
    assert isinstance(listing, dict) and not any(listing["receivers"].values())  # every slot it took is free


def test_retention_past_the_snapshot_without_capture_is_a_gap_and_another_reducers_snapshot_is_named(
    hub: EmulatorProcess, tmp_path: Path
) -> None:
    snapshots = tmp_path / "snapshots"
    snapshot(hub, snapshots)  # at 19
    send(hub.connection_string, events(20, 20))
    admin(hub, "POST", "/partitions/0/expire?before_sequence=30")
    result = doctor(hub.connection_string, "--consumer-group", POOL, "--snapshot-dir", str(snapshots), data=tmp_path)
    assert result.returncode == 1
    [gap] = [line for line in result.stdout.splitlines() if line.startswith("problem: a new node would not be ready")]
    assert "20" in gap and "29" in gap and gap.endswith("or configure Capture (--capture-container)")
    # Another reducer cannot use that snapshot: said, and the start from the earliest event skips nothing here.
    other = doctor(
        hub.connection_string, "--reducer", "markup", "--consumer-group", POOL, "--snapshot-dir", str(snapshots),
        data=tmp_path,
    )  # fmt: skip
    assert any(
        line.startswith("warning: the snapshot at 19 is not used: snapshot was made by reducer config")
        for line in other.stdout.splitlines()
    ), other.stdout


def test_a_hub_that_does_not_answer_and_a_group_that_does_not_exist(hub: EmulatorProcess, tmp_path: Path) -> None:
    began = time.monotonic()
    result = doctor(connection_string(free_port()), data=tmp_path)
    took = time.monotonic() - began
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith("problem: the hub does not answer: ")
    assert took < 20  # seconds, not a pump's minute of retries
    missing = doctor(hub.connection_string, "--consumer-group", "web-1,nope", data=tmp_path)
    assert missing.returncode == 1
    assert "problem: consumer group nope: does not exist; create it" in missing.stdout


@pytest.fixture
def full_group(hub: EmulatorProcess) -> Iterator[None]:
    """Five SDK receivers on web-1 and five on web-2, held on a thread of their own until the test ends."""
    attached, release = threading.Event(), threading.Event()

    async def hold() -> None:
        receivers = [
            await Receiver(hub.connection_string, "0", consumer_group=group).start()
            for group in ("web-1", "web-2")
            for _ in range(5)
        ]
        while sum(admin(hub, "GET", "/partitions/0")["receivers"].values()) < 10:  # type: ignore[index]
            await asyncio.sleep(0.05)
        attached.set()
        await asyncio.to_thread(release.wait)
        await asyncio.gather(*(r.stop() for r in receivers))

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert attached.wait(60)
        yield
    finally:
        release.set()
        thread.join(60)


def test_a_full_pool_says_so_in_one_line(hub: EmulatorProcess, tmp_path: Path, full_group: None) -> None:
    result = doctor(hub.connection_string, "--consumer-group", POOL, data=tmp_path)
    assert result.returncode == 1
    assert (
        "problem: all 2 consumer groups of partition 0 have 5 readers; add groups or use a relay"
        in result.stdout.splitlines()
    )
