"""One `statepump skip` releases a whole fleet halted on a poison event, and every way of reading the log agrees.

Real processes against the emulator: two `statepump run` sidecars (one replaying from
the start, one from a snapshot older than the poison event) and the snapshotter all stop
on an event a custom reducer cannot fold (tests/fleet/poisonous.py). `statepump skip N
--reason` refuses bad input first (exit 2, nothing sent: the skip then gets the very
next sequence number), then releases all three; they, a fresh replay from scratch, one
from the older snapshot, one from the snapshotter's new snapshot, and a sidecar with
`--poison-policy skip` reach the same state. A restart while halted says so in one line.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from devservices.emulator import EmulatorProcess
from tests.reliability.replay import send
from tests.reliability.sidecar import Sidecar, run_module

pytestmark = pytest.mark.emulator

REDUCER = ["--reducer", "tests.fleet.poisonous:poisonous"]
POISON_AT = 5


def set_event(path: str, value: int) -> bytes:
    return json.dumps({"op": "set", "path": path, "value": value}).encode()


def test_one_skip_releases_two_sidecars_and_the_snapshotter_and_every_replay_agrees(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path, cars: list[Sidecar]
) -> None:
    hub = emulator_process(None)
    cs = ["--connection-string", hub.connection_string]
    snapshots, older = tmp_path / "snapshots", tmp_path / "older"
    snapshotter = [*cs, *REDUCER, "--snapshot-dir", str(snapshots)]

    send(hub.connection_string, [set_event(f"k{i}", i) for i in range(POISON_AT)])  # 0..4
    first = run_module("snapshotter", *snapshotter)
    assert first.returncode == 0, first.stderr
    shutil.copytree(snapshots, older)  # a snapshot at 4, older than the poison event
    send(hub.connection_string, [b'{"op": "set", "path": "boom", "value": 1}'])  # 5: poison for this reducer
    send(hub.connection_string, [set_event(f"k{i}", i) for i in range(6, 9)])  # 6..8

    # --- the fleet stops on event 5 ------------------------------------------------------
    scratch = Sidecar([*cs, *REDUCER], tmp_path / "scratch")
    cars.append(scratch)
    from_older = Sidecar([*cs, *REDUCER, "--snapshot-dir", str(older)], tmp_path / "from-older")
    cars.append(from_older)
    for car in (scratch, from_older):
        status = car.wait_status(lambda s: s["halted_on_poison"] is not None, "the poison stop")
        assert status["halted_on_poison"]["sequence"] == POISON_AT and status["sequence"] == POISON_AT - 1
        assert status["ready"] is False and "poison event 5" in status["not_ready_reason"]
        car.wait_status(lambda s: s["halted_on_poison"]["read_through"] == 8, "reading on to the hub's end")
        assert car.state() == {f"k{i}": i for i in range(POISON_AT)}
    assert from_older.status()["snapshot_sequence"] == POISON_AT - 1
    stopped = run_module("snapshotter", *snapshotter)
    assert stopped.returncode == 1 and "poison event 5" in stopped.stderr, stopped.stderr

    # Issue 18: a restart that stops again at the same event says so in one short line.
    assert "RuntimeError: the poisonous reducer" in scratch.log()
    assert scratch.terminate() == 0
    scratch = Sidecar([*cs, *REDUCER], tmp_path / "scratch", name="restarted")
    cars.append(scratch)
    scratch.wait_status(lambda s: s["halted_on_poison"] is not None, "the poison stop after the restart")
    told = [line for line in scratch.log().splitlines() if "poison event 5" in line]
    assert len(told) == 1 and "still stopped at poison event 5 (first seen 20" in told[0], told
    assert "see `statepump skip`" in told[0] and "RuntimeError" not in told[0] and "ERROR" not in told[0]

    # --- the writer refuses what would not help (exit 2, one line, nothing sent) -----------------------
    sidecar = ["--socket", str(scratch.socket)]
    elsewhere = ["--data-dir", str(tmp_path / "cli")]  # not the repository's .statepump/ of `make run`
    for args, words in (
        (["50"], "event 50 is not in the log yet (its last event is 8)"),
        (["3", *sidecar], "event 3 was already folded past by the sidecar (it is at 4, stopped at poison event 5)"),
    ):
        refused = run_module("statepump", "skip", *args, "--reason", "bad push", *cs, *elsewhere)
        assert refused.returncode == 2 and refused.stdout == "", refused
        assert refused.stderr.count("\n") == 1 and words in refused.stderr, refused.stderr
        assert "nothing was sent (--force sends it anyway)" in refused.stderr
    empty = run_module("statepump", "skip", "5", "--reason", " ", *cs, *elsewhere)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1 and "--reason" in empty.stderr, empty.stderr

    # --- one command releases them all ----------------------------------------------------------------
    released = run_module("statepump", "skip", "5", "--reason", "bad push", *cs, *sidecar)
    assert released.returncode == 0, released.stderr
    assert released.stdout.strip() == "9"  # the next number: none of the refusals above sent anything
    send(hub.connection_string, [set_event("after", 10)])  # 10
    expected = {**{f"k{i}": i for i in range(9) if i != POISON_AT}, "after": 10}
    for car in (scratch, from_older):
        car.wait_status(lambda s: s["ready"] and s["sequence"] == 10, "release and event 10")
        assert car.state() == expected
    status = scratch.status()
    assert status["poison_events_skipped_by_control"] == 1 and status["halted_on_poison"] is None
    assert status["last_skipped_by_control"] == {"sequence": 5, "by": 9, "reason": "bad push"}
    assert "statepump_poison_events_skipped_by_control_total 1.0" in scratch.metrics()
    code, _, body = scratch.get("/v1/events/5")
    event = json.loads(body)
    assert code == 200 and event["outcome"] == "skipped" and "skipped by control event 9: bad push" in event["reason"]
    code, _, body = scratch.get("/v1/events/9")
    event = json.loads(body)
    assert code == 200 and (event["outcome"], event["reason"]) == ("control", "skip of event 5 requested: bad push")
    assert event["properties"]["statepump-control"] == "skip"
    written = run_module("snapshotter", *snapshotter)
    assert written.returncode == 0, written.stderr
    for car in (scratch, from_older):
        assert car.terminate() == 0

    # --- every later way of reading the log agrees ---------------------------------------------------
    later = {
        "fresh": Sidecar([*cs, *REDUCER], tmp_path / "fresh"),
        "older": Sidecar([*cs, *REDUCER, "--snapshot-dir", str(older)], tmp_path / "older-again"),
        "newest": Sidecar([*cs, *REDUCER, "--snapshot-dir", str(snapshots)], tmp_path / "newest"),
        "policy-skip": Sidecar([*cs, *REDUCER, "--poison-policy", "skip"], tmp_path / "policy-skip"),
    }
    cars.extend(later.values())
    for name, car in later.items():
        status = car.wait_status(lambda s: s["ready"] and s["sequence"] == 10, f"{name}: event 10")
        assert car.state() == expected, name
    assert later["older"].status()["snapshot_sequence"] == POISON_AT - 1
    assert later["newest"].status()["snapshot_sequence"] == 10  # the released snapshotter's snapshot
    assert later["policy-skip"].status()["poison_events_skipped_by_control"] == 0  # moved past 5 by itself
    for car in later.values():
        assert car.terminate() == 0
