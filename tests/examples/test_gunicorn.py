"""The gunicorn example for real: a ``statepump run`` sidecar (on its embedded emulator) and gunicorn with two
sync workers that read the configuration through ``statepump.client.Client``, answering real HTTP requests."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devservices import free_port
from statepump.client import Client, SidecarError
from tests.examples.conftest import Hub
from tests.examples.served import Served, eventually, http_client, wait_until_ready

pytestmark = pytest.mark.emulator

SEQUENCE = "Statepump-Sequence"


@dataclass
class Deployment:
    sidecar: Served
    gunicorn: Served
    socket: Path
    hub: Hub
    http: httpx.Client

    def start_sidecar(self) -> None:
        start_sidecar(self.sidecar, self.socket)


def start_sidecar(sidecar: Served, socket: Path) -> None:
    """Start ``statepump run`` and wait until its socket answers ``/readyz`` with 200."""

    def ready() -> None:
        sidecar.assert_running()
        try:
            with Client(socket, timeout=2) as client:
                assert client.ready(), "not ready"
        except SidecarError as exc:
            raise AssertionError(str(exc)) from None

    sidecar.start()
    eventually(ready, timeout=60, what="the sidecar ready")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    data_dir = tmp_path_factory.mktemp("sidecar")
    # A Unix socket path must fit in 108 bytes; pytest's temporary paths may not.
    socket_dir = Path(tempfile.mkdtemp(prefix="spx-", dir="/tmp"))
    socket = socket_dir / "statepump.sock"
    # No hub configured: `statepump run` starts its embedded emulator under the data directory.
    sidecar = Served(
        "statepump run",
        ["-m", "statepump", "run"],
        {"STATEPUMP_DATA_DIR": str(data_dir), "STATEPUMP_SOCKET": str(socket)},
        data_dir / "sidecar.log",
    )
    port = free_port()
    gunicorn = Served(
        "gunicorn",
        ["-m", "gunicorn", "-c", "examples/gunicorn/config.py"],
        # The plain-socket variant (app.py); test_gunicorn_relayed.py runs the default, a pump per worker.
        {
            "STATEPUMP_SOCKET": str(socket),
            "BIND": f"127.0.0.1:{port}",
            "WORKERS": "2",
            "STATEPUMP_EXAMPLE_CLIENT": "socket",
        },
        data_dir / "gunicorn.log",
    )
    hub: Hub | None = None
    try:
        start_sidecar(sidecar, socket)
        embedded = json.loads((data_dir / "embedded.json").read_text())
        hub = Hub(embedded["connection_string"])
        gunicorn.start()
        with http_client(f"http://127.0.0.1:{port}") as http:
            wait_until_ready(gunicorn, http)
            yield Deployment(sidecar, gunicorn, socket, hub, http)
    finally:
        gunicorn.stop()
        sidecar.stop()
        if hub is not None:
            hub.close()
        shutil.rmtree(socket_dir, ignore_errors=True)


def _value(deployment: Deployment, path: str, expected: object) -> httpx.Response:
    response = deployment.http.get(f"/config/{path}")
    assert response.status_code == 200, response.text
    assert response.json() == expected
    return response


def test_each_worker_makes_its_own_client_after_the_fork(deployment: Deployment) -> None:
    assert deployment.gunicorn.process is not None
    master = deployment.gunicorn.process.pid
    pattern = rf"worker (\d+) reads the configuration from the sidecar on {re.escape(str(deployment.socket))}"

    def both_workers() -> set[int]:
        pids = {int(pid) for pid in re.findall(pattern, deployment.gunicorn.log())}
        assert len(pids) == 2, deployment.gunicorn.log()
        return pids

    assert master not in eventually(both_workers, what="two workers with a client each")


def test_serves_the_sidecars_value_with_its_sequence_number(deployment: Deployment) -> None:
    n = deployment.hub.send({"op": "set", "path": "greeting", "value": "hello"}, partition="0")
    response = eventually(lambda: _value(deployment, "greeting", "hello"), what="the greeting served")
    assert response.headers[SEQUENCE] == str(n)
    with Client(deployment.socket) as client:
        assert client.get_with_sequence("greeting") == ("hello", n)
    # Both workers answer (requests are spread over them); each one from the sidecar.
    for _ in range(6):
        assert _value(deployment, "greeting", "hello").headers[SEQUENCE] == str(n)


def test_the_value_changes_after_an_event_is_sent(deployment: Deployment) -> None:
    first = deployment.hub.send({"op": "set", "path": "theme/colour", "value": "red"}, partition="0")
    eventually(lambda: _value(deployment, "theme/colour", "red"), what="red served")
    second = deployment.hub.send({"op": "set", "path": "theme/colour", "value": "blue"}, partition="0")
    response = eventually(lambda: _value(deployment, "theme/colour", "blue"), what="blue served")
    assert second > first
    assert response.headers[SEQUENCE] == str(second)


def test_read_your_writes_through_the_sidecar(deployment: Deployment) -> None:
    expected = deployment.hub.last_sequence("0") + 1
    with ThreadPoolExecutor(1) as pool, http_client(str(deployment.http.base_url)) as other:
        waiting = pool.submit(other.get, "/config/orders/7", params={"min_sequence": expected, "timeout": 20})
        n = deployment.hub.send({"op": "set", "path": "orders/7", "value": "paid"}, partition="0")
        response = waiting.result(timeout=30)
    assert n == expected
    assert response.status_code == 200, response.text
    assert response.json() == "paid"
    assert int(response.headers[SEQUENCE]) >= n

    n = deployment.hub.send({"op": "set", "path": "orders/7", "value": "shipped"}, partition="0")
    response = deployment.http.get("/config/orders/7", params={"min_sequence": n, "timeout": 10})
    assert response.status_code == 200, response.text
    assert response.json() == "shipped"


def test_timeouts_missing_paths_and_bad_queries_get_clear_answers(deployment: Deployment) -> None:
    never = deployment.hub.last_sequence("0") + 1000
    started = time.monotonic()
    response = deployment.http.get("/config/orders", params={"min_sequence": never, "timeout": 0.3})
    assert response.status_code == 504, response.text
    assert str(never) in response.json()["error"]
    assert 0.3 <= time.monotonic() - started < 10

    missing = deployment.http.get("/config/no/such/path")
    assert missing.status_code == 404
    assert missing.json()["path"] == "no/such/path"
    assert "no/such/path" in missing.json()["error"]

    bad = deployment.http.get("/config/greeting", params={"min_sequence": "soon"})
    assert bad.status_code == 400
    assert "min_sequence" in bad.json()["error"]


def test_workers_answer_503_while_the_sidecar_is_down_and_recover_when_it_is_back(deployment: Deployment) -> None:
    eventually(lambda: _value(deployment, "greeting", "hello"), what="the greeting served")
    last = deployment.hub.last_sequence("0")
    deployment.sidecar.stop()

    def unavailable() -> httpx.Response:
        response = deployment.http.get("/config/greeting")
        assert response.status_code == 503, response.text
        return response

    # Every worker must notice (each has its own kept-alive connection), so ask several times.
    for _ in range(6):
        down = eventually(unavailable, what="503 with the sidecar down")
        assert "no statepump sidecar" in down.json()["error"]
    readiness = deployment.http.get("/readyz")
    assert readiness.status_code == 503
    assert "no statepump sidecar" in readiness.json()["reason"]
    deployment.gunicorn.assert_running()

    # The restarted sidecar rebuilds the state from its hub's log on disk; the workers reconnect.
    deployment.start_sidecar()
    for _ in range(6):
        again = eventually(lambda: _value(deployment, "greeting", "hello"), what="the greeting served again")
        assert again.headers[SEQUENCE] == str(last)
    assert deployment.http.get("/readyz").status_code == 200
