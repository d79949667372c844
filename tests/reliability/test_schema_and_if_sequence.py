"""--schema and if_sequence with the real emulator and real ``statepump run``, writer and snapshotter processes.

A schema violation and a failed ``if_sequence`` each leave the state unchanged,
keep the pump ready and applying later events, and show in status, metrics
and ``/v1/events/N``; a pump that starts from a snapshot and one that replays
from the first event decide every ``if_sequence`` alike (one log, one state).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devservices.emulator import EmulatorProcess
from statepump.core.schema import Schema
from tests.reliability.sidecar import Sidecar, clean_environment
from tests.reliability.test_rejections import event, on_hub, refused, writer

pytestmark = pytest.mark.emulator

SCHEMA = {
    "properties": {
        "markup": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}},
    },
    "additionalProperties": {"type": ["string", "integer"]},
}


def test_a_schema_violation_is_refused_by_the_writer_and_rejected_by_the_fold_which_goes_on(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    identity = Schema.load(schema).identity
    with Sidecar(["--connection-string", hub.connection_string, "--schema", str(schema)], tmp_path) as car:
        assert car.wait_ready()["reducer"] == {"name": "config", "version": 1, "schema": identity}
        ok = writer(car, hub, "set", "markup/tshirt", "0.02", "--schema", str(schema), "--wait")
        assert (ok.returncode, ok.stdout) == (0, "applied at 0\n"), ok.stderr

        # The writer checks before sending: offline (the value's subschema), and against the sidecar's state.
        refused(
            writer(car, hub, "set", "markup/tshirt", "2", "--schema", str(schema)),
            "schema: markup/tshirt: 2 is greater than the maximum of 1 (maximum)",
        )
        refused(
            writer(car, hub, "merge", "markup", '{"hoodie": -1}', "--schema", str(schema)),
            "schema: markup/hoodie: -1 is less than the minimum of 0 (minimum)",
        )
        assert len(on_hub(hub)) == 1

        # Sent anyway: the fold rejects it, naming path and rule; the state stays; later events apply.
        forced = writer(car, hub, "set", "markup/tshirt", "2", "--force", "--wait")
        assert forced.returncode == 6, forced.stderr
        assert forced.stdout == "rejected at 1: schema: markup/tshirt: 2 is greater than the maximum of 1 (maximum)\n"
        later = writer(car, hub, "set", "greeting", '"hello"', "--schema", str(schema), "--wait")
        assert (later.returncode, later.stdout) == (0, "applied at 2\n"), later.stderr

        status = car.wait_status(lambda s: s["sequence"] == 2, "event 2 to be applied")
        assert status["ready"] and status["events_rejected"] == 1 and status["poison_events"] == 0
        assert status["last_rejected_event"]["sequence"] == 1
        assert car.state() == {"markup": {"tshirt": 0.02}, "greeting": "hello"}
        assert "statepump_events_rejected_total 1.0" in car.metrics()
        found = event(car, 1)
        assert found["outcome"] == "rejected" and found["reason"].startswith("schema: markup/tshirt: 2 is greater")
        assert "event 1 rejected (state unchanged): schema: markup/tshirt" in car.log()
        assert car.terminate() == 0

    # A bad schema file: one line naming it, exit 2, and no pump started.
    bad = tmp_path / "bad.json"
    bad.write_text('{"properties": {"a": {"type": "nope"}}}')
    run = subprocess.run(
        [sys.executable, "-m", "statepump", "run", "--connection-string", hub.connection_string, "--schema", str(bad),
         "--data-dir", str(tmp_path / "never")],
        capture_output=True, text=True, timeout=60, env=clean_environment(), check=False,
    )  # fmt: skip
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and f"--schema {bad}: " in run.stderr, run.stderr
    assert not (tmp_path / "never").exists()


def test_if_sequence_outcomes_are_the_same_from_a_snapshot_and_from_the_first_event(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None)
    snapshots = tmp_path / "snapshots"
    with Sidecar(["--connection-string", hub.connection_string], tmp_path / "one") as car:
        car.wait_ready()
        for path, value in (("markup/tshirt", "0.02"), ("other", "1"), ("markup/tshirt", "0.05")):  # events 0, 1, 2
            assert writer(car, hub, "set", path, value, "--wait").returncode == 0
        # The snapshotter writes the state at 2, with the record of when each path last changed.
        snap = subprocess.run(
            [sys.executable, "-m", "snapshotter", "--connection-string", hub.connection_string,
             "--snapshot-dir", str(snapshots), "--data-dir", str(tmp_path / "snapdata")],
            capture_output=True, text=True, timeout=120, env=clean_environment(), check=False,
        )  # fmt: skip
        assert snap.returncode == 0, snap.stdout + snap.stderr
        assert len(list(snapshots.rglob("*"))) > 0

        # 3: someone who read the state at 1 sets tshirt, changed since (at 2): rejected.
        stale = writer(car, hub, "set", "markup/tshirt", "0.03", "--if-sequence", "1", "--wait")
        assert stale.returncode == 6, stale.stderr
        assert stale.stdout == "rejected at 3: if_sequence failed at markup/tshirt: it last changed at 2, after 1\n"
        # 4: a sibling, unchanged since 1: applied. 5: markup itself changed at 4 (its member did): rejected.
        assert (
            writer(car, hub, "set", "markup/hoodie", "0.1", "--if-sequence", "1", "--wait").stdout == "applied at 4\n"
        )
        parent = writer(car, hub, "merge", "markup", '{"jeans": 0.2}', "--if-sequence", "3", "--wait")
        assert parent.stdout == "rejected at 5: if_sequence failed at markup: it last changed at 4, after 3\n"
        # 6: an old snapshot's sequence is no obstacle to a writer who read a newer state.
        assert writer(car, hub, "set", "other", "2", "--if-sequence", "5", "--wait").stdout == "applied at 6\n"

        status = car.wait_status(lambda s: s["sequence"] == 6, "event 6 to be applied")
        assert status["ready"] and status["events_rejected"] == 2
        assert "statepump_events_rejected_total 2.0" in car.metrics()
        outcomes = {n: (event(car, n)["outcome"], event(car, n).get("reason")) for n in range(3, 7)}
        assert [o for o, _ in outcomes.values()] == ["rejected", "applied", "rejected", "applied"]
        state = car.state()
        assert state == {"markup": {"tshirt": 0.05, "hoodie": 0.1}, "other": 2}

        # Another node from the snapshot at 2 and a third from the first event decide the same, event by event.
        flags = ["--connection-string", hub.connection_string]
        with (
            Sidecar([*flags, "--snapshot-dir", str(snapshots)], tmp_path / "from-snapshot") as warm,
            Sidecar(flags, tmp_path / "from-scratch") as cold,
        ):
            for other in (warm, cold):
                other.wait_status(lambda s: s["ready"] and s["sequence"] == 6, "the node to catch up")
                assert other.state() == state
                assert {n: (event(other, n)["outcome"], event(other, n).get("reason")) for n in range(3, 7)} == outcomes
            assert warm.status()["snapshot_sequence"] == 2 and cold.status()["snapshot_sequence"] is None
            assert warm.terminate() == 0 and cold.terminate() == 0
        assert car.terminate() == 0
