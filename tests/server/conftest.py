"""Fixtures of the socket API tests: a real pump over a MemorySource, served on a temporary Unix socket."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from statepump.core.httpapi import Limits
from statepump.pump import Pump
from statepump.serving.sidecar import Server
from statepump.sources.memory import MemorySource


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Short, because a Unix socket path must fit in 108 bytes and pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="sp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def source() -> MemorySource:
    src = MemorySource(max_wait=0.05)
    src.append({"op": "set", "path": "some/key", "value": {"x": 1}})
    src.append({"op": "set", "path": "other", "value": [10, 20, 30]})
    return src


@pytest.fixture
async def pump(source: MemorySource) -> AsyncIterator[Pump[Any]]:
    p: Pump[Any] = Pump(source)
    await p.start()
    await p.wait_ready(timeout=10)
    yield p
    await p.stop()


async def publish(source: MemorySource, pump: Pump[Any], body: Any) -> int:
    """Append an event and wait until the pump applied it; returns its sequence number."""
    sequence = source.append(body).sequence
    await pump.wait_for(sequence, timeout=10)
    return sequence


def make_server(pump: Any, socket_dir: Path, **kwargs: Any) -> Server:
    kwargs.setdefault("limits", Limits())
    return Server(pump, socket_path=socket_dir / "s.sock", **kwargs)


@pytest.fixture
async def server(pump: Pump[Any], socket_dir: Path) -> AsyncIterator[Server]:
    s = make_server(pump, socket_dir)
    await s.start()
    yield s
    await s.stop(grace=1.0)


async def raw_exchange(path: Path, data: bytes, *, read_timeout: float = 5.0, head: bool = False) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it (or one response arrived)."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(data)
        await writer.drain()
        received = b""
        async with asyncio.timeout(read_timeout):
            while True:
                piece = await reader.read(65536)
                if not piece:
                    break
                received += piece
                if _complete(received, head):
                    break
        return received
    finally:
        writer.close()


def _complete(received: bytes, head_only: bool) -> bool:
    head, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    if head_only:
        return True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
        if name.strip().lower() == b"transfer-encoding":
            return body.endswith(b"0\r\n\r\n")
    return b" 304 " in head.split(b"\r\n")[0]


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def header(response: bytes, name: str) -> str | None:
    head = response.partition(b"\r\n\r\n")[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]
