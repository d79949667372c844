"""The embedded examples never answer from a state their pump refuses, and they log statepump's lines (issue 18).

The first hour's trap: a data directory holding another hub's snapshot (``make run``'s,
at sequence 1000) against a hub that never got that far. The pump stops for good
(``PositionAheadError``); the apps must answer 503 with the reason, not that state.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyrsistent import freeze

from devservices import free_port
from examples.pump_settings import EXAMPLES_DATA_DIR, hub_settings
from statepump.core.configops import config
from statepump.core.events import Version
from statepump.stores.directory import DirectoryStore
from statepump.stores.snapshots import write_snapshot
from tests.examples.conftest import Hub
from tests.examples.served import Served, eventually, http_client
from tests.examples.test_embedded import _argv

pytestmark = pytest.mark.emulator


def _foreign_snapshot(data_dir: Path, partition: str) -> None:
    store = DirectoryStore(data_dir, "hub", partition, "snapshots")
    version = Version(freeze({"markup": {"tshirt": 0.5}}), 1000, datetime.now(UTC), partition)
    asyncio.run(write_snapshot(store, version, config, eventhub="hub", events_folded=1001))


@pytest.mark.parametrize(("kind", "partition"), [("flask", "4"), ("fastapi", "5")])
def test_a_pump_that_stopped_for_good_is_a_503_with_the_reason_on_every_read(
    kind: str, partition: str, hub: Hub, tmp_path: Path
) -> None:
    _foreign_snapshot(tmp_path, partition)
    port = free_port()
    env = {
        "STATEPUMP_CONNECTION_STRING": hub.connection_string,
        "STATEPUMP_PARTITION": partition,
        "STATEPUMP_DATA_DIR": str(tmp_path),
    }
    served = Served(kind, _argv(kind, port), env, tmp_path / f"{kind}.log")
    served.start()
    try:
        with http_client(f"http://127.0.0.1:{port}") as http:

            def refused() -> dict[str, str]:
                served.assert_running()
                response = http.get("/readyz")
                assert response.status_code == 503, response.text
                assert "PositionAheadError" in response.json()["reason"], response.text
                return dict(response.json())

            eventually(refused, what=f"{kind}'s /readyz naming the failure")
            for path in ("/config/", "/config/markup/tshirt", "/quote/tshirt"):
                response = http.get(path)
                assert response.status_code == 503, (path, response.text)
                assert response.json()["error"].startswith("not ready: PositionAheadError"), response.text
                assert "0.5" not in response.text  # the other hub's state is never shown
    finally:
        served.stop()
    # statepump's own log lines reach the app's stderr.
    assert "INFO statepump.pump: snapshot loaded: snapshots/hub/" in served.log(), served.log()


def test_the_examples_have_their_own_data_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hub = "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub;UseDevelopmentEmulator=true"
    monkeypatch.setenv("STATEPUMP_CONNECTION_STRING", hub)
    monkeypatch.delenv("STATEPUMP_DATA_DIR", raising=False)
    monkeypatch.delenv("STATEPUMP_CONFIG", raising=False)
    assert hub_settings().data_dir == EXAMPLES_DATA_DIR != Path(".statepump")
    monkeypatch.setenv("STATEPUMP_DATA_DIR", str(tmp_path))
    assert hub_settings().data_dir == tmp_path
