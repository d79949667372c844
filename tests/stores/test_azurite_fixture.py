"""The Azurite fixtures themselves: they start a real Azurite, and a restart keeps port and data."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from devservices.azurite import Azurite, AzuriteProcess


async def test_blob_container_is_fresh_and_usable(azurite: Azurite, blob_container: str) -> None:
    assert azurite.blob_endpoint == f"http://127.0.0.1:{azurite.port}/devstoreaccount1"
    async with ContainerClient.from_connection_string(azurite.connection_string, blob_container) as client:
        assert [b.name async for b in client.list_blobs()] == []
        await client.upload_blob("a", b"hello")
        assert await (await client.download_blob("a")).readall() == b"hello"


async def test_restart_keeps_port_and_data(azurite_process: AzuriteProcess) -> None:
    info = azurite_process.info
    async with BlobServiceClient.from_connection_string(info.connection_string) as service:
        await service.create_container("kept")
        await service.get_blob_client("kept", "b").upload_blob(b"data")

    azurite_process.stop()
    assert not azurite_process.running
    async with BlobServiceClient.from_connection_string(info.connection_string, retry_total=0) as service:
        with pytest.raises(ServiceRequestError):
            await service.get_blob_client("kept", "b").download_blob()

    again = azurite_process.start()
    assert again.port == info.port
    async with BlobServiceClient.from_connection_string(again.connection_string) as service:
        blob = await service.get_blob_client("kept", "b").download_blob()
        assert await blob.readall() == b"data"
