"""Bad input, limits, slow clients, the socket file and the TCP binding rule."""

from __future__ import annotations

import asyncio
import grp
import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statepump.client import AsyncClient
from statepump.core.errors import ConfigError
from statepump.core.httpapi import Limits
from statepump.pump import Pump
from statepump.serving.sidecar import Server, SocketInUse
from statepump.sources.memory import MemorySource
from tests.server.conftest import body_of, make_server, publish, raw_exchange, status_of


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _still_answers(server: Server) -> None:
    assert server.socket_path is not None
    async with AsyncClient(server.socket_path, timeout=5) as client:
        assert await client.get("some/key") == {"x": 1}


BAD_REQUESTS = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET\r\n\r\n", 400),
    (b"GET /v1/state HTTP/9.9\r\n\r\n", 400),
    (b"GET /v1/state HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
    (b"GET /v1/state/" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /v1/state HTTP/1.1\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n", 431),
    (b"GET /v1/state HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n", 431),
    (b"GET /v1/state/%zz HTTP/1.1\r\n\r\n", 400),
    (b"GET /v1/state/%ff%fe HTTP/1.1\r\n\r\n", 400),
    (b"GET /v1/state/a?min_sequence=ten HTTP/1.1\r\n\r\n", 400),
    (b"GET /v1/state/a?min_sequence=-1 HTTP/1.1\r\n\r\n", 400),
    (b"GET /v1/state/a?min_sequence=1&timeout=forever HTTP/1.1\r\n\r\n", 400),
    (b"GET /v1/state/a?min_sequence=1&timeout=1e9 HTTP/1.1\r\n\r\n", 400),
    (b"GET /v1/state/a?bogus=1 HTTP/1.1\r\n\r\n", 400),
    (b"GET /v1/state/a?min_sequence=1&min_sequence=2 HTTP/1.1\r\n\r\n", 400),
    (b"GET /healthz?x=1 HTTP/1.1\r\n\r\n", 400),
    (b"GET http://example.com/v1/state HTTP/1.1\r\n\r\n", 400),
    (b"GET /v1/state HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000, 413),
    (b"BREW /v1/state HTTP/1.1\r\n\r\n", 400),
]


@pytest.mark.parametrize(("request_bytes", "expected"), BAD_REQUESTS, ids=[str(i) for i in range(len(BAD_REQUESTS))])
async def test_bad_requests_get_4xx_and_the_server_carries_on(
    server: Server, request_bytes: bytes, expected: int
) -> None:
    assert server.socket_path is not None
    response = await raw_exchange(server.socket_path, request_bytes)
    assert status_of(response) == expected, response[:300]
    assert json.loads(body_of(response))["error"]
    await _still_answers(server)


async def test_a_client_that_never_reads_does_not_stall_others(
    pump: Pump[Any], source: MemorySource, socket_dir: Path
) -> None:
    limits = Limits(write_buffer=64 * 1024, write_timeout=2.0)
    server = make_server(pump, socket_dir, limits=limits)
    await server.start()
    try:
        assert server.socket_path is not None
        await publish(source, pump, {"op": "set", "path": "blob", "value": "z" * 200_000})
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(str(server.socket_path))
        stuck.setblocking(False)
        request = b"GET /v1/state/blob HTTP/1.1\r\n\r\n"
        # Pipeline requests for 200 KB answers and read none of them.
        for _ in range(50):
            try:
                stuck.send(request)
            except BlockingIOError:
                break
        started = time.monotonic()
        for _ in range(20):
            await _still_answers(server)
        # Well before the stuck client's write timeout: nobody waited for it.
        assert time.monotonic() - started < 1.5
        # After write_timeout the stuck client is disconnected, freeing what it held.
        await _until(lambda: server.requests.connections == 0, timeout=5)
    finally:
        stuck.close()
        await server.stop(grace=1)


async def test_idle_and_incomplete_connections_are_closed(pump: Pump[Any], socket_dir: Path) -> None:
    server = make_server(pump, socket_dir, limits=Limits(idle_timeout=0.3, request_timeout=0.3))
    await server.start()
    try:
        assert server.socket_path is not None
        reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
        writer.write(b"GET /v1/state HTTP/1.1\r\nHost: x\r\n")  # never finished
        async with asyncio.timeout(5):
            answer = await reader.read()
        assert status_of(answer) == 408
        writer.close()
        reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # idle: closed without a word
        writer.close()
    finally:
        await server.stop(grace=1)


async def test_connection_limit(pump: Pump[Any], socket_dir: Path) -> None:
    server = make_server(pump, socket_dir, limits=Limits(max_connections=3))
    await server.start()
    try:
        assert server.socket_path is not None
        held = [await asyncio.open_unix_connection(str(server.socket_path)) for _ in range(3)]
        await _until(lambda: server.requests.connections == 3)
        refused = await raw_exchange(server.socket_path, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert status_of(refused) == 503
        for _, writer in held:
            writer.close()
        await _until(lambda: server.requests.connections == 0)
        await _still_answers(server)
    finally:
        await server.stop(grace=1)


async def test_two_thousand_waiters_cost_no_cpu_and_one_publish_releases_them(
    pump: Pump[Any], source: MemorySource, socket_dir: Path
) -> None:
    server = make_server(pump, socket_dir, limits=Limits(max_connections=2100))
    await server.start()
    clients = [AsyncClient(socket_dir / "s.sock", timeout=30) for _ in range(2000)]
    try:
        waits = [asyncio.create_task(c.get_with_sequence("some/key", min_sequence=2, timeout=60)) for c in clients]
        await _until(lambda: server.requests.waiting == 2000, timeout=60)
        cpu_before = time.process_time()
        wall_before = time.monotonic()
        await asyncio.sleep(1.0)  # the measurement window, not a wait for a condition
        cpu = time.process_time() - cpu_before
        wall = time.monotonic() - wall_before
        # The pump's own idle polling and the server's sweeper are all that may run.
        assert cpu < 0.25 * wall, f"{cpu:.3f} s of CPU in {wall:.3f} s while 2,000 requests waited"
        assert not any(w.done() for w in waits)
        source.append({"op": "set", "path": "some/key", "value": "released"})
        results = await asyncio.wait_for(asyncio.gather(*waits), 60)
        assert set(results) == {("released", 2)}
        assert server.requests.waiting == 0
    finally:
        for c in clients:
            await c.close()
        await server.stop(grace=1)


async def test_watch_delivers_changes_of_its_path_only(server: Server, source: MemorySource, pump: Pump[Any]) -> None:
    assert server.socket_path is not None
    async with AsyncClient(server.socket_path) as client:
        changes = client.watch("some/key")
        assert await anext(changes) == (1, {"x": 1})  # the current value first
        source.append({"op": "set", "path": "other/0", "value": 11})  # 2: another path
        source.append({"op": "set", "path": "some/key/x", "value": 2})  # 3: this path
        assert await asyncio.wait_for(anext(changes), 10) == (3, {"x": 2})
        source.append({"op": "set", "path": "some/key/x", "value": 2})  # 4: same value again
        source.append({"op": "delete", "path": "some/key"})  # 5: gone
        assert await asyncio.wait_for(anext(changes), 10) == (5, None)
        await changes.aclose()
    await _until(lambda: server.requests.watchers == 0)


async def test_socket_mode_group_and_removal_on_stop(pump: Pump[Any], socket_dir: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    server = make_server(pump, socket_dir, socket_group=group)
    await server.start()
    path = socket_dir / "s.sock"
    info = os.stat(path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == os.getgid()
    await server.stop(grace=1)
    assert not path.exists()


def test_unknown_group_is_a_config_error(pump: Pump[Any], socket_dir: Path) -> None:
    with pytest.raises(ConfigError, match="no-such-group-here"):
        make_server(pump, socket_dir, socket_group="no-such-group-here")


async def test_stale_socket_replaced_live_one_refused(pump: Pump[Any], socket_dir: Path) -> None:
    path = socket_dir / "s.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: what a killed process leaves
    first = make_server(pump, socket_dir)
    await first.start()
    try:
        await _still_answers(first)
        second = make_server(pump, socket_dir)
        with pytest.raises(SocketInUse, match=str(path)):
            await second.start()
        await _still_answers(first)
    finally:
        await first.stop(grace=1)
    regular = socket_dir / "s.sock"
    regular.write_text("not a socket")
    with pytest.raises(Exception, match="not a socket"):
        await make_server(pump, socket_dir).start()
    assert regular.read_text() == "not a socket"


async def test_tcp_is_loopback_only_unless_listen_any(pump: Pump[Any]) -> None:
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(ConfigError, match="not loopback"):
            Server(pump, socket_path=None, listen=(host, 0))
    server = Server(pump, socket_path=None, listen=("127.0.0.1", 0))
    await server.start()
    try:
        assert server.tcp_address is not None
        host, port = server.tcp_address
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /v1/state/some/key HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        await server.stop(grace=1)
    anywhere = Server(pump, socket_path=None, listen=("0.0.0.0", 0), listen_any=True)
    await anywhere.start()
    assert anywhere.tcp_address is not None and anywhere.tcp_address[0] == "0.0.0.0"
    await anywhere.stop(grace=1)


async def test_stop_answers_requests_in_flight(pump: Pump[Any], source: MemorySource, socket_dir: Path) -> None:
    server = make_server(pump, socket_dir)
    await server.start()
    async with AsyncClient(socket_dir / "s.sock") as client:
        waiting = asyncio.create_task(client.get("some/key", min_sequence=2, timeout=10))
        await _until(lambda: server.requests.waiting == 1)
        stopping = asyncio.create_task(server.stop(grace=10))
        await _until(lambda: not (socket_dir / "s.sock").exists())
        source.append({"op": "set", "path": "some/key", "value": "last"})
        assert await asyncio.wait_for(waiting, 10) == "last"
        await asyncio.wait_for(stopping, 10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=2048))
async def test_random_bytes_never_break_the_server(server: Server, garbage: bytes) -> None:
    assert server.socket_path is not None
    reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
    writer.write(garbage)
    writer.write_eof()
    async with asyncio.timeout(5):
        answer = await reader.read()
    writer.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 ")
    await _still_answers(server)


async def test_many_idle_connections_do_not_slow_an_active_one(pump: Pump[Any], socket_dir: Path) -> None:
    server = make_server(pump, socket_dir, limits=Limits(max_connections=1600))
    await server.start()
    held: list[asyncio.StreamWriter] = []
    try:
        for _ in range(1500):
            _, writer = await asyncio.open_unix_connection(str(socket_dir / "s.sock"))
            held.append(writer)
        await _until(lambda: server.requests.connections == 1500)
        started = time.monotonic()
        async with AsyncClient(socket_dir / "s.sock") as client:
            for _ in range(100):
                assert await client.get("some/key") == {"x": 1}
        assert time.monotonic() - started < 2.0
    finally:
        for writer in held:
            writer.close()
        await server.stop(grace=1)
