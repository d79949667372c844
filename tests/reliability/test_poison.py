"""Poison events sent through the real hub into ``statepump run``, under both policies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devservices.azurite import Azurite
from devservices.emulator import EmulatorProcess
from statepump.stores.deadletters import DeadLetterBlob, body_bytes
from tests.reliability.replay import send
from tests.reliability.sidecar import Sidecar, clean_environment

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]
GOOD = b'{"op":"set","path":"a","value":1}'
BIG_VALUE = "x" * 1_000_000
BIG = json.dumps({"op": "set", "path": "big", "value": BIG_VALUE}).encode()
NOT_JSON = b'{"op":"set","path":'
# JSON, but not an object: not a config event at all, so poison (an unknown op is a rejection).
NOT_OBJECT = b'["frobnicate", "a"]'


def readyz(car: Sidecar) -> tuple[int, dict[str, object]]:
    code, _, body = car.get("/readyz")
    return code, json.loads(body)


@pytest.mark.parametrize(
    ("poison", "error"),
    [(NOT_JSON, "JSON"), (NOT_OBJECT, "must be a JSON object")],
    ids=["invalid-json", "not-an-object"],
)
def test_stop_policy_stops_reports_the_sequence_and_serves_the_last_good_version(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path, poison: bytes, error: str
) -> None:
    hub = emulator_process(None)
    # A ~1 MB value is not poison: it fits the hub's 1 MB limit and is applied and served whole.
    send(hub.connection_string, [GOOD])
    send(hub.connection_string, [BIG])
    send(hub.connection_string, [poison, b'{"op":"set","path":"after","value":1}'])
    with Sidecar(["--connection-string", hub.connection_string], tmp_path) as car:
        status = car.wait_status(lambda s: s["poison_events"] == 1, "the poison event to be reported")
        assert status["last_poison_event"] == 2 and status["sequence"] == 1 and status["ready"] is False
        reason = status["not_ready_reason"]
        assert "poison event 2" in reason and error in reason and "serving sequence 1" in reason, reason
        code, body = readyz(car)
        assert code == 503 and "poison event 2" in str(body), body
        assert car.state("a") == 1 and car.state("big") == BIG_VALUE  # the last good version, still served
        assert "after" not in car.state()
        assert "poison event 2" in car.log()
        assert car.process.poll() is None, "a poison event must not end the process"
        assert car.terminate() == 0


def test_skip_policy_records_each_poison_event_and_goes_on(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None)
    dead = tmp_path / "dead.jsonl"
    send(hub.connection_string, [GOOD, NOT_JSON, NOT_OBJECT, b'{"op":"set","path":"b","value":2}'])
    flags = ["--connection-string", hub.connection_string, "--poison-policy", "skip", "--dead-letter", str(dead)]
    with Sidecar(flags, tmp_path) as car:
        status = car.wait_status(lambda s: s["ready"] and s["sequence"] == 3, "event 3 to be applied")
        assert status["poison_events"] == 2 and status["last_poison_event"] == 2
        assert car.state() == {"a": 1, "b": 2}
        records = [json.loads(line) for line in dead.read_text().splitlines()]
        assert [(r["partition"], r["sequence"]) for r in records] == [("0", 1), ("0", 2)]
        assert [body_bytes(r) for r in records] == [NOT_JSON, NOT_OBJECT]
        assert [r["body_encoding"] for r in records] == ["utf-8", "utf-8"]
        assert "JSON" in records[0]["error"] and "JSON object" in records[1]["error"]
        assert "poison event 1 skipped" in car.log() and "poison event 2 skipped" in car.log()
        assert car.terminate() == 0


def test_a_custom_reducer_that_raises_is_a_poison_event(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None)
    send(hub.connection_string, [b"{}", b"{}", b'"boom"', b"{}"])
    env = {**clean_environment(), "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    flags = ["--connection-string", hub.connection_string, "--reducer", "tests.reliability.explosive:explosive"]
    with Sidecar(flags, tmp_path, env=env) as car:
        status = car.wait_status(lambda s: s["poison_events"] == 1, "the poison event to be reported")
        assert status["sequence"] == 1 and status["last_poison_event"] == 2
        assert status["reducer"] == {"name": "explosive", "version": 1, "schema": None}
        assert "refuses this event on purpose" in status["not_ready_reason"]
        assert car.state() == {"n": 2}
        code, body = readyz(car)
        assert code == 503 and "poison event 2" in str(body)
        assert car.terminate() == 0


def test_an_event_over_the_hubs_limit_never_reaches_the_pump(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None)
    too_big = json.dumps({"op": "set", "path": "huge", "value": "y" * 1_100_000})
    result = subprocess.run(
        [sys.executable, "-m", "statepump", "send", "--connection-string", hub.connection_string],
        input=too_big,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment(),
        check=False,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "larger than the hub's 1048576 byte limit; nothing was sent" in result.stderr, result.stderr


async def test_skip_policy_records_poison_events_in_a_blob_container(
    emulator_process: Callable[..., EmulatorProcess], azurite: Azurite, blob_container: str, tmp_path: Path
) -> None:
    hub = emulator_process(None)
    send(hub.connection_string, [GOOD, NOT_OBJECT, b'{"op":"set","path":"b","value":2}'])
    flags = ["--connection-string", hub.connection_string, "--poison-policy", "skip"]
    flags += ["--dead-letter-container", blob_container, "--storage-connection-string", azurite.connection_string]
    with Sidecar(flags, tmp_path) as car:
        status = car.wait_status(lambda s: s["ready"] and s["sequence"] == 2, "event 2 to be applied")
        assert status["poison_events"] == 1 and car.state() == {"a": 1, "b": 2}
        assert car.terminate() == 0
    dead = DeadLetterBlob.from_connection_string(azurite.connection_string, blob_container)
    try:
        records = dead.read()
        names = [b.name for b in dead.container.list_blobs()]
    finally:
        dead.close()
    assert names == ["dead-letter/0/00000000000000000001-config@1.json"]
    assert [(r["partition"], r["sequence"]) for r in records] == [("0", 1)]
    assert records[0]["body"] == NOT_OBJECT.decode() and "JSON object" in records[0]["error"]


def test_each_poison_event_is_recorded_once_per_sink_whatever_the_restarts_and_snapshotter_runs(
    emulator_process: Callable[..., EmulatorProcess], azurite: Azurite, blob_container: str, tmp_path: Path
) -> None:
    hub = emulator_process(None)
    binary = b"\xff\xfe not text"
    send(hub.connection_string, [GOOD, NOT_JSON, binary, b'{"op":"set","path":"b","value":2}'])
    dead = tmp_path / "dead.jsonl"
    skip = ["--connection-string", hub.connection_string, "--poison-policy", "skip"]
    to_file = [*skip, "--dead-letter", str(dead)]
    to_blob = [*skip, "--dead-letter-container", blob_container]
    to_blob += ["--storage-connection-string", azurite.connection_string]
    for i, flags in enumerate([to_file, to_file, to_file, to_blob, to_blob]):  # no snapshots: each replays from 0
        with Sidecar(flags, tmp_path / f"run{i}") as car:
            car.wait_status(lambda s: s["ready"] and s["sequence"] == 3, "event 3 to be applied")
            assert car.terminate() == 0
    for i in range(2):  # each run from a fresh snapshot directory: it folds, and skips, both poison events again
        run = subprocess.run(
            [sys.executable, "-m", "snapshotter", *to_file, "--snapshot-dir", str(tmp_path / f"snapshots{i}")],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_environment(),
            cwd=REPO,
            check=False,
        )
        assert run.returncode == 0, run.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "statepump", "dead-letters", "--dead-letter", str(dead)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment(),
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["key"], r["body_encoding"]) for r in records] == [("0/1/config@1", "utf-8"), ("0/2/config@1", "base64")]
    assert [body_bytes(r) for r in records] == [NOT_JSON, binary] and records[0]["body"] == NOT_JSON.decode()
    since = subprocess.run(
        [sys.executable, "-m", "statepump", "dead-letters", "--dead-letter", str(dead), "--since", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment(),
        check=False,
    )
    assert [json.loads(line)["sequence"] for line in since.stdout.splitlines()] == [2]
    sink = DeadLetterBlob.from_connection_string(azurite.connection_string, blob_container)
    try:
        assert [(r["key"], body_bytes(r)) for r in sink.read()] == [
            ("0/1/config@1", NOT_JSON),
            ("0/2/config@1", binary),
        ]
    finally:
        sink.close()
