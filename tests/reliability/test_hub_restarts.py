"""The hub process dies (SIGKILL) and comes back, several times, while events flow into ``statepump run``."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyrsistent import thaw

from devservices.emulator import EmulatorProcess
from statepump.emulator import Emulator
from statepump.pump import Pump
from statepump.sources.eventhub import EventHubSource
from tests.reliability.replay import read_everything, replay, send
from tests.reliability.sidecar import Sidecar

pytestmark = pytest.mark.emulator

TOTAL = 10_000
KILLS = 3


def bodies(first: int, count: int) -> list[bytes]:
    # Overwrites of a small key space: a duplicate or a gap changes the final values.
    return [b'{"op":"set","path":"k/%d","value":%d}' % (i % 97, i) for i in range(first, first + count)]


def applied_through(last: int) -> Callable[[dict[str, Any]], bool]:
    return lambda status: bool(status["sequence"] == last)


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match[1])


def test_pump_survives_repeated_hub_kills_with_no_duplicate_and_no_gap(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(tmp_path / "hub")
    with Sidecar(["--connection-string", hub.connection_string, "--retry-seconds", "60"], tmp_path) as car:
        car.wait_ready()
        lags: list[int] = []
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                try:
                    lag = car.status()["lag_events"]
                except (OSError, AssertionError):
                    continue
                if lag is not None:
                    lags.append(lag)
                sampling.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        per_round = TOTAL // (KILLS + 1)
        sent = 0
        try:
            for round_ in range(KILLS + 1):
                # Send a burst the pump cannot have finished applying (it takes it in several batches, so
                # lag shows between them), then kill the hub under it.
                send(hub.connection_string, bodies(sent, per_round))
                sent += per_round
                if round_ < KILLS:
                    hub.kill()
                    # While the hub is down the sidecar keeps answering with its last good version.
                    status = car.status()
                    assert status["sequence"] <= sent - 1
                    hub.start()
                    # Each kill its own outage: the pump is back and has everything before the next burst.
                    car.wait_status(applied_through(sent - 1), f"event {sent - 1} after a kill", 120)
            final = car.wait_status(lambda s: s["sequence"] == TOTAL - 1, f"event {TOTAL - 1} to be applied", 120)
        finally:
            sampling.set()
            sampler.join(5)

        events = asyncio.run(read_everything(hub.connection_string))
        assert len(events) == TOTAL, "the emulator lost or invented events across SIGKILL"
        assert car.state() == replay(events)
        assert final["events_from_hub"] == TOTAL, final  # each event applied exactly once: no duplicate, no gap
        assert final["events_applied"] == TOTAL
        assert final["gap"] is None and final["poison_events"] == 0
        assert final["reconnects"] >= KILLS, (final, car.log()[-4000:])
        assert final["ready"] is True and final["lag_events"] == 0
        assert max(lags) > 0, "lag was never visible while events were flowing"

        text = car.metrics()
        assert metric(text, "statepump_reconnects_total") >= KILLS
        assert metric(text, "statepump_sequence") == TOTAL - 1
        assert metric(text, "statepump_lag_events") == 0
        assert "connection lost" in car.log() or "retry" in car.log()
        assert car.terminate() == 0


async def test_receive_sessions_are_recycled_without_a_duplicate_or_a_gap(emulator: Emulator) -> None:
    # The SDK keeps every delivery tag of a link: the source replaces its session every N events.
    await asyncio.to_thread(send, emulator.connection_string, bodies(0, 5000))
    source = EventHubSource(connection_string=emulator.connection_string, recycle_after=700)
    pump: Pump[Any] = Pump(source)
    async with pump:
        await pump.wait_for(4999, timeout=60)
        status = pump.status()
    assert source.recycles >= 4  # sessions end after the batch that reaches 700 (batches up to 1000)
    assert status["events_applied"] == 5000 and status["gap"] is None
    events = await read_everything(emulator.connection_string)
    assert thaw(pump.state) == replay(events)
