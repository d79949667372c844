"""RelayStore (a relay's current snapshot, read-only) against the read-only half of the store conformance suite."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from statepump.core.errors import ServiceUnavailable
from statepump.sources.memory import MemorySource
from statepump.stores import SnapshotStore
from statepump.stores.relaystore import RelayStore
from tests.relay.harness import upstream
from tests.stores.conformance import ReadOnlyStoreConformance, SeededStore


class TestRelayStore(ReadOnlyStoreConformance):
    @pytest.fixture
    async def seeded(self) -> AsyncIterator[SeededStore]:
        async with AsyncExitStack() as stack:

            async def make(sequence: int) -> tuple[SnapshotStore, bytes]:
                memory = MemorySource(max_wait=0.05)
                for i in range(sequence + 1):
                    memory.append({"op": "set", "path": f"k{i}", "value": i})
                up = await stack.enter_async_context(upstream(memory))
                await up.pump.wait_for(sequence, timeout=10)
                _, data = await up.server.relay.snapshot()
                return RelayStore([str(up.socket)], "hub", "0"), data

            yield make


async def test_an_upstream_with_nothing_applied_lists_nothing() -> None:
    async with upstream() as up:
        await up.pump.wait_ready(timeout=10)
        assert await RelayStore([str(up.socket)], "hub", "0").list() == []


async def test_no_upstream_answering_is_service_unavailable_naming_it() -> None:
    with pytest.raises(ServiceUnavailable, match=re.escape("/tmp/statepump-no-such.sock")):
        await RelayStore(["/tmp/statepump-no-such.sock"], "hub", "0").list()
