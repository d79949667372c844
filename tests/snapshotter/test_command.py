"""The ``snapshotter`` command as a subprocess, against the bundled Event Hubs emulator over the real SDK.

The emulator runs in the test's own event loop (fixture ``emulator``); each
``python -m snapshotter`` is a separate process that reaches it on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from statepump.components import make_pump
from statepump.core import codec
from statepump.emulator import Emulator
from statepump.eventhubs.send import send_events
from statepump.settings import load
from statepump.stores.directory import DirectoryStore
from tests.snapshotter.hubs import body

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 60.0


class Finished:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEPUMP_")}
    env["PYTHONPATH"] = str(REPO)
    return env


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "snapshotter",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
        cwd=REPO,
    )


async def finish(process: asyncio.subprocess.Process) -> Finished:
    try:
        out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    except TimeoutError:
        process.kill()  # a hung snapshotter must not outlive the test
        await process.wait()
        raise
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


async def snapshotter(*args: str) -> Finished:
    return await finish(await start(*args))


async def send(emulator: Emulator, first: int, count: int) -> list[int]:
    bodies = [json.dumps(body(i)).encode() for i in range(first, first + count)]
    return await send_events(connection_string=emulator.connection_string, bodies=bodies, partition="0")


def hub_args(emulator: Emulator, snapshots: Path, *more: str) -> list[str]:
    return ["--connection-string", emulator.connection_string, "--snapshot-dir", str(snapshots), *more]


async def pump_status(emulator: Emulator, snapshots: Path) -> dict[str, Any]:
    settings = load({"connection_string": emulator.connection_string, "snapshot_dir": str(snapshots)}, environ={})
    pump = make_pump(settings)
    async with pump:
        await pump.wait_ready(timeout=DEADLINE)
        return pump.status()


async def test_writes_a_snapshot_that_a_pump_started_afterwards_loads(emulator: Emulator, tmp_path: Path) -> None:
    assert await send(emulator, 0, 120) == list(range(120))
    done = await snapshotter(*hub_args(emulator, tmp_path, "--json"))
    assert done.code == 0, done.err
    summary = json.loads(done.out)
    assert (summary["action"], summary["sequence"], summary["events_folded"]) == ("written", 119, 120)
    assert summary["snapshot"] == "snapshots/hub/0/00000000000000000119.snapshot"
    assert summary["events_from_hub"] == 120
    path = tmp_path / summary["snapshot"]
    assert summary["size"] == path.stat().st_size
    assert codec.read_meta(path.read_bytes()).sequence == 119

    await send(emulator, 120, 15)
    status = await pump_status(emulator, tmp_path)
    assert status["snapshot_sequence"] == 119
    assert status["events_from_hub"] == 15  # only the events after the snapshot
    assert status["sequence"] == 134


async def test_a_second_run_with_nothing_new_exits_0(emulator: Emulator, tmp_path: Path) -> None:
    await send(emulator, 0, 10)
    assert (await snapshotter(*hub_args(emulator, tmp_path))).code == 0
    again = await snapshotter(*hub_args(emulator, tmp_path))
    assert again.code == 0, again.err
    assert again.out.strip().startswith("snapshotter: nothing new after snapshots/hub/0/00000000000000000009.snapshot")
    assert len(again.out.splitlines()) == 1


async def test_two_snapshotters_started_at_the_same_moment(emulator: Emulator, tmp_path: Path) -> None:
    await send(emulator, 0, 300)
    processes = [await start(*hub_args(emulator, tmp_path, "--json")) for _ in range(2)]
    results = await asyncio.gather(*(finish(p) for p in processes))
    assert [r.code for r in results] == [0, 0], [r.err for r in results]
    actions = sorted(json.loads(r.out)["action"] for r in results)
    assert actions.count("written") == 1 and set(actions) <= {"written", "backed-off", "nothing-new"}
    refs = await DirectoryStore(tmp_path, "hub", "0").list()
    assert [r.sequence for r in refs] == [299]
    meta, _ = codec.decode((tmp_path / refs[0].name).read_bytes())
    assert (meta.sequence, meta.events_folded) == (299, 300)


async def test_a_gap_exits_1_with_one_line_naming_the_missing_range(emulator: Emulator, tmp_path: Path) -> None:
    await send(emulator, 0, 10)
    assert (await snapshotter(*hub_args(emulator, tmp_path))).code == 0
    await send(emulator, 10, 20)
    emulator.expire("0", 20)  # retention drops 10..19 before any snapshot holds them; Capture is off
    done = await snapshotter(*hub_args(emulator, tmp_path))
    assert done.code == 1
    assert done.err.splitlines()[-1].startswith(
        "snapshotter: cannot reach sequence 29: events 10..19 are in neither the hub nor Capture"
    )
    assert done.out == ""


async def test_an_unreachable_hub_exits_1_without_leaking_the_key(tmp_path: Path) -> None:
    from devservices import free_port

    secret = "c2VjcmV0LWtleS1mb3ItdGhlLXRlc3Q="
    conn = (
        f"Endpoint=sb://127.0.0.1:{free_port()}/;SharedAccessKeyName=k;SharedAccessKey={secret};"
        "EntityPath=hub;UseDevelopmentEmulator=true"
    )
    started = time.monotonic()
    done = await snapshotter("--connection-string", conn, "--snapshot-dir", str(tmp_path), "--retry-seconds", "2")
    assert done.code == 1
    assert time.monotonic() - started < DEADLINE
    last = done.err.strip().splitlines()[-1]
    assert last.startswith("snapshotter: ") and "127.0.0.1" in last
    assert secret not in done.err + done.out


async def test_bad_settings_exit_2(tmp_path: Path) -> None:
    done = await snapshotter("--interval", "0", "--snapshot-dir", str(tmp_path))
    assert done.code == 2
    assert done.err.strip() == (
        "snapshotter: invalid setting --interval (STATEPUMP_INTERVAL / interval): Input should be greater than 0"
    )


async def test_continuous_exits_0_on_sigterm(emulator: Emulator, tmp_path: Path) -> None:
    await send(emulator, 0, 5)
    process = await start(*hub_args(emulator, tmp_path, "--continuous", "--interval", "3600"))
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), DEADLINE)
    assert first.decode().startswith("snapshotter: wrote snapshots/hub/0/00000000000000000004.snapshot")
    process.send_signal(signal.SIGTERM)
    done = await finish(process)
    assert done.code == 0, done.err


async def test_settings_from_the_environment(emulator: Emulator, tmp_path: Path) -> None:
    await send(emulator, 0, 3)
    env = {
        **_env(),
        "STATEPUMP_CONNECTION_STRING": emulator.connection_string,
        "STATEPUMP_SNAPSHOT_DIR": str(tmp_path),
        "STATEPUMP_DRY_RUN": "true",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "snapshotter",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    done = await finish(process)
    assert done.code == 0, done.err
    assert done.out.startswith("snapshotter: wrote snapshots/hub/0/00000000000000000002.snapshot")
    assert done.out.strip().endswith("retention would delete 0, kept 1")  # --dry-run, from STATEPUMP_DRY_RUN
    assert emulator.connection_string.split("SharedAccessKey=")[1].split(";")[0] not in done.err


async def test_catches_up_through_capture_when_the_hub_has_dropped_events(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    emulator = Emulator(port=0, partitions=1, capture_dir=capture, capture_interval=3600)
    await emulator.start()
    try:
        await send(emulator, 0, 40)
        snapshots = tmp_path / "snapshots"
        assert (await snapshotter(*hub_args(emulator, snapshots))).code == 0  # snapshot 39
        await send(emulator, 40, 60)
        await emulator.flush_capture()  # Capture now holds 0..99
        emulator.expire("0", 90)  # the hub only 90..99: 40..89 must come from Capture
        done = await snapshotter(*hub_args(emulator, snapshots, "--capture-dir", str(capture), "--json"))
        assert done.code == 0, done.err
        summary = json.loads(done.out)
        assert (summary["action"], summary["sequence"], summary["events_folded"]) == ("written", 99, 60)
        assert (summary["events_from_capture"], summary["events_from_hub"]) == (50, 10)
        _, state = codec.decode((snapshots / summary["snapshot"]).read_bytes())
        from tests.snapshotter.test_run import replay

        assert state == replay(100)
    finally:
        await emulator.stop()
