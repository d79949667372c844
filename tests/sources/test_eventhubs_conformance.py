"""The source conformance suite against the bundled emulator, through the real SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubProducerClient

from statepump.emulator import Emulator
from statepump.eventhubs.failures import Backoff
from statepump.sources import EventSource
from statepump.sources.eventhub import EventHubSource
from tests.sources.conformance import Publish, Published, SourceConformance

pytestmark = pytest.mark.emulator


class TestEventHubSourceConformance(SourceConformance):
    live = True

    @pytest.fixture
    async def publish(self, emulator: Emulator) -> AsyncIterator[Publish]:
        sources: list[EventHubSource] = []

        async def publish(events: list[Published]) -> EventSource:
            producer = EventHubProducerClient.from_connection_string(emulator.connection_string)
            async with producer:
                batch = await producer.create_batch(partition_id="0")
                for body, properties in events:
                    event = EventData(body)
                    event.properties = {str(k): v for k, v in properties.items()}
                    batch.add(event)
                await producer.send_batch(batch)
            source = EventHubSource(
                connection_string=emulator.connection_string,
                partition="0",
                max_wait=0.5,
                retry=Backoff(initial=0.05, maximum=0.5, max_seconds=10),
            )
            sources.append(source)
            return source

        yield publish
        for source in sources:
            await source.close()
