"""The default gunicorn example for real: two sync workers, each embedding a pump fed by the node's sidecar."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devservices import free_port
from tests.examples.conftest import Hub
from tests.examples.served import Served, eventually, http_client, wait_until_ready
from tests.examples.test_gunicorn import start_sidecar

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Served, Hub, httpx.Client, Path]]:
    data_dir = tmp_path_factory.mktemp("sidecar")
    socket_dir = Path(tempfile.mkdtemp(prefix="spr-", dir="/tmp"))
    socket = socket_dir / "statepump.sock"
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
        {"STATEPUMP_SOCKET": str(socket), "BIND": f"127.0.0.1:{port}", "WORKERS": "2"},
        data_dir / "gunicorn.log",
    )
    hub: Hub | None = None
    try:
        start_sidecar(sidecar, socket)
        hub = Hub(json.loads((data_dir / "embedded.json").read_text())["connection_string"])
        gunicorn.start()
        with http_client(f"http://127.0.0.1:{port}") as http:
            wait_until_ready(gunicorn, http)
            yield sidecar, gunicorn, hub, http, socket
    finally:
        gunicorn.stop()
        sidecar.stop()
        if hub is not None:
            hub.close()
        shutil.rmtree(socket_dir, ignore_errors=True)


def test_every_worker_reads_one_version_from_its_own_relay_fed_pump(
    served: tuple[Served, Served, Hub, httpx.Client, Path],
) -> None:
    _, gunicorn, hub, http, socket = served
    pattern = rf"worker (\d+) follows the sidecar on {re.escape(str(socket))} with its own pump"

    def both_workers() -> set[int]:
        pids = {int(pid) for pid in re.findall(pattern, gunicorn.log())}
        assert len(pids) == 2, gunicorn.log()
        return pids

    eventually(both_workers, what="two workers with a pump each")
    n = hub.send(
        {"ops": [{"op": "set", "path": "price", "value": 10}, {"op": "set", "path": "markup", "value": 2}]},
        partition="0",
    )
    for _ in range(6):  # requests are spread over both workers
        response = http.get("/config/price", params={"min_sequence": n, "timeout": 20})
        assert response.status_code == 200, response.text
        assert response.json() == 10
        assert int(response.headers["Statepump-Sequence"]) >= n
    m = hub.send(
        {"ops": [{"op": "set", "path": "price", "value": 20}, {"op": "set", "path": "markup", "value": 3}]},
        partition="0",
    )
    for _ in range(6):
        pair = http.get("/pair/price/markup")
        assert pair.json() in ({"price": 10, "markup": 2}, {"price": 20, "markup": 3})  # never a mix
    assert http.get("/config/price", params={"min_sequence": m, "timeout": 20}).json() == 20
    readiness = http.get("/readyz").json()
    assert readiness["ready"] and readiness["source"] == "relay"
