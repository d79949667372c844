"""`statepump revert --to N PATH` as processes: a path changed ten times goes back to its value at N on every node.

Real processes against the emulator: two `statepump run` sidecars (one of them
from a snapshot written by the snapshotter halfway) read the same partition;
`statepump revert` reads the state now from one of them, rebuilds the value at
N offline, refuses without a terminal and without --yes (exit 2, one line,
nothing sent), then sends the revert as one event. Both sidecars then hold the
value at N there and nothing else moved; the revert is event M in /v1/events,
applied, with its operations and the event it went back to.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from devservices.emulator import EmulatorProcess
from tests.reliability.replay import send
from tests.reliability.sidecar import Sidecar, run_module

pytestmark = pytest.mark.emulator



def history() -> list[bytes]:
    """markup/tshirt changed ten times (events 0, 2, 4, ... 18), with other paths changing in between."""
    out = []
    for i in range(10):
        out.append(json.dumps({"op": "set", "path": "markup/tshirt", "value": round(0.01 * (i + 1), 2)}).encode())
        out.append(json.dumps({"op": "set", "path": f"other/k{i}", "value": i}).encode())
    out[10] = json.dumps({"op": "delete", "path": "markup/tshirt"}).encode()  # event 10: a delete among them
    return out


def test_revert_restores_the_value_at_n_on_every_node_and_is_itself_an_event(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path, cars: list[Sidecar]
) -> None:
    hub = emulator_process(None, partitions=1)
    cs = ["--connection-string", hub.connection_string]
    snapshots = tmp_path / "snapshots"
    events = history()
    send(hub.connection_string, events[:9])  # 0..8
    written = run_module("snapshotter", *cs, "--snapshot-dir", str(snapshots))
    assert written.returncode == 0, written.stderr
    send(hub.connection_string, events[9:])  # 9..19
    last = len(events) - 1
    fresh = Sidecar(cs, tmp_path / "fresh")
    cars.append(fresh)
    from_snapshot = Sidecar([*cs, "--snapshot-dir", str(snapshots)], tmp_path / "from-snapshot")
    cars.append(from_snapshot)
    for car in (fresh, from_snapshot):
        car.wait_status(lambda s: s["ready"] and s["sequence"] == last, f"event {last}")
    assert from_snapshot.status()["snapshot_sequence"] == 8
    before = fresh.state()
    assert before["markup"] == {"tshirt": 0.1}

    elsewhere = ["--data-dir", str(tmp_path / "cli")]  # not the repository's .statepump/ of `make run`
    revert = ["revert", "--to", "6", "markup/tshirt", *cs, *elsewhere, "--socket", str(fresh.socket)]
    asked = run_module("statepump", *revert)
    assert asked.returncode == 2, asked
    assert asked.stderr.count("\n") == 1 and "add --yes" in asked.stderr and "nothing was sent" in asked.stderr
    assert "set markup/tshirt = 0.04 (if unchanged since 19)" in asked.stdout  # what it would have sent
    assert "test markup/tshirt == 0.1" in asked.stdout
    assert "rejection, not an overwrite" in asked.stdout

    done = run_module("statepump", *revert, "--yes", "--wait")
    assert done.returncode == 0, done
    assert done.stdout.splitlines()[-1] == f"applied at {last + 1}"  # the next number: the refusal sent nothing
    for car in (fresh, from_snapshot):
        car.wait_status(lambda s: s["sequence"] == last + 1, "the revert")
        after = car.state()
        assert after["markup"] == {"tshirt": 0.04}  # its value at event 6
        assert after["other"] == before["other"]  # nothing else moved
    code, _, body = fresh.get(f"/v1/events/{last + 1}")
    event = json.loads(body)
    assert code == 200 and event["outcome"] == "applied", event
    assert event["properties"]["statepump-revert-to"] == "6"
    assert json.loads(event["body"])["ops"] == [
        {"op": "test", "path": ["markup", "tshirt"], "value": 0.1},
        {"op": "set", "path": ["markup", "tshirt"], "value": 0.04, "if_sequence": last},
    ]

    # Back to event 10, where the delete left nothing: the revert is a delete (and a test of what is there now).
    gone = run_module(
        "statepump",
        "revert",
        "--to",
        "10",
        "markup/tshirt",
        *cs,
        *elsewhere,
        "--socket",
        str(from_snapshot.socket),
        "--yes",
        "--wait",
    )
    assert gone.returncode == 0, gone
    assert "delete markup/tshirt (if unchanged since 20)" in gone.stdout
    assert gone.stdout.splitlines()[-1] == f"applied at {last + 2}"
    for car in (fresh, from_snapshot):
        car.wait_status(lambda s: s["sequence"] == last + 2, "the second revert")
        assert car.state()["markup"] == {}
    same = run_module(
        "statepump", "revert", "--to", "10", "markup/tshirt", *cs, *elsewhere, "--socket", str(fresh.socket)
    )
    assert same.returncode == 0 and same.stdout.startswith("nothing to revert: markup/tshirt holds at 21"), same
