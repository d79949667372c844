"""The hub is not there when ``statepump run`` starts: give up after the retry budget, or come up with the hub."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from devservices import free_port
from devservices.emulator import EmulatorProcess
from statepump.emulator.emulator import KEY, KEY_NAME
from tests.reliability.replay import send
from tests.reliability.sidecar import Sidecar, clean_environment

pytestmark = pytest.mark.emulator


def connection_string(port: int) -> str:
    return (
        f"Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName={KEY_NAME};"
        f"SharedAccessKey={KEY};EntityPath=hub;UseDevelopmentEmulator=true"
    )


def test_hub_unreachable_for_longer_than_the_budget_exits_1_with_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with Sidecar(["--connection-string", connection_string(port), "--retry-seconds", "3"], tmp_path) as car:
        code = car.wait_exit(60)
        elapsed = time.monotonic() - started
        log = car.log()
    assert code == 1, log
    assert elapsed >= 3, "gave up before the retry budget was spent"
    assert "Traceback" not in log
    last = log.strip().splitlines()[-1]
    assert last.startswith("statepump run: "), last
    assert "unreachable" in last and f"127.0.0.1:{port}" in last and "3 s" in last, last
    assert log.count("retry") >= 2, "no retry was logged before giving up"
    assert not (tmp_path / "run.sock").exists()


def test_hub_appearing_within_the_budget_is_picked_up(tmp_path: Path) -> None:
    port = free_port()
    hub = EmulatorProcess(["--port", str(port), "--data", str(tmp_path / "hub")], port, None, tmp_path / "hub.log")
    try:
        with Sidecar(["--connection-string", connection_string(port), "--retry-seconds", "60"], tmp_path) as car:
            car.wait(lambda: car.log().count("retry") >= 2, "the sidecar to retry the missing hub")
            assert car.process.poll() is None
            hub.start()
            send(hub.connection_string, [b'{"op":"set","path":"up","value":true}'])
            status = car.wait_status(lambda s: s["ready"] and s["sequence"] == 0, "event 0 to be applied")
            assert car.state() == {"up": True}
            assert status["reconnects"] >= 2
            assert car.terminate() == 0
    finally:
        hub.kill()


def test_snapshotter_with_the_hub_unreachable_past_the_budget_exits_1_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snapshotter",
            "--connection-string",
            connection_string(port),
            "--retry-seconds",
            "3",
            "--snapshot-dir",
            str(tmp_path / "snapshots"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environment(),
        check=False,
    )
    assert result.returncode == 1, result
    assert time.monotonic() - started >= 3
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("snapshotter: ") and "unreachable" in last and f"127.0.0.1:{port}" in last, last
    assert not (tmp_path / "snapshots").exists() or not any((tmp_path / "snapshots").rglob("*.snapshot"))


def test_a_hub_outage_after_ready_longer_than_the_budget_keeps_serving(tmp_path: Path) -> None:
    port = free_port()
    hub = EmulatorProcess(["--port", str(port), "--data", str(tmp_path / "hub")], port, None, tmp_path / "hub.log")
    hub.start()
    try:
        send(hub.connection_string, [b'{"op":"set","path":"up","value":1}'])
        flags = ["--connection-string", connection_string(port), "--retry-seconds", "2"]
        with Sidecar(flags, tmp_path) as car:
            car.wait_status(lambda s: s["ready"] and s["sequence"] == 0, "event 0 to be applied")
            hub.kill()
            status = car.wait_status(
                lambda s: not s["ready"] and "unreachable" in (s["not_ready_reason"] or ""),
                "the outage to outlast the retry budget",
            )
            assert "serving sequence 0" in status["not_ready_reason"]
            assert car.process.poll() is None, car.log()
            assert car.state() == {"up": 1}  # the last good version is still served
            hub.start()
            send(hub.connection_string, [b'{"op":"set","path":"up","value":2}'])
            car.wait_status(lambda s: s["ready"] and s["sequence"] == 1, "event 1 after the outage")
            assert car.state() == {"up": 2}
            assert "Traceback" not in car.log()
            assert car.terminate() == 0
    finally:
        hub.kill()
