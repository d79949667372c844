"""send_events against the in-process emulator: the numbers it returns are the hub's."""

from __future__ import annotations

import logging

import pytest

from statepump.core.errors import ConfigError
from statepump.emulator import Emulator
from statepump.eventhubs.failures import EventTooLarge
from statepump.eventhubs.send import SEND_ID_PROPERTY, send_events
from statepump.sources.eventhub import EventHubSource
from tests.eventhubs.hub import numbered, put, read_until

pytestmark = pytest.mark.emulator


async def hub_events(emulator: Emulator, partition: str, last: int) -> dict[int, tuple[bytes, dict[str, object]]]:
    source = EventHubSource(connection_string=emulator.connection_string, partition=partition, max_wait=0.3)
    try:
        events = await read_until(source, -1, last)
    finally:
        await source.close()
    return {e.sequence: (e.body, dict(e.properties)) for e in events}


async def test_send_to_a_partition_returns_its_sequence_numbers(emulator: Emulator) -> None:
    await put(emulator.connection_string, numbered(3), partition="1")
    first = await send_events(
        connection_string=emulator.connection_string,
        bodies=[b"a", b"b", b"c", b"d"],
        partition="1",
        properties={"source": "test"},
    )
    second = await send_events(connection_string=emulator.connection_string, bodies=[b"e"], partition="1")
    assert first == [3, 4, 5, 6] and second == [7]
    held = await hub_events(emulator, "1", 7)
    assert [held[n][0] for n in first + second] == [b"a", b"b", b"c", b"d", b"e"]
    assert all(held[n][1]["source"] == "test" and SEND_ID_PROPERTY in held[n][1] for n in first)


async def test_send_by_partition_key_finds_the_partition_it_went_to(emulator: Emulator) -> None:
    # Different counts in each partition, so the numbers tell which partition was used.
    await put(emulator.connection_string, numbered(5), partition="0")
    await put(emulator.connection_string, numbered(11), partition="1")
    numbers = await send_events(
        connection_string=emulator.connection_string, bodies=[b"x", b"y"], partition_key="tenant-42"
    )
    assert numbers in ([5, 6], [11, 12])
    partition = "0" if numbers == [5, 6] else "1"
    source = EventHubSource(connection_string=emulator.connection_string, partition=partition, max_wait=0.3)
    try:
        events = await read_until(source, numbers[0] - 1, numbers[1])
    finally:
        await source.close()
    assert [(e.sequence, e.body, e.partition_key) for e in events] == [
        (numbers[0], b"x", "tenant-42"),
        (numbers[1], b"y", "tenant-42"),
    ]


async def test_large_sends_are_split_into_batches_that_fit(emulator: Emulator) -> None:
    bodies = [bytes([65 + i]) * 400_000 for i in range(5)]  # 2 MB: at least three batches
    numbers = await send_events(connection_string=emulator.connection_string, bodies=bodies, partition="0")
    assert numbers == [0, 1, 2, 3, 4]
    held = await hub_events(emulator, "0", 4)
    assert [held[n][0] for n in numbers] == bodies


async def test_an_event_over_the_limit_sends_nothing(emulator: Emulator) -> None:
    with pytest.raises(EventTooLarge, match=r"event 1 .*nothing was sent"):
        await send_events(
            connection_string=emulator.connection_string, bodies=[b"small", b"x" * 1_100_000], partition="0"
        )
    assert emulator.partition_info("0")["last_enqueued_sequence_number"] == -1


async def test_bad_send_arguments() -> None:
    cs = "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub"
    with pytest.raises(ConfigError, match="not both"):
        await send_events(connection_string=cs, bodies=[b"x"], partition="0", partition_key="k")
    with pytest.raises(ConfigError, match="bytes"):
        await send_events(connection_string=cs, bodies=["text"], partition="0")  # type: ignore[list-item]
    assert await send_events(connection_string=cs, bodies=[], partition="0") == []


async def test_concurrent_senders_each_get_their_own_numbers(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Interleaved writers defeat counting; each send then finds its events by their tag."""
    import asyncio

    caplog.set_level(logging.DEBUG, logger="statepump.eventhubs")
    ours = [b"a%d" % i for i in range(30)]
    theirs = [b"b%d" % i for i in range(30)]

    async def send(bodies: list[bytes]) -> list[int]:
        numbers: list[int] = []
        for i in range(0, len(bodies), 10):  # several calls, so the two writers interleave
            numbers += await send_events(
                connection_string=emulator.connection_string, bodies=bodies[i : i + 10], partition="0"
            )
        return numbers

    mine, other = await asyncio.gather(send(ours), send(theirs))
    assert sorted(mine + other) == list(range(60))
    held = await hub_events(emulator, "0", 59)
    assert [held[n][0] for n in mine] == ours
    assert [held[n][0] for n in other] == theirs
    assert any("reading the events back" in r.getMessage() for r in caplog.records)
