"""The sans-I/O AMQP core, driven with frames built by the SDK's codec (no sockets)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from statepump.emulator import protocol, wire
from statepump.emulator.protocol import ServerConnection
from statepump.emulator.wire import performatives as p


def frames(data: bytes) -> list[tuple[int, int, list[Any]]]:
    """``(channel, descriptor, fields)`` of every frame in ``data`` (protocol headers skipped)."""
    out = []
    position = 0
    while position < len(data):
        if data[position : position + 4] == b"AMQP":
            position += 8
            continue
        size, doff, _, channel = struct.unpack_from(">IBBH", data, position)
        body = data[position + doff * 4 : position + size]
        if body:
            code, fields = wire.decode_frame_body(memoryview(body))
            out.append((channel, code, fields))
        position += size
    return out


def nulls(n: int) -> list[None]:
    return [None] * n


def source(address: str, selector: str | None = None) -> Any:
    filters = {b"apache.org:selector-filter:string": (b"apache.org:selector-filter:string", selector)}
    return wire.Source._make([address, *nulls(6), filters if selector else None, *nulls(3)])


def target(address: str) -> Any:
    return wire.Target._make([address, *nulls(6)])


def attach(name: str, handle: int, *, client_receives: bool, address: str) -> bytes:
    return wire.frame(
        p.AttachFrame(
            name=name,
            handle=handle,
            role=client_receives,
            send_settle_mode=0,
            rcv_settle_mode=0,
            source=source(address if client_receives else "client"),
            target=target("client" if client_receives else address),
            unsettled=None,
            incomplete_unsettled=False,
            initial_delivery_count=None if client_receives else 0,
            max_message_size=None,
            offered_capabilities=None,
            desired_capabilities=None,
            properties=None,
        ),
        1,
    )


def flow(
    handle: int | None, *, credit: int | None = None, delivery_count: int = 0, window: int = 100, next_in: int = 0
) -> bytes:
    return wire.frame(
        p.FlowFrame(
            next_incoming_id=next_in,
            incoming_window=window,
            next_outgoing_id=0,
            outgoing_window=100,
            handle=handle,
            delivery_count=None if handle is None else delivery_count,
            link_credit=credit,
            available=None,
            drain=False,
            echo=False,
            properties=None,
        ),
        1,
    )


def transfer(handle: int, delivery_id: int | None, payload: bytes, *, more: bool = False) -> bytes:
    return wire.frame(
        p.TransferFrame(
            handle=handle,
            delivery_id=delivery_id,
            delivery_tag=None if delivery_id is None else b"t",
            message_format=0,
            settled=False,
            more=more,
            rcv_settle_mode=None,
            state=None,
            resume=False,
            aborted=False,
            batchable=False,
            payload=payload,
        ),
        1,
    )


OPEN = wire.frame(p.OpenFrame("client", "127.0.0.1", 65536, 65535, None, None, None, None, None, None))
BEGIN = wire.frame(p.BeginFrame(None, 0, 100, 100, 64, None, None, None), 1)


def attached_link(events: list[protocol.Event]) -> protocol.Link:
    [event] = events
    assert isinstance(event, protocol.LinkAttached)
    return event.link


def opened() -> ServerConnection:
    conn = ServerConnection()
    assert conn.receive_data(wire.AMQP_HEADER + OPEN + BEGIN) == []
    conn.data_to_send()
    return conn


def test_sasl_then_open_answers_every_field() -> None:
    conn = ServerConnection()
    conn.receive_data(wire.SASL_HEADER)
    out = conn.data_to_send()
    assert out.startswith(wire.SASL_HEADER)
    [(_, code, fields)] = frames(out)
    assert code == 0x40 and b"ANONYMOUS" in fields[0] and b"PLAIN" in fields[0]
    conn.receive_data(
        wire.frame(p.SASLInit(mechanism=b"PLAIN", initial_response=b"\x00u\x00p", hostname=None), sasl=True)
    )
    [(_, code, fields)] = frames(conn.data_to_send())
    assert code == 0x44 and fields[0] == 0
    conn.receive_data(wire.AMQP_HEADER + OPEN)
    out = conn.data_to_send()
    assert out.startswith(wire.AMQP_HEADER)
    [(channel, code, fields)] = frames(out)
    assert (channel, code) == (0, protocol.OPEN)
    assert len(fields) == 10 and fields[2] == protocol.MAX_FRAME_SIZE


def test_unknown_sasl_mechanism_fails_the_connection() -> None:
    conn = ServerConnection()
    conn.receive_data(wire.SASL_HEADER)
    conn.data_to_send()
    events = conn.receive_data(
        wire.frame(p.SASLInit(mechanism=b"GSSAPI", initial_response=None, hostname=None), sasl=True)
    )
    assert events == [protocol.ConnectionClosed("unsupported SASL mechanism 'GSSAPI'")]
    assert conn.closed
    [(_, code, fields)] = frames(conn.data_to_send())
    assert code == 0x44 and fields[0] == 1


def test_a_non_amqp_header_is_refused() -> None:
    conn = ServerConnection()
    events = conn.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    assert conn.closed
    assert isinstance(events[0], protocol.ConnectionClosed)
    assert conn.data_to_send() == wire.AMQP_HEADER


def test_begin_is_answered_with_every_field() -> None:
    conn = ServerConnection()
    conn.receive_data(wire.AMQP_HEADER + OPEN + BEGIN)
    begin = [f for f in frames(conn.data_to_send()) if f[1] == protocol.BEGIN]
    [(channel, _, fields)] = begin
    assert channel == 1 and fields[0] == 1 and len(fields) == 8 and fields[4] is not None


def test_malformed_frame_body_closes_with_a_decode_error() -> None:
    conn = opened()
    garbage = struct.pack(">IBBH", 12, 2, 0, 1) + b"\x00\x53\x12\xff"
    [event] = conn.receive_data(garbage)
    assert isinstance(event, protocol.ConnectionClosed) and event.error is not None
    assert "undecodable frame body" in event.error
    [(_, code, fields)] = frames(conn.data_to_send())
    assert code == protocol.CLOSE and fields[0][0] == b"amqp:decode-error"


def test_oversized_and_invalid_frame_headers_close_with_a_framing_error() -> None:
    conn = opened()
    [event] = conn.receive_data(struct.pack(">IBBH", 10_000_000, 2, 0, 0))
    assert isinstance(event, protocol.ConnectionClosed)
    assert frames(conn.data_to_send())[0][2][0][0] == b"amqp:connection:framing-error"
    conn = opened()
    [event] = conn.receive_data(struct.pack(">IBBH", 4, 2, 0, 0))
    assert isinstance(event, protocol.ConnectionClosed)


def test_frames_may_arrive_in_pieces() -> None:
    conn = ServerConnection()
    data = wire.AMQP_HEADER + OPEN + BEGIN
    for i in range(len(data)):
        assert conn.receive_data(data[i : i + 1]) == []
    codes = [code for _, code, _ in frames(conn.data_to_send())]
    assert codes == [protocol.OPEN, protocol.BEGIN]


def test_credit_and_session_window_limit_what_we_send() -> None:
    conn = opened()
    link = attached_link(
        conn.receive_data(
            attach("r", 2, client_receives=True, address="amqps://h/hub/ConsumerGroups/$default/Partitions/0")
        )
    )
    assert not link.receiving and link.source_address is not None and link.source_address.endswith("/0")
    conn.accept_link(link)
    [(_, code, fields)] = frames(conn.data_to_send())
    assert code == protocol.ATTACH and len(fields) == 14 and fields[9] == 0  # initial-delivery-count
    assert conn.sendable(link) == 0  # no credit yet
    [event] = conn.receive_data(flow(2, credit=3, window=100))
    assert event == protocol.CreditChanged(link)
    assert conn.sendable(link) == 3
    for _ in range(3):
        conn.send_message(link, b"\x00\x53\x75\xa0\x01x")
    assert conn.sendable(link) == 0
    sent = frames(conn.data_to_send())
    assert [f[2][1] for f in sent] == [0, 1, 2]  # delivery ids
    assert all(f[2][4] is True for f in sent)  # pre-settled
    # Credit is delivery-count + link-credit - our delivery count.
    conn.receive_data(flow(2, credit=5, delivery_count=3, window=2, next_in=3))
    assert conn.sendable(link) == 2  # the session window allows two more transfers
    conn.receive_data(flow(None, window=10, next_in=3))
    assert conn.sendable(link) == 5


def test_large_messages_are_split_to_the_peer_frame_size() -> None:
    conn = ServerConnection()
    small_open = wire.frame(p.OpenFrame("client", None, 512, 10, None, None, None, None, None, None))
    conn.receive_data(wire.AMQP_HEADER + small_open + BEGIN)
    attached = attached_link(
        conn.receive_data(attach("r", 0, client_receives=True, address="amqps://h/hub/ConsumerGroups/a/Partitions/0"))
    )
    conn.accept_link(attached)
    conn.receive_data(flow(0, credit=1))
    conn.data_to_send()
    payload = bytes(range(256)) * 8
    conn.send_message(attached, payload)
    out = conn.data_to_send()
    sent = frames(out)
    assert len(sent) > 1
    assert all(len(chunk) <= 512 for chunk in _frame_sizes(out))
    assert [f[2][5] for f in sent] == [True] * (len(sent) - 1) + [False]  # more
    assert b"".join(bytes(f[2][11]) for f in sent) == payload


def _frame_sizes(data: bytes) -> list[bytes]:
    chunks = []
    position = 0
    while position < len(data):
        (size,) = struct.unpack_from(">I", data, position)
        chunks.append(data[position : position + size])
        position += size
    return chunks


def test_received_deliveries_are_reassembled_and_settled() -> None:
    conn = opened()
    attached = attached_link(conn.receive_data(attach("s", 1, client_receives=False, address="amqps://h/hub")))
    link = attached
    assert link.receiving
    conn.accept_link(link, max_message_size=1024)
    out = frames(conn.data_to_send())
    assert [code for _, code, _ in out] == [protocol.ATTACH, protocol.FLOW]
    assert out[0][2][10] == 1024 and out[1][2][6] == protocol.SENDER_CREDIT
    assert conn.receive_data(transfer(1, 7, b"part1-", more=True)) == []
    [message] = conn.receive_data(transfer(1, None, b"part2"))
    assert message == protocol.MessageReceived(link, 7, 0, b"part1-part2", False)
    conn.settle(link, 7)
    conn.settle(link, 7, (b"amqp:link:message-size-exceeded", "too big"))
    [(_, code, accepted), (_, _, rejected)] = frames(conn.data_to_send())
    assert code == protocol.DISPOSITION and accepted[1] == 7 and accepted[3] is True
    assert accepted[4] == {"accepted": []}
    assert rejected[4]["rejected"][0][0] == b"amqp:link:message-size-exceeded"


def test_refusing_and_detaching_links() -> None:
    conn = opened()
    attached = attached_link(conn.receive_data(attach("r", 2, client_receives=True, address="amqps://h/nope")))
    conn.refuse_link(attached, b"amqp:not-found", "no such entity")
    [(_, a, afields), (_, d, dfields)] = frames(conn.data_to_send())
    assert (a, d) == (protocol.ATTACH, protocol.DETACH)
    assert afields[5] is not None and afields[6] is not None  # the SDK drops links without both
    assert dfields[1] is True and dfields[2][0] == b"amqp:not-found" and dfields[2][1] == b"no such entity"
    # The client's answering Detach is not answered again.
    assert conn.receive_data(wire.frame(p.DetachFrame(2, True, None), 1)) == []
    assert conn.data_to_send() == b""


def test_client_detach_and_late_frames_after_end() -> None:
    conn = opened()
    attached = attached_link(
        conn.receive_data(attach("r", 2, client_receives=True, address="amqps://h/hub/ConsumerGroups/a/Partitions/0"))
    )
    conn.accept_link(attached)
    conn.data_to_send()
    events = conn.receive_data(wire.frame(p.EndFrame(None), 1))
    assert events == [protocol.LinkDetached(attached)]
    # The SDK's management client sends Detach after End: ignored, not an error.
    assert conn.receive_data(wire.frame(p.DetachFrame(2, True, None), 1)) == []
    assert [code for _, code, _ in frames(conn.data_to_send())] == [protocol.END]
    events = conn.receive_data(wire.frame(p.CloseFrame(None)))
    assert events == [protocol.ConnectionClosed(None)] and conn.closed
    assert [code for _, code, _ in frames(conn.data_to_send())] == [protocol.CLOSE]


def test_attach_reusing_a_live_handle_is_an_error() -> None:
    conn = opened()
    conn.receive_data(attach("a", 1, client_receives=False, address="amqps://h/hub"))
    [event] = conn.receive_data(attach("b", 1, client_receives=False, address="amqps://h/hub"))
    assert isinstance(event, protocol.ConnectionClosed)
    assert "already attached" in (event.error or "")


@pytest.mark.parametrize("frame", [wire.frame(p.EndFrame(None), 9), transfer(5, 1, b"x")])
def test_frames_for_unknown_sessions_or_handles_are_ignored(frame: bytes) -> None:
    conn = opened()
    assert conn.receive_data(frame) == []
    assert not conn.closed


def test_heartbeats_and_the_peer_idle_timeout() -> None:
    conn = ServerConnection()
    idle_open = wire.frame(p.OpenFrame("client", None, 65536, 10, 4000, None, None, None, None, None))
    conn.receive_data(wire.AMQP_HEADER + idle_open)
    conn.data_to_send()
    assert conn.remote_idle_timeout_ms == 4000
    conn.heartbeat()
    assert conn.data_to_send() == b"\x00\x00\x00\x08\x02\x00\x00\x00"
    assert conn.receive_data(b"\x00\x00\x00\x08\x02\x00\x00\x00") == []  # theirs are ignored


def test_a_refused_connection_gets_our_open_then_a_close_with_the_error() -> None:
    conn = ServerConnection()
    conn.refuse_open(b"amqp:resource-limit-exceeded", "ConnectionsQuotaExceeded for namespace ns.")
    events = conn.receive_data(wire.AMQP_HEADER + OPEN + BEGIN)  # a pipelined Begin is not answered
    out = frames(conn.data_to_send())
    assert [code for _, code, _ in out] == [protocol.OPEN, protocol.CLOSE]
    assert out[1][2][0] == [b"amqp:resource-limit-exceeded", b"ConnectionsQuotaExceeded for namespace ns.", None]
    assert conn.closed and events == []
