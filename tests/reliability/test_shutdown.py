"""SIGTERM to ``statepump run``: requests in flight are answered, the socket file goes, exit status 0."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devservices.emulator import EmulatorProcess
from tests.reliability.replay import send
from tests.reliability.sidecar import Sidecar

pytestmark = pytest.mark.emulator


def test_sigterm_answers_a_waiting_request_removes_the_socket_and_exits_0(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path
) -> None:
    hub = emulator_process(None)
    send(hub.connection_string, [b'{"op":"set","path":"a","value":1}'])
    with Sidecar(["--connection-string", hub.connection_string], tmp_path) as car:
        car.wait_status(lambda s: s["ready"] and s["sequence"] == 0, "event 0 to be applied")
        answers: list[tuple[int, bytes]] = []
        errors: list[BaseException] = []

        def wait_for_event_1000() -> None:
            try:
                code, _, body = car.get("/v1/state/a?min_sequence=1000&timeout=60", timeout=60)
                answers.append((code, body))
            except BaseException as exc:  # the assertion below reports it
                errors.append(exc)

        waiter = threading.Thread(target=wait_for_event_1000)
        waiter.start()
        car.wait(
            lambda: re.search(r"^statepump_http_waiting 1\.0$", car.metrics(), re.MULTILINE),
            "the request to be waiting",
        )
        started = time.monotonic()
        assert car.terminate() == 0, car.describe()
        waiter.join(30)
        assert not errors, f"the waiting request got no answer: {errors[0]!r}"
        assert len(answers) == 1
        code, body = answers[0]
        assert code in (503, 504), (code, body)
        assert time.monotonic() - started < 15, "shutdown waited for the request's own timeout"
        assert not car.socket.exists()
        assert "Traceback" not in car.log()
        assert "stopping" in car.log()
