"""BlobStore against a real Azurite: the conformance suite, plus what only Blob Storage can get wrong."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.pipeline import PipelineRequest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from devservices.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite, AzuriteProcess
from statepump.core.errors import ConfigError, SnapshotExists
from statepump.stores import SnapshotStore
from statepump.stores.blob import BlobRetry, BlobStore, SnapshotStoreUnavailable
from tests.fixtures.proxy import LoopbackProxy
from tests.stores.conformance import SnapshotStoreConformance, StoreFactory

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST_RETRY = BlobRetry(attempts=40, initial_backoff=0.05, max_backoff=0.5, deadline=60)


class TestBlobStore(SnapshotStoreConformance):
    """Payloads up to 64 MiB: each write is one Put Blob."""

    client_options: dict[str, Any] = {}  # noqa: RUF012 - read-only per-class setting

    @pytest.fixture
    async def make_store(self, azurite: Azurite, blob_container: str) -> AsyncIterator[StoreFactory]:
        stores: list[BlobStore] = []

        async def make(eventhub: str = "hub", partition: str = "0", prefix: str = "snapshots") -> SnapshotStore:
            store = BlobStore.from_connection_string(
                azurite.connection_string, blob_container, eventhub, partition, prefix, **self.client_options
            )
            stores.append(store)
            return store

        yield make
        for store in stores:
            await store.close()


class TestBlobStoreStagedBlocks(TestBlobStore):
    """Every payload over 256 KiB goes as staged blocks and one Put Block List at the end."""

    client_options = {"max_single_put_size": 256 * 1024, "max_block_size": 256 * 1024}  # noqa: RUF012


async def blob_names(azurite: Azurite, container: str, *, uncommitted: bool = False) -> list[str]:
    async with ContainerClient.from_connection_string(azurite.connection_string, container) as client:
        include = ["uncommittedblobs"] if uncommitted else None
        return [b.name async for b in client.list_blobs(include=include)]


async def poll(condition: Callable[[], Any], what: str, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)  # poll interval


async def test_uncommitted_blocks_are_not_listed(azurite: Azurite, blob_container: str) -> None:
    async with BlobStore.from_connection_string(azurite.connection_string, blob_container, "hub", "0") as store:
        name = "snapshots/hub/0/00000000000000000005.snapshot"
        async with ContainerClient.from_connection_string(azurite.connection_string, blob_container) as client:
            # A 48-byte id, as the SDK's chunked upload path leaves them (stage_block base64-encodes it).
            block_id = f"{uuid.uuid4().int:048d}"
            await client.get_blob_client(name).stage_block(block_id, b"half a snapshot")
        assert await blob_names(azurite, blob_container, uncommitted=True) == [name]
        assert await store.list() == []

        ref = await store.write(5, b"whole snapshot")
        assert [r.sequence for r in await store.list()] == [5]
        assert await store.read(ref) == b"whole snapshot"


async def test_killed_writer_leaves_no_visible_blob(azurite: Azurite, blob_container: str) -> None:
    name = "snapshots/hub/0/00000000000000000077.snapshot"
    env = {**os.environ, "STATEPUMP_TEST_BLOB_CONN": azurite.connection_string}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.stores.blob_writer",
        blob_container,
        "77",
        str(64 * 1024 * 1024),
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        async with ContainerClient.from_connection_string(azurite.connection_string, blob_container) as client:
            blob = client.get_blob_client(name)

            async def some_blocks_staged() -> bool:
                if proc.returncode is not None:
                    raise AssertionError(f"the writer ended early with {proc.returncode}")
                names = await blob_names(azurite, blob_container, uncommitted=True)
                if name not in names:
                    return False
                _, uncommitted = await blob.get_block_list("uncommitted")
                return len(uncommitted) >= 2

            await poll(some_blocks_staged, "the writer to stage blocks")
    finally:
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert await blob_names(azurite, blob_container) == []
    async with BlobStore.from_connection_string(azurite.connection_string, blob_container, "hub", "0") as store:
        assert await store.list() == []
        ref = await store.write(77, b"after the crash")
        assert await store.read(ref) == b"after the crash"


async def test_metadata_records_the_sequence(azurite: Azurite, blob_container: str) -> None:
    async with BlobStore.from_connection_string(azurite.connection_string, blob_container, "cfg", "3") as store:
        ref = await store.write(1234, b"x")
    async with ContainerClient.from_connection_string(azurite.connection_string, blob_container) as client:
        properties = await client.get_blob_client(ref.name).get_blob_properties()
    assert properties.metadata["sequence"] == "1234"
    assert properties.metadata["eventhub"] == "cfg"
    assert properties.metadata["partition"] == "3"


async def test_list_asks_the_service_for_the_partition_prefix_only(azurite: Azurite, blob_container: str) -> None:
    requests: list[str] = []

    def record(request: PipelineRequest[Any]) -> None:
        requests.append(f"{request.http_request.method} {request.http_request.url}")

    async with BlobStore.from_connection_string(azurite.connection_string, blob_container, "hub", "9") as other:
        for sequence in range(20):
            await other.write(sequence, b"other partition")
    async with BlobStore.from_connection_string(
        azurite.connection_string, blob_container, "hub", "1", raw_request_hook=record
    ) as store:
        await store.write(3, b"mine")
        requests.clear()
        assert [r.sequence for r in await store.list()] == [3]
    assert len(requests) == 1, requests
    assert "comp=list" in requests[0]
    assert "prefix=snapshots%2Fhub%2F1%2F" in requests[0]


async def test_create_only_across_two_store_instances(azurite: Azurite, blob_container: str) -> None:
    one = BlobStore.from_connection_string(azurite.connection_string, blob_container, "hub", "0")
    two = BlobStore.from_connection_string(azurite.connection_string, blob_container, "hub", "0")
    async with one, two:
        ref = await one.write(8, b"first")
        with pytest.raises(SnapshotExists, match=ref.name):
            await two.write(8, b"second")
        assert await two.read(ref) == b"first"


async def test_missing_container_is_a_clear_error_unless_creation_is_allowed(azurite: Azurite) -> None:
    container = f"missing{os.getpid()}{time.monotonic_ns()}"
    async with BlobStore.from_connection_string(azurite.connection_string, container, "hub", "0") as store:
        with pytest.raises(ConfigError, match=container):
            await store.list()
        with pytest.raises(ConfigError, match="create_container"):
            await store.write(1, b"x")
    async with BlobStore.from_connection_string(
        azurite.connection_string, container, "hub", "0", create_container=True
    ) as store:
        assert await store.list() == []
        ref = await store.write(1, b"x")
        assert await store.read(ref) == b"x"
        assert await store.exists()
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        await service.delete_container(container)


def secrets_in(text: str, *secrets: str) -> list[str]:
    return [s for s in (*secrets, "AccountKey", "sig=") if s in text]


async def test_description_and_errors_never_contain_a_secret(azurite_process: AzuriteProcess) -> None:
    info = azurite_process.info
    container = "secrets"
    async with BlobServiceClient.from_connection_string(info.connection_string) as service:
        await service.create_container(container)
    sas = generate_container_sas(
        ACCOUNT_NAME,
        container,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    signature = sas.split("sig=", 1)[1].split("&", 1)[0]
    sas_conn = f"BlobEndpoint={info.blob_endpoint};SharedAccessSignature={sas}"
    quick = BlobRetry(attempts=2, initial_backoff=0.01, max_backoff=0.02)
    stores = [
        BlobStore.from_connection_string(info.connection_string, container, "hub", "0", retry=quick),
        BlobStore.from_connection_string(sas_conn, container, "hub", "1", retry=quick),
        BlobStore.from_account_url(f"{info.blob_endpoint}?{sas}", container, "hub", "2", retry=quick),
        BlobStore.from_account_url(info.blob_endpoint, container, "hub", "3", credential=sas, retry=quick),
    ]
    try:
        for index, store in enumerate(stores):
            # Each way of authenticating really works...
            ref = await store.write(index, b"secret-free")
            assert await store.read(ref) == b"secret-free"
            # ...and none of them shows its secret.
            assert store.description.startswith(f"azure blob {info.blob_endpoint} container {container}")
            assert secrets_in(store.description + repr(store), ACCOUNT_KEY, signature) == []

        azurite_process.stop()
        for store in stores:
            with pytest.raises(SnapshotStoreUnavailable) as raised:
                await store.list()
            message = str(raised.value)
            assert info.blob_endpoint in message
            assert container in message
            assert secrets_in(message, ACCOUNT_KEY, signature) == []
            assert raised.value.__cause__ is None
    finally:
        for store in stores:
            await store.close()


async def test_transient_outage_is_retried_until_azurite_is_back(azurite_process: AzuriteProcess) -> None:
    info = azurite_process.info
    async with BlobServiceClient.from_connection_string(info.connection_string) as service:
        await service.create_container("outage")
    async with BlobStore.from_connection_string(
        info.connection_string, "outage", "hub", "0", retry=FAST_RETRY
    ) as store:
        await store.write(1, b"before")
        azurite_process.stop()
        writing = asyncio.ensure_future(store.write(2, b"during"))

        async def retried_twice() -> bool:
            return store.retries >= 2

        await poll(retried_twice, "two retries")
        assert not writing.done()
        await asyncio.to_thread(azurite_process.start)
        ref = await writing
        assert [r.sequence for r in await store.list()] == [1, 2]
        assert await store.read(ref) == b"during"


async def test_outage_gives_up_after_the_bounded_attempts(azurite_process: AzuriteProcess) -> None:
    info = azurite_process.info
    azurite_process.stop()
    retry = BlobRetry(attempts=4, initial_backoff=0.01, max_backoff=0.05)
    async with BlobStore.from_connection_string(info.connection_string, "gone", "hub", "0", retry=retry) as store:
        started = time.monotonic()
        with pytest.raises(SnapshotStoreUnavailable, match="write failed 4 times"):
            await store.write(1, b"x")
        assert store.retries == 3
        assert time.monotonic() - started < 10


async def test_a_write_whose_reply_was_lost_is_recognised_as_its_own(azurite: Azurite, blob_container: str) -> None:
    proxy = LoopbackProxy(azurite.port)
    port = await proxy.start()
    try:
        endpoint = f"http://127.0.0.1:{port}/{ACCOUNT_NAME}"
        conn = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint={endpoint};"
        )
        async with BlobStore.from_connection_string(conn, blob_container, "hub", "0", retry=FAST_RETRY) as store:
            # aiohttp resends an idempotent PUT once by itself after a dropped
            # connection, so the second lost reply is the one the store retries.
            proxy.drop_replies = 2
            ref = await store.write(6, b"stored once")
            assert proxy.dropped == 2
            assert store.retries == 1
            assert await store.read(ref) == b"stored once"
            # A genuine second writer is still refused.
            with pytest.raises(SnapshotExists):
                await store.write(6, b"another")
    finally:
        await proxy.close()


def test_from_account_url_defaults_to_default_azure_credential() -> None:
    from azure.identity.aio import DefaultAzureCredential

    store = BlobStore.from_account_url("https://example.blob.core.windows.net", "snaps", "hub", "0")
    try:
        assert isinstance(store._container.credential, DefaultAzureCredential)
        assert store.description == (
            "azure blob https://example.blob.core.windows.net container snaps prefix snapshots/hub/0/"
        )
    finally:
        asyncio.run(store.close())
