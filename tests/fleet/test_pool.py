"""A fleet of ``statepump run`` processes on one partition, sharing a pool of consumer groups.

The emulator enforces the service's 5 receivers per partition and consumer group. With a pool of
3 groups, 15 sidecars fill it exactly; a 16th is not ready with the one-line reason until a
neighbour stopped with SIGTERM frees its slot, and a rolling restart finds the freed slots at
once. Each sidecar starts with a tiny state (200 events, no snapshot), so a start costs about
what Python, the imports and one connection cost.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devservices.emulator import EmulatorProcess
from tests.reliability.replay import send
from tests.reliability.sidecar import Sidecar, poll_until

pytestmark = pytest.mark.emulator

POOL = "statepump-web-{1..3}"
GROUPS = ("statepump-web-1", "statepump-web-2", "statepump-web-3")
SLOTS = 5 * len(GROUPS)
EVENTS = 200
FULL = "all 3 consumer groups of partition 0 have 5 readers; add groups or use a relay"


def bodies(start: int, count: int) -> list[bytes]:
    return [json.dumps({"op": "set", "path": f"k/{i % 50}", "value": i}).encode() for i in range(start, start + count)]


@pytest.fixture
def hub(emulator_process: Callable[..., EmulatorProcess], tmp_path: Path) -> EmulatorProcess:
    hub = emulator_process(None, admin=True, partitions=1, extra=["--consumer-group", POOL])
    send(hub.connection_string, bodies(0, EVENTS))
    return hub


def start(hub: EmulatorProcess, workdir: Path, node: str) -> Sidecar:
    flags = ["--connection-string", hub.connection_string, "--consumer-group", POOL, "--node-id", node]
    return Sidecar(flags, workdir / node, name=node)


def timed_ready(car: Sidecar, started: float, timeout: float = 60.0) -> float:
    car.wait_ready(timeout)
    return time.monotonic() - started


def test_fifteen_pumps_fill_a_pool_of_three_and_a_sixteenth_waits_for_a_slot(
    hub: EmulatorProcess, tmp_path: Path, cars: list[Sidecar]
) -> None:
    began = time.monotonic()
    fleet = [start(hub, tmp_path, f"web-{i}") for i in range(SLOTS)]
    cars.extend(fleet)
    for car in fleet:
        car.wait_ready(90)
    print(f"\n{SLOTS} sidecars ready {time.monotonic() - began:.1f} s after the first started")
    assert hub.receivers() == dict.fromkeys(GROUPS, 5)
    expected = fleet[0].state()
    held: dict[str, int] = {}
    for car in fleet:
        status = car.status()
        assert status["sequence"] == EVENTS - 1 and status["gap"] is None and status["duplicates_skipped"] == 0
        assert car.state() == expected  # every node folded the same events to the same state
        assert status["consumer_group"] in GROUPS and status["consumer_groups"] == 3
        held[status["consumer_group"]] = held.get(status["consumer_group"], 0) + 1
    assert held == dict.fromkeys(GROUPS, 5)

    # The sixteenth: not ready, with the one line, and counting the refusals.
    extra = start(hub, tmp_path, "web-extra")
    cars.append(extra)
    status = extra.wait_status(lambda s: s["not_ready_reason"] == FULL, "the 16th to say the pool is full")
    assert not status["ready"] and status["consumer_group"] is None and status["quota_refusals"] >= 3
    code, _, body = extra.get("/readyz")
    assert code == 503 and FULL in body.decode()
    metrics = extra.metrics()
    assert "statepump_quota_refusals_total" in metrics and "statepump_consumer_groups 3.0" in metrics
    assert extra.log().count(FULL) == 1  # said once, however many rounds it retried
    assert hub.receivers() == dict.fromkeys(GROUPS, 5)  # it took no slot, even for a moment of its rounds

    # One neighbour stops: its link detaches before it exits, and the 16th takes the slot.
    leaving = fleet[3]
    group = leaving.status()["consumer_group"]
    leaving.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert leaving.wait_exit(30) == 0
    exited = time.monotonic()
    extra.wait_ready(30)
    ready = time.monotonic()
    print(
        f"the 16th was ready {ready - signalled:.2f} s after its neighbour got SIGTERM "
        f"({ready - exited:.2f} s after it exited, which took {exited - signalled:.2f} s)"
    )
    assert ready - exited < 5.0
    assert extra.status()["consumer_group"] == group
    assert hub.receivers() == dict.fromkeys(GROUPS, 5)
    assert 'statepump_consumer_group{consumer_group="' + group + '"} 1.0' in extra.metrics()

    # They all follow the live events from there, to one state.
    send(hub.connection_string, bodies(EVENTS, 100))
    remaining = [car for car in fleet if car is not leaving] + [extra]
    for car in remaining:
        car.wait_status(lambda s: s["sequence"] == EVENTS + 99, "every pump to apply the new events")
    final = remaining[0].state()
    assert all(car.state() == final for car in remaining)


def test_a_rolling_restart_finds_the_freed_slots_at_once(
    hub: EmulatorProcess, tmp_path: Path, cars: list[Sidecar]
) -> None:
    # The normal start: one sidecar alone on a pool with room.
    began = time.monotonic()
    alone = start(hub, tmp_path, "web-alone")
    cars.append(alone)
    normal = timed_ready(alone, began)
    assert alone.terminate() == 0
    poll_until(lambda: not hub.receivers(), 10, "the lone sidecar's slot to be free")

    fleet = [start(hub, tmp_path, f"web-{i}") for i in range(10)]
    cars.extend(fleet)
    for car in fleet:
        car.wait_ready(90)
    assert sum(hub.receivers().values()) == 10
    restarts = []
    for i in range(4):  # stop one, start its replacement (the same node id, as a StatefulSet would), repeat
        old = fleet[i]
        old.process.send_signal(signal.SIGTERM)
        assert old.wait_exit(30) == 0
        began = time.monotonic()
        replacement = start(hub, tmp_path / "replacements", f"web-{i}")
        cars.append(replacement)
        restarts.append(timed_ready(replacement, began))
        fleet[i] = replacement
    print(f"\nnormal start {normal:.2f} s; replacements ready after " + ", ".join(f"{t:.2f}" for t in restarts) + " s")
    # One refused try (about 1.5 s with the SDK) is the most a replacement may spend beyond a normal start.
    assert max(restarts) < normal + 2.0
    assert sum(hub.receivers().values()) == 10
    statuses: list[dict[str, Any]] = [car.status() for car in fleet]
    assert {s["sequence"] for s in statuses} == {EVENTS - 1}
