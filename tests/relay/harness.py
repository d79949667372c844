"""An upstream statepump in-process: a pump over a MemorySource, served on a temporary Unix socket."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from statepump.core.history import History
from statepump.pump import Pump
from statepump.serving.sidecar import Server
from statepump.sources.memory import MemorySource


class Shared:
    """One MemorySource read by two relays, as two relays read one hub: closing one reader leaves it open."""

    kind = "memory"

    def __init__(self, source: MemorySource) -> None:
        self.source = source
        self.bounds = source.bounds
        self.read = source.read

    @property
    def last_enqueued(self) -> Any:
        return self.source.last_enqueued

    async def close(self) -> None:
        pass


class Upstream:
    """A running upstream: ``source`` to append to, ``pump``, ``server``, ``socket``."""

    def __init__(self, source: Any, pump: Pump[Any], server: Server, socket: Path) -> None:
        self.source = source
        self.pump = pump
        self.server = server
        self.socket = socket


@asynccontextmanager
async def upstream(
    source: MemorySource | Shared | None = None,
    *,
    history: History | None = None,
    heartbeat: float = 0.2,
    pump_options: dict[str, Any] | None = None,
    **server_options: Any,
) -> AsyncIterator[Upstream]:
    directory = Path(tempfile.mkdtemp(prefix="sp-relay-", dir="/tmp"))  # a socket path must fit in 108 bytes
    source = source if source is not None else MemorySource(max_wait=0.05)
    pump: Pump[Any] = Pump(source, history=history, **(pump_options or {}))
    await pump.start()
    server = Server(pump, socket_path=directory / "up.sock", **server_options)
    server.relay.heartbeat = heartbeat
    await server.start()
    try:
        yield Upstream(source, pump, server, directory / "up.sock")
    finally:
        await server.stop(grace=1.0)
        await pump.stop()
        shutil.rmtree(directory, ignore_errors=True)
