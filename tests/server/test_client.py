"""The blocking and asyncio clients and the query/health commands, against a real server."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any, assert_type

import pytest
from pyrsistent import PMap

from statepump.client import (
    AsyncClient,
    Client,
    NotReady,
    PathNotFound,
    SidecarUnavailable,
    Timeout,
)
from statepump.clientcommands import (
    EXIT_NO_SIDECAR,
    EXIT_NOT_READY,
    EXIT_OK,
    EXIT_PATH_MISSING,
    health_command,
    query_command,
)
from statepump.core.httpapi import Limits
from statepump.pump import Pump
from statepump.serving.sidecar import Server
from statepump.sources.memory import MemorySource
from tests.server.conftest import make_server, publish


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_blocking_client_reads_values_status_and_readiness(server: Server) -> None:
    path = server.socket_path

    def use() -> None:
        with Client(path) as client:  # type: ignore[arg-type]
            assert client.get("some/key") == {"x": 1}
            assert client.get(["other", 2]) == 30
            assert client.get_with_sequence("some") == ({"key": {"x": 1}}, 1)
            assert client.get() == {"some": {"key": {"x": 1}}, "other": [10, 20, 30]}
            assert client.status()["sequence"] == 1
            assert client.ready() is True
            with pytest.raises(PathNotFound, match="'some/nope'") as missing:
                client.get("some/nope")
            assert missing.value.path == "some/nope"
            with pytest.raises(Timeout, match="not reached"):
                client.get("some/key", min_sequence=50, timeout=0.1)
            assert client.get("some/key") == {"x": 1}  # the same connection goes on

    await asyncio.to_thread(use)


async def test_blocking_client_waits_for_min_sequence(server: Server, source: MemorySource) -> None:
    path = server.socket_path

    def use() -> Any:
        with Client(path) as client:  # type: ignore[arg-type]
            return client.get_with_sequence("some/key", min_sequence=2, timeout=10)

    waiting = asyncio.ensure_future(asyncio.to_thread(use))
    await _until(lambda: server.requests.waiting == 1)
    source.append({"op": "set", "path": "some/key", "value": 3})
    assert await asyncio.wait_for(waiting, 10) == (3, 2)


async def test_reconnects_once_when_the_server_closed_an_idle_connection(pump: Pump[Any], socket_dir: Path) -> None:
    server = make_server(pump, socket_dir, limits=Limits(idle_timeout=0.2))
    await server.start()
    try:
        client = Client(socket_dir / "s.sock")
        assert await asyncio.to_thread(client.get, "some/key") == {"x": 1}
        await _until(lambda: server.requests.connections == 0)
        assert await asyncio.to_thread(client.get, "some/key") == {"x": 1}
        client.close()
        async with AsyncClient(socket_dir / "s.sock") as aclient:
            assert await aclient.get("some/key") == {"x": 1}
            await _until(lambda: server.requests.connections == 0)
            assert await aclient.get("some/key") == {"x": 1}
    finally:
        await server.stop(grace=1)


def test_missing_socket_and_refused_socket_name_the_path(socket_dir: Path) -> None:
    missing = socket_dir / "none.sock"
    with pytest.raises(SidecarUnavailable, match=f"{missing} does not exist"):
        Client(missing).get("a")
    stale = socket_dir / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()
    with pytest.raises(SidecarUnavailable, match=f"nothing listens on socket {stale}"):
        Client(stale).status()
    with pytest.raises(SidecarUnavailable, match=str(missing)):
        asyncio.run(AsyncClient(missing).get("a"))


async def test_not_ready_carries_the_reason(socket_dir: Path) -> None:
    pump = Pump(MemorySource())  # never started: nothing loaded
    assert_type(pump, Pump[PMap[Any, Any]])  # without a reducer, mypy knows the config reducer's state
    server = make_server(pump, socket_dir)
    await server.start()
    try:
        async with AsyncClient(socket_dir / "s.sock") as client:
            with pytest.raises(NotReady) as raised:
                await client.get("a")
            assert raised.value.reason == pump.not_ready_reason
            assert await client.ready() is False
        code = await asyncio.to_thread(health_command, socket_dir / "s.sock", True)
        assert code == EXIT_NOT_READY
        assert await asyncio.to_thread(health_command, socket_dir / "s.sock", False) == EXIT_OK
        code = await asyncio.to_thread(query_command, socket_dir / "s.sock", "a")
        assert code == EXIT_NOT_READY
    finally:
        await server.stop(grace=1)


async def test_blocking_watch(server: Server, source: MemorySource, pump: Pump[Any]) -> None:
    path = server.socket_path
    changes = Client(path).watch("some/key")  # type: ignore[arg-type]
    assert await asyncio.to_thread(next, changes) == (1, {"x": 1})
    await publish(source, pump, {"op": "set", "path": "other", "value": 0})
    await publish(source, pump, {"op": "set", "path": "some/key", "value": "v"})
    assert await asyncio.to_thread(next, changes) == (3, "v")
    changes.close()
    await _until(lambda: server.requests.watchers == 0)


async def test_query_and_health_commands(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    path = server.socket_path
    assert await asyncio.to_thread(query_command, path, "some/key") == EXIT_OK  # type: ignore[arg-type]
    assert json.loads(capsys.readouterr().out) == {"x": 1}
    assert await asyncio.to_thread(query_command, path, "some/nope") == EXIT_PATH_MISSING  # type: ignore[arg-type]
    assert "some/nope" in capsys.readouterr().err
    code = await asyncio.to_thread(query_command, path, "some/key", 99, 0.1)  # type: ignore[arg-type]
    assert code == EXIT_NOT_READY
    assert await asyncio.to_thread(health_command, path, True) == EXIT_OK  # type: ignore[arg-type]
    missing = Path(str(path) + ".gone")
    assert await asyncio.to_thread(query_command, missing, "a") == EXIT_NO_SIDECAR
    assert str(missing) in capsys.readouterr().err
    assert await asyncio.to_thread(health_command, missing, True) == EXIT_NO_SIDECAR
