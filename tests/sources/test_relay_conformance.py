"""RelaySource against the source conformance suite: an upstream statepump's feed over its Unix socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from statepump.sources import EventSource
from statepump.sources.memory import MemorySource
from statepump.sources.relay import RelaySource
from tests.relay.harness import upstream
from tests.sources.conformance import Publish, Published, SourceConformance


class TestRelaySourceConformance(SourceConformance):
    live = True

    @pytest.fixture
    async def publish(self) -> AsyncIterator[Publish]:
        async with AsyncExitStack() as stack:
            sources: list[RelaySource] = []

            async def publish(events: list[Published]) -> EventSource:
                memory = MemorySource(max_wait=0.05)
                for body, properties in events:
                    memory.append(body, properties=properties)
                up = await stack.enter_async_context(upstream(memory))
                if events:
                    await up.pump.wait_for(len(events) - 1, timeout=10)  # the feed serves what is published
                source = RelaySource([str(up.socket)], max_wait=0.5, retry_seconds=5)
                sources.append(source)
                return source

            yield publish
            for source in sources:
                await source.close()
