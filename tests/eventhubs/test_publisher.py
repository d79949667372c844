"""``statepump.Publisher`` against the emulator, with a pump and its socket API reading the same partition."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from statepump import Publisher, Pump, Refused, SyncPublisher
from statepump.emulator import Emulator
from statepump.serving.sidecar import Server
from statepump.sources.eventhub import EventHubSource
from tests.reliability.replay import read_everything

pytestmark = pytest.mark.emulator


@pytest.fixture
async def served(emulator: Emulator) -> AsyncIterator[Path]:
    """A pump on partition 0 and its socket; yields the socket's path."""
    with tempfile.TemporaryDirectory() as tmp:
        pump: Pump[Any] = Pump(EventHubSource(connection_string=emulator.connection_string, partition="0"))
        await pump.start()
        await pump.wait_ready(timeout=30)
        server = Server(pump, socket_path=Path(tmp) / "s.sock")
        await server.start()
        try:
            yield Path(tmp) / "s.sock"
        finally:
            await server.stop(grace=1)
            await pump.stop()


async def test_publisher_checks_sends_on_one_connection_and_reads_outcomes(emulator: Emulator, served: Path) -> None:
    async with Publisher(connection_string=emulator.connection_string, socket_path=served, author="bot") as pub:
        first = await pub.set("limits", {"rps": 10})
        assert await pub.outcome(first) == ("applied", None)
        numbers = [await pub.merge("limits", {"burst": i}) for i in range(5)]
        assert numbers == list(range(first + 1, first + 6))
        with pytest.raises(Refused, match=r"test failed at limits/rps: 11 != 10"):
            await pub.set("limits/rps", 20, expect=11)
        with pytest.raises(Refused, match="nothing to delete at limits/nope"):
            await pub.delete("limits/nope")
        with pytest.raises(Refused, match="unknown op 'frobnicate'"):
            await pub.send({"op": "frobnicate", "path": "limits"})
        assert len(await read_everything(emulator.connection_string)) == 6  # nothing refused was sent
        forced = await pub.set("limits/rps", 20, expect=11, force=True)
        assert await pub.outcome(forced) == ("rejected", "test failed at limits/rps: 11 != 10")
        atomic = await pub.apply(
            [{"op": "test", "path": "limits/rps", "value": 10}, {"op": "delete", "path": "limits"}]
        )
        assert await pub.outcome(atomic) == ("applied", None)
    events = await read_everything(emulator.connection_string)
    assert [e.properties.get("statepump-author") for e in events] == ["bot"] * 8


async def test_sync_publisher_from_a_thread(emulator: Emulator, served: Path) -> None:
    def work() -> tuple[int, tuple[str, str | None]]:
        with SyncPublisher(connection_string=emulator.connection_string, socket_path=served) as pub:
            n = pub.set("flag", True)
            return n, pub.outcome(n)

    n, outcome = await asyncio.to_thread(work)
    assert (n, outcome) == (0, ("applied", None))
