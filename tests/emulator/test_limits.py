"""The service's limits, through the unmodified SDK over loopback TCP: receivers per partition and
consumer group, consumer groups that must exist, connections per namespace, throughput units."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubProducerClient
from azure.eventhub.exceptions import ConnectError, EventDataSendError, EventHubError

from statepump.emulator import Emulator, protocol, wire
from statepump.emulator.wire import performatives as p

from .clients import Receiver, attached, bodies, enqueue, first_error, receive, send, until
from .test_protocol import BEGIN, OPEN, frames, source, target

pytestmark = pytest.mark.emulator

ROOT = Path(__file__).resolve().parents[2]
QUOTA = "Exceeded the maximum number of allowed receivers per partition in a consumer group which is 5."


@contextlib.asynccontextmanager
async def holding(emulator: Emulator, partition: str, count: int, **kwargs: Any) -> AsyncIterator[list[Receiver]]:
    """``count`` SDK receivers (a client, hence a connection, each) attached to ``partition``."""
    receivers = [await Receiver(emulator.connection_string, partition, **kwargs).start() for _ in range(count)]
    try:
        await attached(emulator, partition, count, timeout=30)
        yield receivers
    finally:
        await asyncio.gather(*(r.stop() for r in receivers))


def receivers_of(emulator: Emulator, partition: str, group: str = "$Default") -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], emulator.receivers()["partitions"][partition][group])


async def test_a_sixth_receiver_gets_the_services_quota_error(emulator: Emulator) -> None:
    cs = emulator.connection_string
    emulator.create_consumer_group("other")
    enqueue(emulator, "0", "a")
    enqueue(emulator, "1", "b")
    async with holding(emulator, "0", 5):
        # Five clients, five connections: the count is the namespace's, not a connection's.
        assert len({r["peer"] for r in receivers_of(emulator, "0")}) == 5
        error = await first_error(cs, "0", consumer_group="$DEFAULT")  # the same group, in other letters
        assert isinstance(error, EventHubError)
        text = str(error)
        assert "amqp:resource-limit-exceeded" in text
        assert f"{QUOTA} List of connected receivers - nil, nil, nil, nil, nil." in text
        assert "SystemTracker:emulator:eventhub:hub~32766|$default" in text
        # The same partition through another group, and another partition, have slots of their own.
        assert bodies(await receive(cs, "0", 1, consumer_group="other")) == ["a"]
        assert bodies(await receive(cs, "1", 1)) == ["b"]
        assert len(receivers_of(emulator, "0")) == 5


async def test_a_receiver_on_a_consumer_group_that_does_not_exist_is_not_found(emulator: Emulator) -> None:
    cs = emulator.connection_string
    enqueue(emulator, "0", "a")
    error = await first_error(cs, "0", consumer_group="statepump-web-07")
    text = str(error)
    assert "amqp:not-found" in text
    assert "The messaging entity 'emulator:eventhub:hub~32766|statepump-web-07' could not be found." in text
    assert emulator.hub is not None and emulator.hub.receivers("0") == 0
    emulator.create_consumer_group("StatePump-Web-07")  # as `az eventhubs eventhub consumer-group create`
    assert bodies(await receive(cs, "0", 1, consumer_group="statepump-web-07")) == ["a"]


async def test_a_closed_client_frees_its_slot(emulator: Emulator) -> None:
    cs = emulator.connection_string
    assert emulator.hub is not None
    hub = emulator.hub
    enqueue(emulator, "0", "a")
    async with holding(emulator, "0", 5) as receivers:
        assert QUOTA in str(await first_error(cs, "0"))
        await receivers[0].client.close()
        await until(lambda: hub.receivers("0") == 4, "the closed client's receiver going")
        assert bodies(await receive(cs, "0", 1)) == ["a"]


def _receiver_attach(handle: int, address: str, name: str) -> bytes:
    return wire.frame(
        p.AttachFrame(
            name=f"link-{handle}",
            handle=handle,
            role=True,
            send_settle_mode=0,
            rcv_settle_mode=0,
            source=source(address),
            target=target("client"),
            unsettled=None,
            incomplete_unsettled=False,
            initial_delivery_count=None,
            max_message_size=None,
            offered_capabilities=None,
            desired_capabilities=None,
            properties={b"com.microsoft:receiver-name": name},  # what the Java and .NET SDKs send
        ),
        1,
    )


async def test_a_detached_link_frees_its_slot_while_its_connection_stays(emulator: Emulator) -> None:
    """A client that detaches one link and keeps its connection (as the .NET and Java SDKs do)."""
    assert emulator.hub is not None
    hub = emulator.hub
    enqueue(emulator, "0", "a")
    address = f"amqps://127.0.0.1:{emulator.port}/hub/ConsumerGroups/$Default/Partitions/0"
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
    received = b""

    async def detach_of(handle: int) -> list[Any]:
        nonlocal received
        async with asyncio.timeout(10):
            while True:
                found = [f for _, c, f in frames(received) if c == protocol.DETACH and f[0] == handle]
                if found:
                    return found[0]
                received += await reader.read(65536)

    try:
        writer.write(wire.AMQP_HEADER + OPEN + BEGIN)
        writer.write(b"".join(_receiver_attach(h, address, f"raw-{h}") for h in range(1, 6)))
        await until(lambda: hub.receivers("0") == 5, "five raw receivers attaching")
        writer.write(_receiver_attach(6, address, "raw-6"))
        refused = await detach_of(6)
        assert refused[2][0] == b"amqp:resource-limit-exceeded"
        assert f"{QUOTA} List of connected receivers - raw-1, raw-2, raw-3, raw-4, raw-5.".encode() in refused[2][1]
        connections = hub.connections
        writer.write(wire.frame(p.DetachFrame(handle=2, closed=True, error=None), 1))
        await detach_of(2)  # answered
        await until(lambda: hub.receivers("0") == 4, "the detached link's receiver going")
        assert hub.connections == connections  # the connection is still there
        assert [r["identifier"] for r in receivers_of(emulator, "0")] == ["raw-1", "raw-3", "raw-4", "raw-5"]
        assert bodies(await receive(emulator.connection_string, "0", 1)) == ["a"]
    finally:
        writer.close()


async def test_a_killed_clients_slot_is_freed_when_its_socket_closes(emulator: Emulator) -> None:
    cs = emulator.connection_string
    assert emulator.hub is not None
    hub = emulator.hub
    enqueue(emulator, "0", "a")
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.emulator.receiver_process",
        cs,
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await until(lambda: hub.receivers("0") == 1, "the client process attaching", timeout=30)
        async with holding(emulator, "0", 4):
            assert QUOTA in str(await first_error(cs, "0"))
            os.kill(client.pid, signal.SIGKILL)  # no Detach, no Close: only the socket closes
            await asyncio.wait_for(client.wait(), 10)
            await until(lambda: hub.receivers("0") == 4, "the killed client's receiver going")
            assert bodies(await receive(cs, "0", 1)) == ["a"]
    finally:
        if client.returncode is None:
            os.kill(client.pid, signal.SIGKILL)
            await asyncio.wait_for(client.wait(), 10)


async def test_connections_past_the_limit_are_refused() -> None:
    emulator = Emulator(partitions=1, max_connections=2)
    await emulator.start()
    assert emulator.hub is not None
    hub = emulator.hub
    held = [await asyncio.open_connection("127.0.0.1", emulator.port) for _ in range(2)]
    try:
        await until(lambda: hub.connections == 2, "two connections counted")
        async with EventHubProducerClient.from_connection_string(emulator.connection_string, retry_total=0) as client:
            with pytest.raises(ConnectError) as refused:
                await client.get_eventhub_properties()
            assert "amqp:resource-limit-exceeded" in str(refused.value)
            assert "ConnectionsQuotaExceeded for namespace emulator." in str(refused.value)
            held.pop()[1].close()
            await until(lambda: hub.connections == 1, "the closed connection going")
            assert (await client.get_eventhub_properties())["partition_ids"] == ["0"]
    finally:
        for _, writer in held:
            writer.close()
        await emulator.stop()


async def test_throughput_units_pace_a_herd_of_readers_who_still_get_everything_in_order() -> None:
    """Each reader's 2 MiB fits one unit's burst; three of them share it, so they take about 2 s more."""
    emulator = Emulator(partitions=2, throughput_units=1, consumer_groups=["herd"])
    await emulator.start()
    count, size = 256, 8192  # 2 MiB a partition
    payloads = {pid: [f"{pid}-{i:05d}-".ljust(size, "x") for i in range(count)] for pid in ("0", "1")}
    for pid, texts in payloads.items():
        enqueue(emulator, pid, *texts)
    readers = [("0", "$Default"), ("1", "$Default"), ("0", "herd")]
    herd = [Receiver(emulator.connection_string, pid, consumer_group=group) for pid, group in readers]
    try:
        await asyncio.gather(*(r.start() for r in herd))
        await asyncio.gather(*(r.wait_for(1, timeout=30) for r in herd))
        first = time.monotonic()
        await asyncio.gather(*(r.wait_for(count, timeout=60) for r in herd))
        took = time.monotonic() - first
    finally:
        await asyncio.gather(*(r.stop() for r in herd))
        await emulator.stop()
    for (pid, _), reader in zip(readers, herd, strict=True):
        events = reader.reception.events
        assert [e.sequence_number for e in events] == list(range(count))  # no gap, no duplicate
        assert bodies(events) == payloads[pid]
    # 6 MiB at 2 MiB/s, less the 2 MiB burst and the first deliveries: at least 1.5 s (about 0.1 s unthrottled).
    assert 1.5 <= took < 30, took


async def test_throttled_ingress_is_server_busy_until_the_budget_comes_back() -> None:
    """The SDK (5.15) hands a throttled send to the caller as EventDataSendError without retrying it,
    whatever retry_total says: a rejected delivery is not among what it retries."""
    emulator = Emulator(partitions=1, throughput_units=1, throttle_ingress=True)
    await emulator.start()
    assert emulator.hub is not None and emulator.hub.ingress is not None
    bucket = emulator.hub.ingress
    try:
        cs = emulator.connection_string
        async with EventHubProducerClient.from_connection_string(cs, retry_total=3) as producer:
            await send(producer, ["x"] * 1200, partition="0")  # a second and a fifth of one unit's events
            with pytest.raises(EventDataSendError) as busy:
                await send(producer, ["y"], partition="0")
            await until(lambda: bucket.ready(time.monotonic()), "the ingress budget coming back")
            await producer.send_event(EventData("z"), partition_id="0")
        info = emulator.partition_info("0")
    finally:
        await emulator.stop()
    text = str(busy.value)
    assert "com.microsoft:server-busy" in text
    assert "The request was terminated because the entity is being throttled. Error code : 50002." in text
    assert info["last_enqueued_sequence_number"] == 1200  # 1200 x, then z; y was refused
