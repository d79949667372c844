"""Safe configuration changes, with the real emulator and real ``statepump run`` and writer processes.

A rejected change (an invalid operation, a failed ``test``, a custom reducer's
``Rejected``) leaves the state unchanged, keeps the pump ready and applying
later events, and shows in status, metrics and ``/v1/events/N``; the writer
commands refuse what the fold would reject, sending nothing (checked on the
hub), ``--force`` sends it, ``--wait`` prints the outcome.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from devservices.emulator import EmulatorProcess
from tests.reliability.replay import read_everything, send
from tests.reliability.sidecar import Sidecar, clean_environment

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]
STATEPUMP = (sys.executable, "-m", "statepump")


def targets(car: Sidecar, hub: EmulatorProcess) -> list[str]:
    return ["--connection-string", hub.connection_string, "--socket", str(car.socket)]


def writer(
    car: Sidecar, hub: EmulatorProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``statepump ARGS`` against the hub and the sidecar's socket, as a process."""
    return subprocess.run(
        [*STATEPUMP, *args, *targets(car, hub), "--author", "tester"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_environment(),
        check=False,
    )


def on_hub(hub: EmulatorProcess) -> list[bytes]:
    return [e.body for e in asyncio.run(read_everything(hub.connection_string))]


def event(car: Sidecar, n: int) -> dict[str, Any]:
    code, _, body = car.get(f"/v1/events/{n}")
    assert code == 200, body
    decoded: dict[str, Any] = json.loads(body)
    return decoded


def refused(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and "nothing was sent" in lines[0], result.stderr
    assert result.stdout == ""


def test_writers_refuse_what_the_fold_would_reject_force_sends_it_and_wait_prints_the_outcome(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None)
    with Sidecar(["--connection-string", hub.connection_string], tmp_path) as car:
        car.wait_ready()
        done = writer(car, hub, "set", "markup/tshirt", "0.02", "--wait")
        assert (done.returncode, done.stdout) == (0, "applied at 0\n"), done.stderr
        assert event(car, 0)["properties"]["statepump-author"] == "tester"

        # Each refused with one line and exit 2, and nothing reaches the hub.
        refusals: Sequence[tuple[Sequence[str], str | None, str]] = [
            (("set", "markup/tshirt", "0.03", "--expect", "0.05"), None, "test failed at markup/tshirt: 0.05 != 0.02"),
            (("set", "markup/tshirt/x", "1"), None, "path markup/tshirt/x: cannot descend into float"),
            (("delete", "markup/jeans"), None, "nothing to delete at markup/jeans"),
            (("merge", "markup", "3"), None, "'merge' at markup needs an object 'value'"),
            (("set", "markup/tshirt", "cheap"), None, "VALUE must be JSON"),
            (("send", '{"op": "frobnicate", "path": "a", "value": 1}'), None, "unknown op 'frobnicate'"),
            (("send",), '{"op": "set", "path": "b", "value": 1}\n{"op": "set", "path": "c"}\n', "event 2:"),
        ]
        for args, stdin, reason in refusals:
            result = writer(car, hub, *args, stdin=stdin)
            if "VALUE must be JSON" in reason:  # bad input, before any check: the settings error's exit 2
                assert result.returncode == 2 and reason in result.stderr, result.stderr
                continue
            refused(result, reason)
        assert len(on_hub(hub)) == 1

        # --force sends; the fold rejects it: state unchanged, the pump ready and applying what follows.
        forced = writer(car, hub, "set", "markup/tshirt", "0.03", "--expect", "0.05", "--force", "--wait")
        assert forced.returncode == 6, forced.stderr
        assert forced.stdout == "rejected at 1: test failed at markup/tshirt: 0.05 != 0.02\n"
        invalid = writer(car, hub, "send", '{"op": "frobnicate", "path": "a", "value": 1}', "--force")
        assert (invalid.returncode, invalid.stdout) == (0, "2\n"), invalid.stderr
        later = writer(car, hub, "set", "markup/jeans", "0.1", "--expect", "null", "--force", "--wait")
        assert later.returncode == 6 and "test failed at markup/jeans: null != nothing" in later.stdout
        applied = writer(car, hub, "merge", "markup", '{"jeans": 0.1}', "--wait")
        assert (applied.returncode, applied.stdout) == (0, "applied at 4\n"), applied.stderr

        status = car.wait_status(lambda s: s["sequence"] == 4, "event 4 to be applied")
        assert status["ready"] and status["events_rejected"] == 3 and status["poison_events"] == 0
        assert status["last_rejected_event"]["sequence"] == 3
        assert car.state() == {"markup": {"tshirt": 0.02, "jeans": 0.1}}
        assert "statepump_events_rejected_total 3.0" in car.metrics()
        unknown = event(car, 2)
        assert unknown["outcome"] == "rejected" and unknown["reason"].startswith("unknown op 'frobnicate'")
        assert json.loads(unknown["body"]) == {"op": "frobnicate", "path": "a", "value": 1}
        assert event(car, 4)["outcome"] == "applied"
        assert "event 1 rejected (state unchanged): test failed at markup/tshirt" in car.log()
        assert car.terminate() == 0
    assert len(on_hub(hub)) == 5


def test_two_writers_racing_set_expect_on_one_path_exactly_one_is_applied_on_every_node(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None)
    with Sidecar(["--connection-string", hub.connection_string], tmp_path / "one") as car:
        car.wait_ready()
        assert writer(car, hub, "set", "limit", "10", "--wait").stdout == "applied at 0\n"
        # --force: both reach the fold even when one check sees the other's change first; the fold decides.
        racers = [
            subprocess.Popen(
                [*STATEPUMP, "set", "limit", str(value), "--expect", "10", "--force", "--wait", *targets(car, hub)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=clean_environment(),
            )
            for value in (11, 12)
        ]
        outputs = [(r.communicate(timeout=60), r.returncode) for r in racers]
        codes = sorted(code for _, code in outputs)
        assert codes == [0, 6], outputs
        winner = next(out for (out, _), code in outputs if code == 0)
        loser = next(out for (out, _), code in outputs if code == 6)
        assert winner.startswith("applied at ") and loser.startswith("rejected at ")
        assert "test failed at limit: 10 != 1" in loser  # the winner's 11 or 12
        won = int(winner.split()[-1])
        value = car.state("limit")
        assert value in (11, 12)
        outcomes = {n: event(car, n)["outcome"] for n in (1, 2)}
        assert outcomes[won] == "applied" and sorted(outcomes.values()) == ["applied", "rejected"]
        # Another node, replaying the same log from the start, decides the same.
        with Sidecar(["--connection-string", hub.connection_string], tmp_path / "two") as other:
            other.wait_status(lambda s: s["ready"] and s["sequence"] == 2, "the second node to catch up")
            assert other.state("limit") == value
            assert {n: event(other, n)["outcome"] for n in (1, 2)} == outcomes
            assert other.terminate() == 0
        assert car.terminate() == 0


def test_a_custom_reducer_raising_rejected_is_a_no_op_and_the_pump_stays_ready(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None)
    send(hub.connection_string, [b"{}", b'"refuse"', b"{}"])
    env = {**clean_environment(), "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    flags = ["--connection-string", hub.connection_string, "--reducer", "tests.reliability.explosive:picky"]
    with Sidecar(flags, tmp_path, env=env) as car:
        status = car.wait_status(lambda s: s["ready"] and s["sequence"] == 2, "event 2 to be applied")
        assert status["events_rejected"] == 1 and status["poison_events"] == 0 and status["not_ready_reason"] is None
        assert status["last_rejected_event"] == {
            "sequence": 1,
            "reason": "the picky reducer refuses this event on purpose",
        }
        assert car.state() == {"n": 2}
        assert event(car, 1)["outcome"] == "rejected" and event(car, 1)["body"] == '"refuse"'
        assert "statepump_events_rejected_total 1.0" in car.metrics()
        code, _, body = car.get("/v1/events/7")
        assert code == 404 and "it keeps 0..2" in json.loads(body)["error"]
        send(hub.connection_string, [b"{}"])
        car.wait_status(lambda s: s["sequence"] == 3, "a later event to be applied")
        assert car.state() == {"n": 3}
        assert car.terminate() == 0
