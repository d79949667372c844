"""A loopback TCP proxy that can swallow replies: the request reaches the server, the answer never returns.

That is the one network fault a retrying create-only write must survive
without reporting its own success as a conflict.

    proxy = ReplyDroppingProxy(upstream_port)
    port = await proxy.start()
    proxy.drop_replies = 1   # the next reply is read from the server, then the client is cut off
"""

from __future__ import annotations

import asyncio
import contextlib


class ReplyDroppingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.drop_replies = 0
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            self._writers.discard(client_writer)
            self._tasks.discard(task)
            return
        self._writers.add(upstream_writer)

        async def requests() -> None:
            while data := await client_reader.read(65536):
                upstream_writer.write(data)
                await upstream_writer.drain()

        async def replies() -> None:
            while data := await upstream_reader.read(65536):
                if self.drop_replies > 0:
                    self.drop_replies -= 1
                    self.dropped += 1
                    return
                client_writer.write(data)
                await client_writer.drain()

        forward = asyncio.ensure_future(requests())
        backward = asyncio.ensure_future(replies())
        try:
            await asyncio.wait({forward, backward}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (forward, backward):
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await pending
            for writer in (client_writer, upstream_writer):
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
                self._writers.discard(writer)
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Closing the sockets ends every handler through EOF; cancelling them
        # instead would make asyncio log the cancellation as an error.
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
        if self._server is not None:
            await self._server.wait_closed()
