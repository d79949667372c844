"""A producer on the ``emulator`` fixture, shared by a test (opening one costs the SDK ~1 s)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from azure.eventhub.aio import EventHubProducerClient

from statepump.emulator import Emulator


@pytest.fixture
async def producer(emulator: Emulator) -> AsyncIterator[EventHubProducerClient]:
    client = EventHubProducerClient.from_connection_string(emulator.connection_string, retry_total=0)
    async with client:
        yield client
