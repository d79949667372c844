"""A herd of ``statepump run`` processes catching up through one throughput unit of egress.

The emulator paces what every reader receives together to 4,096 events/s per unit (one second of
burst), without an error, as the service does. Scaled down from the issue's 10 pumps x 50,000
events (500,000 events: two minutes of one unit) to 5 x 8,000: what is shown is the same, the herd
is slowed to the unit's arithmetic and every pump still reaches the same state with no duplicate
and no gap. The issue's size runs with ``STATEPUMP_HERD=10x50000`` (pumps x events), outside CI.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devservices.emulator import EmulatorProcess
from tests.reliability.replay import send
from tests.reliability.sidecar import Sidecar

pytestmark = pytest.mark.emulator

PUMPS, EVENTS = (int(n) for n in os.environ.get("STATEPUMP_HERD", "5x8000").split("x"))
#: One throughput unit's egress, and the burst the pacer allows (one second of it).
EVENTS_PER_SECOND = 4_096


def test_a_herd_through_one_throughput_unit_is_slowed_and_reaches_one_state(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path, cars: list[Sidecar]
) -> None:
    hub = emulator_process(None, partitions=1, extra=["--throughput-units", "1", "--consumer-group", "web-{1..2}"])
    send(
        hub.connection_string,
        [json.dumps({"op": "set", "path": f"k/{i % 500}", "value": i}).encode() for i in range(EVENTS)],
    )
    began = time.monotonic()
    for i in range(PUMPS):
        flags = ["--connection-string", hub.connection_string, "--consumer-group", "web-{1..2}", "--node-id", f"n{i}"]
        cars.append(Sidecar(flags, tmp_path / f"p{i}", name=f"p{i}"))
    deadline = 60 + 2 * PUMPS * EVENTS / EVENTS_PER_SECOND
    for car in cars:
        car.wait_ready(max(1.0, deadline - (time.monotonic() - began)))
    elapsed = time.monotonic() - began
    total = PUMPS * EVENTS
    floor = (total - EVENTS_PER_SECOND) / EVENTS_PER_SECOND  # the burst comes free, the rest at the unit's rate
    print(f"\n{PUMPS} pumps x {EVENTS} events = {total} through 1 TU: {elapsed:.1f} s (the unit's floor {floor:.1f} s)")
    assert elapsed >= floor * 0.95  # slowed to the unit's rate: no herd reads faster than its egress
    expected = cars[0].state()
    for car in cars:
        status = car.status()
        assert status["sequence"] == EVENTS - 1 and status["events_from_hub"] == EVENTS
        assert status["duplicates_skipped"] == 0 and status["gap"] is None and status["events_skipped_by_gap"] == 0
        assert car.state() == expected
