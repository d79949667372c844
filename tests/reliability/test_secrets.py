"""No secret ever leaves statepump: a full life with recognisable keys, and everything it says is searched for them."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from devservices import free_port
from devservices.azurite import AzuriteProcess
from devservices.emulator import EmulatorProcess
from tests.reliability.replay import send
from tests.reliability.sidecar import Sidecar, clean_environment

pytestmark = pytest.mark.emulator

ACCOUNT = "secretsacct"


def storage_connection_string(port: int, key: str) -> str:
    endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
    return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};BlobEndpoint={endpoint};"


def hub_connection_string(port: int, key: str) -> str:
    return (
        f"Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName=RootManageSharedAccessKey;"
        f"SharedAccessKey={key};EntityPath=hub;UseDevelopmentEmulator=true"
    )


def cli(*args: str) -> str:
    """Run a statepump command to its end; everything it printed."""
    result = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=120, env=clean_environment(), check=False
    )
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_no_secret_in_logs_status_metrics_errors_or_dead_letters(
    emulator_process: Callable[..., EmulatorProcess], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_key = "HubKey" + secrets.token_urlsafe(30)
    storage_key = base64.b64encode(b"StorageKey" + secrets.token_bytes(54)).decode()
    wrong_key = base64.b64encode(b"WrongKey" + secrets.token_bytes(56)).decode()
    secret_values = [hub_key, storage_key, wrong_key]

    monkeypatch.setenv("AZURITE_ACCOUNTS", f"{ACCOUNT}:{storage_key}")
    azurite = AzuriteProcess(tmp_path / "azurite", log_path=tmp_path / "azurite.log")
    azurite.start(retry_port=True)
    try:
        hub = emulator_process(tmp_path / "hub")
        hub_cs = hub_connection_string(hub.port, hub_key)
        storage_cs = storage_connection_string(azurite.port, storage_key)
        with ContainerClient.from_connection_string(storage_cs, "snapshots") as container:
            container.create_container()
        said: list[str] = []

        # Errors before anything runs: bad settings, a malformed connection string, unreachable and refusing stores.

        def run(n: int) -> list[str]:  # each its own data directory and socket: they run at once
            return ["statepump", "run", "--data-dir", str(tmp_path / f"data{n}"), "--retry-seconds", "2"]

        unreachable = storage_connection_string(free_port(), storage_key)
        refused = storage_connection_string(azurite.port, wrong_key)
        blob = ["--snapshot-container", "snapshots", "--storage-connection-string"]
        failing = [
            [*run(0), "--connection-string", hub_cs, "--listen", "10.1.2.3:80"],
            [*run(1), "--connection-string", f"Endpoint=sb://127.0.0.1:1/;SharedAccessKey={hub_key}"],
            [*run(2), "--connection-string", f"SharedAccessKey={hub_key};Endpoint"],
            [*run(3), "--connection-string", hub_connection_string(free_port(), hub_key)],
            [*run(4), "--connection-string", hub_cs, *blob, unreachable],
            [*run(5), "--connection-string", hub_cs, *blob, refused],
            ["snapshotter", "--connection-string", hub_cs, *blob, refused, "--retry-seconds", "2"],
        ]
        with concurrent.futures.ThreadPoolExecutor(len(failing)) as pool:
            outputs = list(pool.map(lambda args: cli(*args), failing))
        assert all(not out.startswith("exit 0") for out in outputs), outputs
        said += outputs

        # A full life: catch-up, poison events skipped to a dead-letter file, a hub restart, a snapshot, shutdown.
        send(hub_cs, [b'{"op":"set","path":"a","value":1}', b"{not json", b'{"op":"set","path":"b","value":2}'])
        dead = tmp_path / "dead.jsonl"
        flags = [
            "--connection-string",
            hub_cs,
            "--snapshot-container",
            "snapshots",
            "--storage-connection-string",
            storage_cs,
            "--poison-policy",
            "skip",
            "--dead-letter",
            str(dead),
            "--log-level",
            "DEBUG",
            "--retry-seconds",
            "60",
        ]
        said.append(cli("snapshotter", *flags))
        assert said[-1].startswith("exit 0"), said[-1]
        with Sidecar(flags, tmp_path / "sidecar") as car:
            car.wait_status(lambda s: s["ready"] and s["sequence"] == 2, "event 2 to be applied")
            hub.kill()
            said.append(json.dumps(car.status()))
            hub.start()
            send(hub_cs, [b'{"op":"set","path":"c","value":3}'])
            status = car.wait_status(lambda s: s["sequence"] == 3 and s["reconnects"] > 0, "event 3 after a restart")
            said.append(json.dumps(status))
            said.append(car.metrics())
            for target in ("/v1/state", "/readyz", "/healthz", "/v1/state/missing", "/v1/nothing"):
                said.append(repr(car.get(target)))
            assert car.terminate() == 0
            said += [car.log(), car.output()]
        said.append(dead.read_text())
        assert '"sequence":1' in said[-1]
        said.append(hub.log_path.read_text(errors="replace"))
    finally:
        azurite.stop()

    everything = "\n".join(said)
    assert "poison event 1" in everything and "statepump_reconnects" in everything  # it did say things
    for value in secret_values:
        for fragment in (value, value[:16], value[-16:]):
            assert fragment not in everything, (
                f"a secret leaked: ...{everything[everything.find(fragment) - 200 :][:400]}"
            )
