"""The in-memory source against the conformance suite, plus what only it does."""

from __future__ import annotations

import asyncio

import pytest

from statepump.sources.memory import MemorySource
from tests.sources.conformance import Publish, Published, SourceConformance, collect


class TestMemoryConformance(SourceConformance):
    @pytest.fixture
    def publish(self) -> Publish:
        async def make(events: list[Published]) -> MemorySource:
            source = MemorySource(max_wait=0.2)
            for body, props in events:
                source.append(body, properties=props)
            return source

        return make


async def test_live_read_wakes_on_append_from_another_thread() -> None:
    source = MemorySource(max_wait=30)
    reader = asyncio.create_task(collect(source, -1, 1, timeout=10))
    async with asyncio.timeout(10):
        while not source._waiters:  # the wake-up is what is tested: append only once the reader waits
            await asyncio.sleep(0.001)
    await asyncio.to_thread(source.append, {"op": "set", "path": "a", "value": 1})
    events = await reader
    assert [e.sequence for e in events] == [0]


async def test_expire_moves_the_beginning_and_reads_start_silently_there() -> None:
    source = MemorySource(live=False)
    for i in range(10):
        source.append({"op": "set", "path": "a", "value": i})
    source.expire(6)
    bounds = await source.bounds()
    assert (bounds.first, bounds.last) == (6, 9)
    events = await collect(source, 2, 10)
    assert [e.sequence for e in events] == [6, 7, 8, 9]
