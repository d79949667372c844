"""The emulator through the unmodified azure-eventhub SDK, over real loopback TCP."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.eventhub import EventData, EventHubProducerClient
from azure.eventhub.aio import EventHubConsumerClient as AsyncConsumer
from azure.eventhub.aio import EventHubProducerClient as AsyncProducer
from azure.eventhub.exceptions import EventDataSendError, EventHubError

from statepump.emulator import Emulator

from .clients import attached, bodies, enqueue, first_error, receive, receiving, send

pytestmark = pytest.mark.emulator


async def test_hub_and_partition_properties_sync_client(emulator: Emulator) -> None:
    def scenario() -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
        with EventHubProducerClient.from_connection_string(emulator.connection_string, retry_total=0) as client:
            hub, empty = client.get_eventhub_properties(), client.get_partition_properties("1")
            client.send_batch([EventData(x) for x in "abc"], partition_id="1")
            return hub, empty, client.get_partition_properties("1")

    before = datetime.now(UTC) - timedelta(seconds=1)
    hub, empty, written = await asyncio.to_thread(scenario)
    assert hub["eventhub_name"] == "hub"
    assert hub["partition_ids"] == ["0", "1"]
    assert empty["beginning_sequence_number"] == 0
    assert empty["last_enqueued_sequence_number"] == -1
    assert empty["last_enqueued_offset"] == "-1"
    assert empty["is_empty"] is True
    assert written["beginning_sequence_number"] == 0
    assert written["last_enqueued_sequence_number"] == 2
    assert written["is_empty"] is False
    assert isinstance(written["last_enqueued_time_utc"], datetime)
    assert written["last_enqueued_time_utc"] >= before
    assert emulator.hub is not None
    assert written["last_enqueued_offset"] == str(emulator.hub.log("1").read(2, 1)[0].offset)


async def test_batch_and_single_sends_number_each_partition_from_zero(
    emulator: Emulator, producer: AsyncProducer
) -> None:
    cs = emulator.connection_string
    await send(producer, ["b0", "b1", "b2"], partition="0")
    await producer.send_event(EventData("s3"), partition_id="0")
    await producer.send_event(EventData("other"), partition_id="1")
    events, other = await asyncio.gather(receive(cs, "0", 4), receive(cs, "1", 1))
    assert bodies(events) == ["b0", "b1", "b2", "s3"]
    assert [e.sequence_number for e in events] == [0, 1, 2, 3]
    offsets = [int(str(e.offset)) for e in events]
    assert offsets == sorted(set(offsets))
    assert all(isinstance(e.offset, str) for e in events)
    assert [e.sequence_number for e in other] == [0]


async def test_partition_key_is_stable_and_delivered(emulator: Emulator, producer: AsyncProducer) -> None:
    cs = emulator.connection_string
    await send(producer, ["k1", "k2"], partition_key="user-42")
    await producer.send_event(EventData("k3"), partition_key="user-42")
    counts = {p: emulator.partition_info(p)["last_enqueued_sequence_number"] for p in ("0", "1")}
    target = max(counts, key=lambda p: int(str(counts[p])))
    assert counts[target] == 2, counts  # all three in one partition
    events = await receive(cs, target, 3)
    assert bodies(events) == ["k1", "k2", "k3"]
    assert {e.partition_key for e in events} == {b"user-42"}  # the SDK decodes it to bytes


async def test_unspecified_partition_sends_land_somewhere(emulator: Emulator, producer: AsyncProducer) -> None:
    for i in range(4):
        await send(producer, [f"u{i}"])
    total = sum(int(str(emulator.partition_info(p)["last_enqueued_sequence_number"])) + 1 for p in ("0", "1"))
    assert total == 4


async def test_event_fields_round_trip(emulator: Emulator, producer: AsyncProducer) -> None:
    event = EventData(b"\x00body\xff")
    event.properties = {"text": "v", "number": 7, "real": 1.5, "raw": b"\x01\x02"}
    event.content_type = "application/json"
    event.message_id = "message-1"
    event.correlation_id = uuid.UUID(int=5)  # type: ignore[assignment]  # AMQP allows UUID ids
    await producer.send_event(event, partition_id="0")
    before = datetime.now(UTC)
    (got,) = await receive(emulator.connection_string, "0", 1)
    assert got.body_as_str(encoding="latin-1") == "\x00body\xff"
    assert got.properties == {b"text": b"v", b"number": 7, b"real": 1.5, b"raw": b"\x01\x02"}
    assert got.content_type == "application/json"
    assert got.message_id == "message-1"
    assert got.correlation_id == uuid.UUID(int=5)
    assert got.sequence_number == 0
    assert got.offset == "0"
    assert got.enqueued_time is not None
    assert abs((got.enqueued_time - before).total_seconds()) < 5
    assert got.system_properties[b"x-opt-sequence-number"] == 0


async def test_event_over_one_megabyte_is_rejected_and_the_link_keeps_working(
    emulator: Emulator, producer: AsyncProducer
) -> None:
    with pytest.raises(EventDataSendError, match="exceeds the limit"):
        await producer.send_event(EventData(b"x" * (1024 * 1024 + 1)), partition_id="0")
    await producer.send_event(EventData("after"), partition_id="0")
    assert bodies(await receive(emulator.connection_string, "0", 1)) == ["after"]


async def test_receive_positions(emulator: Emulator, producer: AsyncProducer) -> None:
    cs = emulator.connection_string
    assert emulator.hub is not None
    await send(producer, [f"e{i}" for i in range(6)], partition="0")
    records = emulator.hub.log("0").read(0, 6)
    offset = str(records[3].offset)
    first_time = datetime.fromtimestamp(records[-1].enqueued_ms / 1000, UTC)
    # A second batch, sent strictly later, is what follows the first one's enqueued time.
    while datetime.now(UTC) <= first_time + timedelta(milliseconds=2):
        await asyncio.sleep(0.001)
    await send(producer, ["late"], partition="0")
    # Every position at once: each SDK receiver costs about two seconds of its own pacing. A
    # partition allows five receivers per consumer group, so the sixth reads through another.
    emulator.create_consumer_group("positions")
    results = await asyncio.gather(
        receive(cs, "0", 7, starting_position="-1"),
        receive(cs, "0", 1, starting_position=2),
        receive(cs, "0", 1, starting_position=2, inclusive=True),
        receive(cs, "0", 1, starting_position=offset),
        receive(cs, "0", 1, starting_position=offset, inclusive=True),
        receive(cs, "0", 1, starting_position=first_time, consumer_group="positions"),
    )
    assert [e.sequence_number for e in results[0]] == list(range(7))
    assert [e.offset for e in results[0][:6]] == [str(r.offset) for r in records]
    assert [[e.sequence_number for e in r] for r in results[1:5]] == [[3], [2], [4], [3]]
    assert bodies(results[5]) == ["late"]


async def test_latest_and_live_tailing_are_prompt(emulator: Emulator, producer: AsyncProducer) -> None:
    cs = emulator.connection_string
    await send(producer, ["old"], partition="0")
    async with receiving(cs, "0", starting_position="@latest") as receiver:
        await attached(emulator, "0")
        latencies = []
        for i in range(5):
            await producer.send_event(EventData(f"live{i}"), partition_id="0")
            sent = time.perf_counter()
            await receiver.wait_for(i + 1, timeout=5)
            latencies.append(time.perf_counter() - sent)
        assert bodies(receiver.reception.events) == [f"live{i}" for i in range(5)]
    # The async SDK polls every 50 ms; anything near that means the emulator added nothing noticeable.
    assert sorted(latencies)[2] < 0.25, latencies


async def test_consumer_groups_are_independent_and_case_insensitive(emulator: Emulator) -> None:
    cs = emulator.connection_string
    emulator.create_consumer_group("audit")
    enqueue(emulator, "1", "x", "y")
    results = await asyncio.gather(*(receive(cs, "1", 2, consumer_group=g) for g in ("$Default", "$default", "audit")))
    assert [bodies(r) for r in results] == [["x", "y"]] * 3


async def test_higher_owner_level_steals_the_partition(emulator: Emulator) -> None:
    cs = emulator.connection_string
    emulator.create_consumer_group("other")
    enqueue(emulator, "0", "a")
    # Another consumer group is not affected by the owner in $Default.
    other_group = asyncio.create_task(receive(cs, "0", 2, consumer_group="other", owner_level=1))
    async with receiving(cs, "0", owner_level=1) as low:
        await low.wait_for(1)
        async with receiving(cs, "0", owner_level=2) as high:
            await high.wait_for(1)
            reception = await low.wait_for(1, errors=1)
            assert "amqp:link:stolen" in str(reception.errors[0])
            assert "higher epoch of '2'" in str(reception.errors[0])
            # A lower owner level cannot take it back while the higher one reads.
            error = await first_error(cs, "0", owner_level=1)
            assert "higher epoch '2' already exists" in str(error)
            enqueue(emulator, "0", "b")
            await high.wait_for(2)
    assert bodies(await other_group) == ["a", "b"]


async def test_runtime_metric_annotations(emulator: Emulator) -> None:
    cs = emulator.connection_string
    enqueue(emulator, "0", "a", "b", "c")
    async with receiving(cs, "0", track_last=True) as receiver:
        await receiver.wait_for(3)
        context = receiver.reception.contexts[-1]
        last = context.last_enqueued_event_properties
    assert last["sequence_number"] == 2
    assert last["offset"] == receiver.reception.events[2].offset
    assert isinstance(last["enqueued_time"], datetime)
    assert isinstance(last["retrieval_time"], datetime)


async def test_sequence_below_beginning_starts_silently_at_the_earliest_kept(emulator: Emulator) -> None:
    cs = emulator.connection_string
    enqueue(emulator, "0", *[f"e{i}" for i in range(10)])
    emulator.expire("0", 6)
    info = emulator.partition_info("0")
    assert info["begin_sequence_number"] == 6
    events, earliest = await asyncio.gather(
        receive(cs, "0", 4, starting_position=1), receive(cs, "0", 1, starting_position="-1")
    )
    assert [e.sequence_number for e in events] == [6, 7, 8, 9]
    assert [e.sequence_number for e in earliest] == [6]


async def test_fully_expired_partition_is_empty_and_keeps_numbering(emulator: Emulator) -> None:
    cs = emulator.connection_string
    enqueue(emulator, "1", "a", "b")
    emulator.expire("1", 2)

    def read() -> dict[str, object]:
        with EventHubProducerClient.from_connection_string(cs, retry_total=0) as client:
            return client.get_partition_properties("1")

    props = await asyncio.to_thread(read)
    assert props["is_empty"] is True
    assert props["beginning_sequence_number"] == 2
    assert props["last_enqueued_sequence_number"] == 1
    enqueue(emulator, "1", "c")
    assert [e.sequence_number for e in await receive(cs, "1", 1, starting_position="-1")] == [2]


async def test_sequence_above_the_last_is_the_services_error(emulator: Emulator, producer: AsyncProducer) -> None:
    cs = emulator.connection_string
    enqueue(emulator, "0", "a", "b", "c")
    error = await first_error(cs, "0", starting_position=10)
    assert "The supplied sequence number '10' is invalid. The last sequence number in the system is '2'" in str(error)
    # Exclusive of the last one is the normal "what comes next" and is fine.
    async with receiving(cs, "0", starting_position=2) as receiver:
        await attached(emulator, "0")
        await send(producer, ["d"], partition="0")
        await receiver.wait_for(1)
    assert [e.sequence_number for e in receiver.reception.events] == [3]


async def test_unknown_partitions_are_clear_errors(emulator: Emulator, producer: AsyncProducer) -> None:
    cs = emulator.connection_string
    with pytest.raises(EventHubError, match="partition '7'"):
        await producer.get_partition_properties("7")
    with pytest.raises(EventHubError, match="Invalid partition 7"):  # the SDK checks the hub's partition_ids
        await producer.send_event(EventData("x"), partition_id="7")
    await producer.send_event(EventData("fine"), partition_id="0")
    # The SDK's public API refuses partition ids the hub did not list, so go one layer down to
    # see the emulator's own answer to a receive link on an unknown partition.
    consumer_client = AsyncConsumer.from_connection_string(cs, "$Default", retry_total=0)

    async def ignore(_event: EventData) -> None:
        return None

    consumer = consumer_client._create_consumer(
        "$Default",
        "9",
        "-1",
        on_event_received=ignore,  # type: ignore[arg-type]  # it is called with the event only
    )
    try:
        with pytest.raises(EventHubError, match="amqp:not-found") as caught:
            await consumer.receive(batch=False, max_batch_size=1, max_wait_time=1)
        assert "The partition '9' of event hub 'hub' does not exist; partitions are 0, 1." in str(caught.value)
    finally:
        await consumer.close()
        await consumer_client.close()
    assert emulator.partition_info("0")["last_enqueued_sequence_number"] == 0  # "fine" went through


async def test_ten_thousand_events_in_order(emulator: Emulator, producer: AsyncProducer) -> None:
    cs = emulator.connection_string
    sent = 0
    while sent < 10_000:
        batch = await producer.create_batch(partition_id="0")
        while sent < 10_000:
            try:
                batch.add(EventData(str(sent)))
            except ValueError:
                break
            sent += 1
        await producer.send_batch(batch)
    events = await receive(cs, "0", 10_000, prefetch=2000, timeout=60)
    assert [e.sequence_number for e in events] == list(range(10_000))
    assert bodies(events) == [str(i) for i in range(10_000)]


async def test_unknown_event_hub_is_a_clear_error(emulator: Emulator) -> None:
    wrong = emulator.connection_string.replace("EntityPath=hub", "EntityPath=nohub")
    async with AsyncProducer.from_connection_string(wrong, retry_total=0) as producer:
        with pytest.raises(EventHubError, match="404"):
            await producer.get_eventhub_properties()
        # Below the SDK's own checks: a send link to an unknown entity is refused by the emulator.
        with pytest.raises(EventHubError, match="'nohub' could not be found"):
            await producer.send_batch([EventData("x")], partition_id="0")
