"""The asyncio shell: admin endpoint, retention timer, bad clients, stop."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import cast

import pytest
from azure.eventhub.aio import EventHubProducerClient

from statepump.emulator import Emulator, protocol, wire
from statepump.emulator.wire import performatives as p

from .clients import bodies, enqueue, receive, receiving, send, until
from .test_protocol import BEGIN, OPEN, attach, flow, frames, transfer

pytestmark = pytest.mark.emulator


async def http(port: int, method: str, target: str, raw: bytes | None = None) -> tuple[int, dict[str, object]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw or f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    body = json.loads(await reader.readexactly(length))
    writer.close()
    await writer.wait_closed()
    return status, body


async def test_admin_endpoint(emulator: Emulator) -> None:
    assert emulator.admin_port
    enqueue(emulator, "0", "a", "b", "c")
    status, info = await http(emulator.admin_port, "GET", "/partitions/0")
    assert status == 200
    assert info["begin_sequence_number"] == 0 and info["last_enqueued_sequence_number"] == 2
    assert info["is_partition_empty"] is False
    status, info = await http(emulator.admin_port, "POST", "/partitions/0/expire?before_sequence=2")
    assert status == 200 and info["dropped"] == 2 and info["begin_sequence_number"] == 2
    assert emulator.partition_info("0")["begin_sequence_number"] == 2
    assert bodies(await receive(emulator.connection_string, "0", 1)) == ["c"]


@pytest.mark.parametrize(
    ("method", "target", "status", "text"),
    [
        ("GET", "/partitions/7", 404, "'7'"),
        ("GET", "/nothing", 404, "no such resource"),
        ("DELETE", "/partitions/0", 405, "use GET"),
        ("GET", "/partitions/0/expire?before_sequence=1", 405, "use POST"),
        ("POST", "/partitions/0/expire", 400, "before_sequence"),
        ("POST", "/partitions/0/expire?before_sequence=abc", 400, "before_sequence"),
        ("POST", "/partitions/0/expire?before_sequence=5", 400, "ends at -1"),
    ],
)
async def test_admin_errors_are_json(emulator: Emulator, method: str, target: str, status: int, text: str) -> None:
    assert emulator.admin_port
    got, body = await http(emulator.admin_port, method, target)
    assert got == status
    assert text in str(body["error"])


async def test_admin_rejects_broken_http(emulator: Emulator) -> None:
    assert emulator.admin_port
    status, body = await http(emulator.admin_port, "", "", raw=b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400 and "bad HTTP request" in str(body["error"])


async def test_retention_drops_old_events() -> None:
    emulator = Emulator(partitions=1, retention=0.3)
    await emulator.start()
    try:
        async with EventHubProducerClient.from_connection_string(emulator.connection_string) as producer:
            await send(producer, ["old"], partition="0")
            deadline = asyncio.get_running_loop().time() + 10
            while emulator.partition_info("0")["begin_sequence_number"] != 1:
                assert asyncio.get_running_loop().time() < deadline, emulator.partition_info("0")
                await asyncio.sleep(0.02)
            assert emulator.partition_info("0")["is_partition_empty"] is True
            await send(producer, ["new"], partition="0")
        # Numbering goes on (and "new" expires in turn, too soon to read here).
        assert emulator.partition_info("0")["last_enqueued_sequence_number"] == 1
    finally:
        await emulator.stop()


async def test_a_bad_connection_does_not_affect_others(emulator: Emulator) -> None:
    enqueue(emulator, "1", "before")
    garbage = [
        b"\x00\x01\x02\x03garbage!",  # not a protocol header
        wire.AMQP_HEADER + struct.pack(">IBBH", 16, 2, 0, 0) + b"\x00\x53\x10\xd0\xff\xff\xff\xff",  # bad Open
        wire.AMQP_HEADER
        + wire.frame(p.OpenFrame("x", None, 65536, 10, None, None, None, None, None, None))
        + struct.pack(">IBBH", 100, 2, 0, 0),  # truncated frame, then hang up
    ]
    async with receiving(emulator.connection_string, "1") as receiver:
        await receiver.wait_for(1)
        for data in garbage:
            reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
            writer.write(data)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(4096), 5)
            writer.close()
            assert answer.startswith(b"AMQP")
        enqueue(emulator, "1", "after")
        await receiver.wait_for(2)
    assert bodies(receiver.reception.events) == ["before", "after"]


async def test_stop_closes_connections_promptly() -> None:
    emulator = Emulator(partitions=1)
    await emulator.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
    writer.write(wire.AMQP_HEADER + wire.frame(p.OpenFrame("x", None, 65536, 10, None, None, None, None, None, None)))
    await writer.drain()
    await reader.readexactly(8)  # the header answer
    started = asyncio.get_running_loop().time()
    await emulator.stop()
    data = await asyncio.wait_for(reader.read(), 5)  # read to EOF: the server hung up
    assert b"amqp:connection:forced" in data
    assert asyncio.get_running_loop().time() - started < 3
    writer.close()


async def answers(reader: asyncio.StreamReader, code: int) -> list[object]:
    """The fields of the first frame of type ``code`` the emulator sends (a Transfer's payload last)."""
    received = b""
    async with asyncio.timeout(10):
        while True:
            received += await reader.read(65536)
            found = next((fields for _, c, fields in frames(received) if c == code), None)
            if found is not None:
                return found


async def test_with_a_key_a_connection_without_a_valid_token_may_not_attach_or_ask() -> None:
    """The SDK puts a token before it attaches; a client that skips it is refused, as by the service."""
    emulator = Emulator(port=0, partitions=1, key="k")
    await emulator.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
        address = f"amqps://127.0.0.1:{emulator.port}/hub/ConsumerGroups/$Default/Partitions/0"
        writer.write(wire.AMQP_HEADER + OPEN + BEGIN + attach("r", 2, client_receives=True, address=address))
        detach = await answers(reader, protocol.DETACH)
        assert cast(list[bytes], detach[2])[0] == b"amqp:unauthorized-access"

        read = wire.Message(
            properties=wire.Properties(message_id="read-1"),
            application_properties={"operation": "READ", "type": "com.microsoft:eventhub", "name": "hub"},
        )
        writer.write(
            attach("ask", 3, client_receives=False, address="$management")
            + attach("hear", 4, client_receives=True, address="$management")
            + flow(4, credit=10, next_in=1)
            + transfer(3, 0, wire.encode_message(read))
        )
        reply = wire.decode_message(cast(bytes, (await answers(reader, protocol.TRANSFER))[-1]))
        writer.close()
    finally:
        await emulator.stop()
    assert reply.application_properties[b"status-code"] == 401


async def test_admin_lists_receivers_and_creates_consumer_groups(emulator: Emulator) -> None:
    assert emulator.admin_port
    port = emulator.admin_port
    enqueue(emulator, "0", "a")
    status, created = await http(port, "PUT", "/consumergroups/Audit")
    assert (status, created) == (201, {"consumer_group": "Audit", "created": True})
    status, again = await http(port, "PUT", "/consumergroups/audit")
    assert (status, again) == (200, {"consumer_group": "Audit", "created": False})
    status, body = await http(port, "PUT", "/consumergroups/-bad")
    assert status == 400 and "not a consumer group name" in str(body["error"])
    assert await http(port, "GET", "/consumergroups") == (200, {"consumer_groups": ["$Default", "Audit"]})
    async with receiving(emulator.connection_string, "0", consumer_group="audit") as receiver:
        await receiver.wait_for(1)
        status, table = await http(port, "GET", "/receivers")
        status_0, partition = await http(port, "GET", "/partitions/0")
    assert status == 200 and status_0 == 200
    assert partition["receivers"] == {"$Default": 0, "Audit": 1}
    assert table["receivers_per_partition"] == 5 and table["consumer_groups"] == ["$Default", "Audit"]
    assert table["connections"] == 1 and table["max_connections"] is None and table["throughput_units"] is None
    partitions = cast(dict[str, dict[str, list[dict[str, object]]]], table["partitions"])
    assert partitions["1"] == {"$Default": [], "Audit": []}
    [holder] = partitions["0"]["Audit"]
    assert holder["epoch"] is None and holder["identifier"] is None
    assert str(holder["link"]) and "127.0.0.1" in str(holder["peer"])
    assert (await http(port, "POST", "/receivers"))[0] == 405
    assert emulator.hub is not None
    hub = emulator.hub
    await until(lambda: hub.receivers("0") == 0, "the closed receiver going")
    _, after = await http(port, "GET", "/receivers")
    assert cast(dict[str, dict[str, list[object]]], after["partitions"])["0"]["Audit"] == []


async def test_admin_counts_the_hubs_egress_by_consumer_group(emulator: Emulator) -> None:
    """Every event delivered to every receiver counts, as throughput units bill it: two readers of one
    group cost twice one, and a reader of another group is counted under its own name."""
    assert emulator.admin_port
    port = emulator.admin_port
    texts = [f"event-{i:03d}" for i in range(20)]
    enqueue(emulator, "0", *texts)
    emulator.create_consumer_group("Audit")
    _, before = await http(port, "GET", "/partitions/0")
    assert before["egress"] == {}
    for group in ("$Default", "$Default", "AUDIT"):
        assert bodies(await receive(emulator.connection_string, "0", 20, consumer_group=group)) == texts
    _, partition = await http(port, "GET", "/partitions/0")
    egress = cast(dict[str, dict[str, int]], partition["egress"])
    assert set(egress) == {"$Default", "Audit"}
    assert egress["$Default"]["events"] == 40 and egress["Audit"]["events"] == 20
    # Bytes are the AMQP messages sent: the same events cost the same bytes in either group.
    assert egress["$Default"]["bytes"] == 2 * egress["Audit"]["bytes"] > 20 * len(texts[0])
    assert emulator.egress("0") == egress
    _, table = await http(port, "GET", "/receivers")
    assert cast(dict[str, object], table["egress"]) == {"0": egress, "1": {}}
