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


async def test_two_publishers_racing_each_get_the_numbers_of_their_own_events(emulator: Emulator) -> None:
    """Counting before and after on the held management link is not fooled by another writer in between."""
    cs = emulator.connection_string

    async def write(author: str) -> list[int]:
        async with Publisher(connection_string=cs, author=author) as pub:
            # Few: each collision is resolved by reading the partition back (seconds, not milliseconds).
            return [await pub.set(author, i, force=True) for i in range(5)]

    mine, theirs = await asyncio.gather(write("a"), write("b"))
    assert sorted(mine + theirs) == list(range(10))
    by_number = {e.sequence: e for e in await read_everything(cs)}
    for author, sent in (("a", mine), ("b", theirs)):
        expected = [b'{"op":"set","path":"%s","value":%d}' % (author.encode(), i) for i in range(5)]
        assert [by_number[n].body for n in sent] == expected


async def test_a_publisher_outlives_its_hub_restarting(emulator_process: Any, tmp_path: Path) -> None:
    """The held management link and producer link are opened afresh after the hub went away."""
    hub = emulator_process(tmp_path / "data", partitions=1)
    async with Publisher(connection_string=hub.connection_string, author="bot") as pub:
        assert await pub.set("a", 1, force=True) == 0
        hub.kill()
        hub.start()
        assert await pub.set("a", 2, force=True) == 1
        assert await pub.set("a", 3, force=True) == 2
    assert [e.body for e in await read_everything(hub.connection_string)][1:] == [
        b'{"op":"set","path":"a","value":2}',
        b'{"op":"set","path":"a","value":3}',
    ]


async def test_another_writer_between_two_sends_of_a_publisher_does_not_shift_its_numbers(emulator: Emulator) -> None:
    """Each send reads the partition's count before it: an event written since the last send is not taken for ours."""
    from statepump.eventhubs.send import send_events

    cs = emulator.connection_string
    async with Publisher(connection_string=cs, author="a") as pub:
        assert await pub.set("a", 1, force=True) == 0
        assert await send_events(
            connection_string=cs, bodies=[b'{"op":"set","path":"b","value":1}'], partition="0"
        ) == [1]
        assert await pub.set("a", 2, force=True) == 2
        assert await pub.set("a", 3, force=True) == 3
    assert [e.body for e in await read_everything(cs)][2:] == [
        b'{"op":"set","path":"a","value":2}',
        b'{"op":"set","path":"a","value":3}',
    ]
