"""A snapshot container that does not exist yet (issue 18): created on the local development account
(Azurite's devstoreaccount1) or with --create-containers yes; otherwise one line naming the flags."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from devservices.azurite import Azurite
from devservices.emulator import EmulatorProcess
from tests.reliability.sidecar import Sidecar, clean_environment

pytestmark = [pytest.mark.emulator, pytest.mark.azurite]


def _fresh(name: str) -> str:
    return f"{name}{os.getpid()}{time.monotonic_ns() % 10**9}"


def _exists(azurite: Azurite, container: str) -> bool:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        return bool(service.get_container_client(container).exists())


def test_run_and_the_snapshotter_create_the_container_on_azurite_and_name_the_flag_otherwise(
    emulator_process: Callable[..., EmulatorProcess], azurite: Azurite, tmp_path: Path
) -> None:
    hub = emulator_process(None, partitions=1)
    snaps = _fresh("snaps")
    flags = ["--connection-string", hub.connection_string, "--snapshot-container", snaps,
             "--storage-connection-string", azurite.connection_string]

    refused = subprocess.run(
        [sys.executable, "-m", "statepump", "run", "--data-dir", str(tmp_path / "d"), *flags,
         "--create-containers", "no", "--socket", str(tmp_path / "no.sock")],
        capture_output=True, text=True, timeout=60, check=False, env=clean_environment(),
    )
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith(f"statepump run: --snapshot-container: container '{snaps}' does not exist at "), last
    assert "check the name, or create it: --create-containers yes" in last
    assert "AccountKey" not in refused.stderr
    assert not _exists(azurite, snaps)

    # The default on Azurite's development account: the sidecar creates the container at start.
    with Sidecar(flags, tmp_path / "run") as car:
        assert car.wait_ready()["snapshot_sequence"] is None
        assert _exists(azurite, snaps)
        assert car.terminate() == 0

    other = _fresh("snapshotter")
    sent = subprocess.run(
        [sys.executable, "-m", "statepump", "send", "--connection-string", hub.connection_string,
         '{"op": "set", "path": "a", "value": 1}'],
        capture_output=True, text=True, timeout=60, check=False, env=clean_environment(),
    )
    assert sent.stdout.split() == ["0"], sent.stderr
    written = subprocess.run(
        [sys.executable, "-m", "snapshotter", "--connection-string", hub.connection_string, "--snapshot-container",
         other, "--storage-connection-string", azurite.connection_string, "--data-dir", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=120, check=False, env=clean_environment(),
    )
    assert written.returncode == 0, written.stderr
    assert "created container" in written.stderr
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        names = [b.name for b in service.get_container_client(other).list_blobs()]
    assert names == ["snapshots/hub/0/00000000000000000000.snapshot"]


def test_a_role_that_may_not_create_containers_is_told_so(
    emulator_process: Callable[..., EmulatorProcess], azurite: Azurite, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    # Least privilege, as a reading sidecar needs: list and read, never create.
    sas = generate_account_sas(
        azurite.account_name,
        azurite.account_key,
        resource_types=ResourceTypes(container=True, object=True),
        permission=AccountSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    storage = f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas}"
    hub = emulator_process(None, partitions=1)
    snaps = _fresh("denied")
    result = subprocess.run(
        [sys.executable, "-m", "statepump", "run", "--data-dir", str(tmp_path / "d"), "--socket",
         str(tmp_path / "s.sock"), "--connection-string", hub.connection_string, "--snapshot-container", snaps,
         "--storage-connection-string", storage, "--create-containers", "yes"],
        capture_output=True, text=True, timeout=60, check=False, env=clean_environment(),
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"statepump run: --create-containers: container '{snaps}' at "), result.stderr
    assert "this identity may not create it (403)" in last and "Bicep" in last
    assert sas.split("sig=")[-1] not in result.stderr
