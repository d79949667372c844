"""Relays as real processes: ``statepump run`` on the emulator, relays of it, and pumps fed by them.

Scaled down from the issue's 20 pumps and 10,000 live events to 3 pumps and 2,000 (each
``statepump run`` costs a Python start and about 60 MB): what is proved is the same, one hub
receiver however many pumps, no duplicate and no gap across a SIGKILLed relay, readiness passed
through, the token required over TCP. The issue's size runs with ``STATEPUMP_RELAY_FLEET=20x10000``
(pumps x live events, at most 40 pumps), outside CI; the deadlines scale with it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devservices import free_port
from devservices.emulator import EmulatorProcess
from tests.reliability.replay import send
from tests.reliability.sidecar import Sidecar

pytestmark = pytest.mark.emulator

PUMPS, LIVE = (int(n) for n in os.environ.get("STATEPUMP_RELAY_FLEET", "3x2000").split("x"))
if not (1 <= PUMPS <= 40 and LIVE >= 100):
    raise ValueError(f"STATEPUMP_RELAY_FLEET={PUMPS}x{LIVE}: 1 to 40 pumps (processes), at least 100 live events")
#: Events on the hub before the relays start: the pumps load them as the relay's snapshot.
BEFORE = 1000
#: Seconds a wait may take: a minute, and more for a bigger fleet on a loaded machine.
DEADLINE = 60.0 + PUMPS * 3 + LIVE / 100


def bodies(start: int, count: int) -> list[bytes]:
    return [json.dumps({"op": "set", "path": f"k/{i % 100}", "value": i}).encode() for i in range(start, start + count)]


def test_pumps_behind_relays_follow_the_hub_with_one_receiver_and_survive_a_killed_relay(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path, cars: list[Sidecar]
) -> None:
    hub = emulator_process(tmp_path / "hub", admin=True, partitions=1)
    send(hub.connection_string, bodies(0, BEFORE))
    first = Sidecar(["--connection-string", hub.connection_string], tmp_path / "r1", name="r1")
    cars.append(first)
    first.wait_ready()
    # A relay of the relay: hub -> r1 -> r2 -> pumps.
    second = Sidecar(["--upstream", str(first.socket)], tmp_path / "r2", name="r2")
    cars.append(second)
    second.wait_ready()
    pumps = [
        Sidecar(["--upstream", f"{second.socket},{first.socket}"], tmp_path / f"p{i}", name=f"p{i}")
        for i in range(PUMPS)
    ]
    cars.extend(pumps)
    for pump in pumps:
        status = pump.wait_ready(DEADLINE)
        assert status["sequence"] == BEFORE - 1
        assert status["snapshot_sequence"] == BEFORE - 1  # loaded from the relay, not replayed
        assert status["upstream"]["upstream"] == str(second.socket)
    assert hub.receivers() == {"$Default": 1}  # only r1 reads the hub

    half = LIVE // 2
    last = BEFORE + LIVE - 1
    sender = threading.Thread(target=send, args=(hub.connection_string, bodies(BEFORE, half)))
    sender.start()
    pumps[0].wait_status(lambda s: s["sequence"] >= BEFORE + half // 10, "the pumps to follow the live events")
    os.killpg(second.process.pid, signal.SIGKILL)  # mid-stream
    sender.join(DEADLINE)
    send(hub.connection_string, bodies(BEFORE + half, LIVE - half))

    reference = first.wait_status(lambda s: s["sequence"] == last, "the hub reader to apply every event", DEADLINE)
    expected = first.state()
    for pump in pumps:
        status = pump.wait_status(lambda s: s["sequence"] == last, "every pump to apply every event", DEADLINE)
        assert pump.state() == expected
        # No duplicate, no gap: the fold checked every number across the failover.
        assert status["duplicates_skipped"] == 0
        assert status["gap"] is None and status["events_skipped_by_gap"] == 0
        assert status["events_from_relay"] == LIVE
        assert status["upstream"]["upstream"] == str(first.socket)
        assert status["reconnects"] >= 1
        assert status["ready"]
    assert reference["events_applied"] == BEFORE + LIVE
    assert hub.receivers() == {"$Default": 1}
    # The hub's egress is one reader's, however many pumps follow (a reconnect of r1 may resend a little).
    [(group, egress)] = hub.egress().items()
    assert group == "$Default"
    assert BEFORE + LIVE <= egress["events"] <= 1.1 * (BEFORE + LIVE)
    print(f"\n{PUMPS} pumps behind relays, {LIVE} live events, r2 killed mid-stream: one state, no gap, no duplicate")


def test_a_downstream_of_a_not_ready_relay_is_not_ready_with_the_relays_reason(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path, cars: list[Sidecar]
) -> None:
    hub = emulator_process(tmp_path / "hub", partitions=1)
    send(hub.connection_string, bodies(0, 10))
    relay = Sidecar(["--connection-string", hub.connection_string], tmp_path / "r", name="r")
    cars.append(relay)
    relay.wait_ready()
    pump = Sidecar(["--upstream", str(relay.socket)], tmp_path / "p", name="p")
    cars.append(pump)
    pump.wait_ready()
    send(hub.connection_string, [b"not json: a poison event stops the relay"])
    relay.wait(lambda: not relay.ready(), "the relay to stop at the poison event")
    reason = relay.status()["not_ready_reason"]

    def refused() -> dict[str, Any] | None:
        code, _, body = pump.get("/readyz")
        return json.loads(body) if code == 503 else None

    answer = pump.wait(refused, "the downstream to be not ready")
    assert answer["reason"] == f"upstream not ready: {reason}"
    assert answer["sequence"] == 9
    assert pump.state() == relay.state()


def test_over_tcp_the_relay_needs_its_token(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path, cars: list[Sidecar]
) -> None:
    hub = emulator_process(tmp_path / "hub", partitions=1)
    send(hub.connection_string, bodies(0, 10))
    token = "relay-token-" + "x" * 20
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "wrong").write_text("w" * 32)
    port = free_port()
    relay = Sidecar(
        [
            "--connection-string",
            hub.connection_string,
            "--listen",
            f"127.0.0.1:{port}",
            "--relay-token-file",
            str(tmp_path / "token"),
        ],
        tmp_path / "r",
        name="r",
    )
    cars.append(relay)
    relay.wait_ready()
    for headers in ({}, {"Authorization": "Bearer " + "w" * 32}):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/v1/events?after=-1", headers=headers)
        assert connection.getresponse().status == 401
        connection.close()
    wrong = Sidecar(
        [
            "--upstream",
            f"http://127.0.0.1:{port}",
            "--relay-token-file",
            str(tmp_path / "wrong"),
            "--retry-seconds",
            "2",
        ],
        tmp_path / "w",
        name="w",
    )
    cars.append(wrong)
    assert wrong.wait_exit(60) == 1
    assert "401" in wrong.log() or "Bearer" in wrong.log()
    right = Sidecar(
        ["--upstream", f"http://127.0.0.1:{port}", "--relay-token-file", str(tmp_path / "token")],
        tmp_path / "ok",
        name="ok",
    )
    cars.append(right)
    right.wait_ready()
    assert right.state() == relay.state()
    for car in (relay, wrong, right):
        assert token not in car.log() and "w" * 32 not in car.log()
    assert "refused /v1/events from 127.0.0.1" in relay.log()
