"""One client connection to the socket API: parse, route, answer in order, wait, stream.

The per-connection half of the sidecar (:mod:`statepump.serving.sidecar` owns
the listeners, the response cache and the sweeper; :mod:`statepump.core.httpapi`
parses and renders). A connection knows its server only through :class:`Host`,
so this module imports nothing of the server's.

Why it is built the way it is:

* An ``asyncio.Protocol`` per connection, not streams: a cached read is
  parsed, looked up and written inside one ``data_received`` call, with no
  task, future or coroutine. Anything that waits (``?min_sequence``, a huge
  value, ``/v1/watch``) gets its own task, so a slow request or client never
  holds up another connection.
* Pipelined requests are answered in order: while one waits, the ones behind
  it queue (up to ``_MAX_QUEUED``, then reading stops).
* Waiting for ``min_sequence`` is ``pump.wait_for``, a future per waiter:
  thousands of waiters cost memory, not CPU.
* Writes are bounded: when a client stops reading and its buffer passes
  ``Limits.write_buffer`` the connection stops producing (and stops taking
  pipelined requests); if it stays stuck for ``Limits.write_timeout`` the
  server's sweeper aborts it (:meth:`ApiConnection.check_timeouts`), so the
  hot path only stores a timestamp.

A server hands each accepted socket to a new connection (``Server.start``
does it for its listeners; here, one end of a socket pair):

>>> import socket
>>> from statepump.pump import Pump
>>> from statepump.serving.sidecar import Server
>>> from statepump.sources.memory import MemorySource
>>> async def healthz():
...     server = Server(Pump(MemorySource()), socket_path=None, listen=("127.0.0.1", 0))
...     ours, theirs = socket.socketpair()
...     await asyncio.get_running_loop().connect_accepted_socket(lambda: ApiConnection(server), ours)
...     reader, writer = await asyncio.open_connection(sock=theirs)
...     writer.write(b"GET /healthz HTTP/1.1\\r\\nHost: statepump\\r\\n\\r\\n")
...     status = await reader.readline()
...     writer.close()
...     await writer.wait_closed()
...     await asyncio.sleep(0)
...     return status
>>> asyncio.run(healthz())
b'HTTP/1.1 200 OK\\r\\n'
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any, Final, Protocol

from statepump.core import statejson
from statepump.core.events import Version
from statepump.core.httpapi import (
    Endpoint,
    EventQuery,
    HttpError,
    Limits,
    Plain,
    Request,
    RequestParser,
    StateQuery,
    Streamed,
    Watch,
    chunk,
    error_body,
    error_response,
    response,
    route,
    sse_event,
    state_response,
    stream_head,
)
from statepump.serving import relayserving
from statepump.serving.explore import PREFIXES as EXPLORE_PREFIXES
from statepump.serving.explore import StatusStream
from statepump.serving.metrics import RequestStats
from statepump.serving.watch import Watcher, Watchers, changed

log = logging.getLogger(__name__)

_SSE: Final = b"text/event-stream"
#: Pipelined requests queued behind one that waits, before reading stops.
_MAX_QUEUED: Final = 64


class Waitable(Protocol):
    """What a connection reads of the pump (``statepump.serving.sidecar.Servable`` is more)."""

    @property
    def version(self) -> Version[Any]: ...

    @property
    def ready(self) -> bool: ...

    @property
    def not_ready_reason(self) -> str | None: ...

    async def wait_for(self, sequence: int, timeout: float | None = None) -> Version[Any]: ...


class Host(Protocol):
    """What a connection needs of its server (``statepump.serving.sidecar.Server`` provides it)."""

    @property
    def pump(self) -> Waitable: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def requests(self) -> RequestStats: ...

    @property
    def watchers(self) -> Watchers: ...

    @property
    def relay(self) -> relayserving.RelayServing:
        """The replication feed and the snapshot download (``/v1/events?after=N``, ``/v1/snapshot``)."""
        ...

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` began: answer what is in flight, take nothing new."""
        ...

    @property
    def grace_over(self) -> asyncio.Event:
        """Set when ``stop()``'s grace is over: requests still waiting for a sequence number are answered 503."""
        ...

    def connection_opened(self, connection: ApiConnection) -> bool:
        """Count ``connection`` in; false when it must be refused (stopping, or too many)."""
        ...

    def connection_closed(self, connection: ApiConnection) -> None: ...

    def cached(self, target: bytes) -> tuple[bytes, int] | None: ...

    def remember(self, version: Version[Any], target: bytes, encoded: bytes, status: int) -> None: ...

    def not_ready(self, version: Version[Any]) -> str | None: ...

    def plain(self, endpoint: Endpoint, request: Request) -> tuple[bytes, int]: ...

    def explore(self, request: Request, peer: Any) -> tuple[bytes, int, str] | StatusStream:
        """``/v1/history``, ``/v1/diff``, ``/v1/children``, ``/ui``: the response, its status, its metrics label
        (or the console's status stream)."""
        ...

    def event(self, query: EventQuery, request: Request) -> tuple[bytes, int]:
        """``GET /v1/events/{sequence}``: one recent event and its outcome."""
        ...


class _Stopping(Exception):
    """A waiting request outlived the server's stop grace."""


class ApiConnection(asyncio.Protocol):
    """One client connection: parse, answer in order, enforce the limits."""

    __slots__ = (
        "_closing",
        "_drained",
        "_last_active",
        "_paused_since",
        "_queued",
        "_reading",
        "_request_started",
        "_server",
        "_streaming",
        "_task",
        "_transport",
        "parser",
    )

    def __init__(self, server: Host) -> None:
        self._server = server
        self.parser = RequestParser(server.limits)
        self._transport: asyncio.Transport | None = None
        self._queued: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._streaming = False
        self._reading = True
        self._paused_since: float | None = None
        self._drained: asyncio.Future[None] | None = None
        self._last_active = time.monotonic()
        self._request_started = self._last_active

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._server.connection_opened(self):
            self._closing = True
            why = "the server is stopping" if self._server.stopping else "too many connections"
            transport.write(error_response(503, why, keep_alive=False))
            transport.close()
            return
        transport.set_write_buffer_limits(high=self._server.limits.write_buffer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._server.connection_closed(self)
        if self._task is not None:
            self._task.cancel()
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(ConnectionResetError("client went away"))
            # Retrieved here so an unawaited drain does not log "exception never retrieved".
            self._drained.exception()

    def pause_writing(self) -> None:
        self._paused_since = time.monotonic()

    def resume_writing(self) -> None:
        self._paused_since = None
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None
        self._process()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        now = time.monotonic()
        self._last_active = now
        if self._streaming:
            return  # a watch stream ignores what the client sends after its request
        if not self.parser.in_progress:
            self._request_started = now
        try:
            requests = self.parser.feed(data)
        except HttpError as error:
            self._fail(error)
            return
        if self._task is not None or self._queued or self._paused_since is not None:
            self._queued.extend(requests)
            if len(self._queued) > _MAX_QUEUED:
                self._pause_reading()
            return
        for request in requests:
            if self._task is not None or self._paused_since is not None or self._closing:
                self._queued.append(request)
            else:
                self._handle(request)

    def eof_received(self) -> bool | None:
        if self._streaming:
            self._close()  # a watcher that hangs up is done
            return False
        # A half-closed client still gets the answers to what it sent.
        return bool(self._task is not None or self._queued)

    # helpers used by the server

    def close_when_idle(self) -> None:
        if self._task is None and not self._queued:
            self._close()
        elif self._streaming and self._task is not None:
            self._task.cancel()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def check_timeouts(self, now: float, limits: Limits) -> None:
        if self._closing or self._transport is None:
            return
        if self._paused_since is not None and now - self._paused_since > limits.write_timeout:
            log.info("disconnecting a client that read nothing for %.0f s", limits.write_timeout)
            self._transport.abort()
        elif self.parser.in_progress and self._task is None and now - self._request_started > limits.request_timeout:
            self._fail(HttpError(408, f"request not complete within {limits.request_timeout:g} s"))
        elif (
            self._task is None
            and not self._queued
            and not self.parser.in_progress
            and now - self._last_active > limits.idle_timeout
        ):
            self._close()

    # the request path

    def _process(self) -> None:
        while self._queued and self._task is None and self._paused_since is None and not self._closing:
            self._handle(self._queued.popleft())
        if self._server.stopping and self._task is None and not self._queued:
            self._close()  # answered what was in flight; a stopping server takes nothing new
            return
        if not self._reading and not self._queued and not self._closing and self._task is None:
            self._reading = True
            assert self._transport is not None
            self._transport.resume_reading()

    def _pause_reading(self) -> None:
        if self._reading and self._transport is not None:
            self._reading = False
            self._transport.pause_reading()

    def _handle(self, request: Request) -> None:
        started = time.perf_counter()
        server = self._server
        transport = self._transport
        assert transport is not None
        if request.if_none_match is None and request.keep_alive and request.method == "GET" and not request.http10:
            hit = server.cached(request.target)
            if hit is not None:
                transport.write(hit[0])
                server.requests.observe("state", hit[1], time.perf_counter() - started)
                return
        if request.target.startswith(EXPLORE_PREFIXES):  # history, diff, children, the console
            answered = server.explore(request, transport.get_extra_info("peername"))
            if isinstance(answered, tuple):
                encoded, status, label = answered
                self._answer(request, label, status, encoded, started)
            else:  # the console's status stream
                self._streaming = True
                server.requests.observe("ui", 200, 0.0)
                self._spawn(answered.run(transport.write, self._drain, lambda: self._closing, self._close))
            return
        try:
            target = relayserving.relay_route(request) or route(request, server.limits)
        except HttpError as error:
            self._answer(
                request,
                "other",
                error.status,
                error_response(
                    error.status, error.message, keep_alive=request.keep_alive, head=request.method == "HEAD"
                ),
                started,
            )
            return
        if isinstance(target, relayserving.Feed | relayserving.SnapshotQuery):
            self._streaming = isinstance(target, relayserving.Feed)  # a feed ignores what the client sends next
            self._spawn(self._relay(request, target, started))
            return
        if isinstance(target, StateQuery):
            version = server.pump.version
            if target.min_sequence is not None and version.sequence < target.min_sequence:
                self._spawn(self._wait_and_answer(request, target, started))
                return
            self._answer_state(request, target, version, started)
        elif isinstance(target, EventQuery):
            encoded, status = server.event(target, request)
            self._answer(request, Endpoint.EVENT.value, status, encoded, started)
        elif isinstance(target, Plain):
            try:
                encoded, status = server.plain(target.endpoint, request)
            except Exception:
                log.exception("answering %s failed", target.endpoint.value)
                encoded, status = error_response(500, "internal error", keep_alive=request.keep_alive), 500
            self._answer(request, target.endpoint.value, status, encoded, started)
        elif isinstance(target, Watch):
            if request.method == "HEAD":
                encoded = stream_head(200, _SSE, [(b"Cache-Control", b"no-cache")], keep_alive=False)
                self._answer(request, "watch", 200, encoded, started, close=True)
                return
            self._streaming = True
            self._spawn(self._watch(target))

    def _answer_state(self, request: Request, query: StateQuery, version: Version[Any], started: float) -> None:
        server = self._server
        reason = server.not_ready(version)
        if reason is not None:
            body = error_body(503, f"not ready: {reason}", reason=reason)
            encoded = response(503, body, keep_alive=request.keep_alive, head=request.method == "HEAD")
            self._answer(request, "state", 503, encoded, started)
            return
        try:
            result = state_response(version, query, request)
        except (TypeError, ValueError) as exc:
            # A state holding something JSON cannot express is the reducer's bug, not the client's.
            log.error("cannot encode the value at %r: %s", query.path, exc)
            result = error_response(
                500, f"the value at {query.path!r} cannot be encoded as JSON", keep_alive=request.keep_alive
            )
        if isinstance(result, Streamed):
            self._spawn(self._stream(request, result, started))
            return
        status = int(result[9:12])
        if (
            query.min_sequence is None
            and request.method == "GET"
            and request.keep_alive
            and request.if_none_match is None
            and not request.http10
            and status in (200, 404)
        ):
            server.remember(version, request.target, result, status)
        self._answer(request, "state", status, result, started)

    def _answer(
        self, request: Request, endpoint: str, status: int, encoded: bytes, started: float, close: bool = False
    ) -> None:
        assert self._transport is not None
        self._transport.write(encoded)
        self._server.requests.observe(endpoint, status, time.perf_counter() - started)
        if close or not request.keep_alive:
            self._close()

    def _fail(self, error: HttpError) -> None:
        self._server.requests.observe("other", error.status, 0.0)
        if self._transport is not None and not self._closing:
            self._transport.write(error_response(error.status, error.message, keep_alive=False))
        self._close()

    def _close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._task = asyncio.get_running_loop().create_task(coroutine)
        self._task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._task = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("a request task failed: %r", exc)
            self.abort()
            return
        self._process()
        if self._server.stopping:
            self.close_when_idle()  # no keep-alive while stopping: stop() need not wait out its grace

    async def _drain(self) -> None:
        if self._paused_since is None:
            return
        if self._closing:
            raise ConnectionResetError("client went away")
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        # The sweeper aborts the connection after write_timeout, which fails this future.
        await asyncio.shield(self._drained)

    async def _wait_unless_stopping(self, sequence: int, timeout: float | None) -> Version[Any]:
        waiting = asyncio.ensure_future(self._server.pump.wait_for(sequence, timeout))
        grace_over = asyncio.ensure_future(self._server.grace_over.wait())
        try:
            await asyncio.wait({waiting, grace_over}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            grace_over.cancel()
            if not waiting.done():
                waiting.cancel()
        if not waiting.done() or waiting.cancelled():
            raise _Stopping
        return waiting.result()

    async def _wait_and_answer(self, request: Request, query: StateQuery, started: float) -> None:
        assert query.min_sequence is not None
        stats = self._server.requests
        stats.waiting += 1
        try:
            version = await self._wait_unless_stopping(query.min_sequence, query.timeout)
        except _Stopping:
            current = self._server.pump.version.sequence
            message = (
                f"the server is stopping; sequence {query.min_sequence} was not reached (the pump is at {current})"
            )
            body = error_body(503, message, min_sequence=query.min_sequence, sequence=current)
            self._answer(request, "state", 503, response(503, body, keep_alive=False), started, close=True)
            return
        except TimeoutError:
            current = self._server.pump.version.sequence
            message = f"sequence {query.min_sequence} not reached within {query.timeout:g} s (the pump is at {current})"
            reason = None if self._server.pump.ready else self._server.pump.not_ready_reason
            body = error_body(504, message, min_sequence=query.min_sequence, sequence=current, reason=reason)
            encoded = response(504, body, keep_alive=request.keep_alive, head=request.method == "HEAD")
            self._answer(request, "state", 504, encoded, started)
            return
        finally:
            stats.waiting -= 1
        self._answer_state(request, query, version, started)

    async def _stream(self, request: Request, streamed: Streamed, started: float) -> None:
        assert self._transport is not None
        self._transport.write(streamed.head)
        if request.method != "HEAD":
            for piece in statejson.iter_encode(streamed.value):
                self._transport.write(chunk(piece))
                await self._drain()
                # Yield to the loop between chunks: other clients go on while a huge value is sent.
                await asyncio.sleep(0)
            self._transport.write(b"0\r\n\r\n")
        self._server.requests.observe("state", 200, time.perf_counter() - started)
        if not request.keep_alive:
            self._close()

    async def _relay(
        self, request: Request, target: relayserving.Feed | relayserving.SnapshotQuery, started: float
    ) -> None:
        transport = self._transport
        assert transport is not None
        relay = self._server.relay
        endpoint = "feed" if isinstance(target, relayserving.Feed) else "snapshot"
        peer = transport.get_extra_info("peername")
        refusal = relay.refusal(request, peer, over_tcp=isinstance(transport.get_extra_info("sockname"), tuple))
        if refusal is not None:
            self._answer(request, endpoint, 401, refusal, started, close=True)
            return
        try:
            if isinstance(target, relayserving.Feed):
                status = await relay.answer_feed(target, request, transport.write, self._drain, lambda: self._closing)
            else:
                status = await relay.answer_snapshot(request, transport.write, self._drain)
        except (ConnectionError, asyncio.CancelledError):
            self._close()
            return
        self._server.requests.observe(endpoint, status, time.perf_counter() - started)
        if self._streaming or not request.keep_alive:
            self._close()

    async def _watch(self, watch: Watch) -> None:
        server = self._server
        transport = self._transport
        assert transport is not None
        watcher = Watcher(watch.segments, server.limits.watch_backlog)
        server.watchers.add(watcher)
        server.requests.observe("watch", 200, 0.0)
        try:
            headers = [(b"Cache-Control", b"no-cache"), (b"X-Accel-Buffering", b"no")]
            transport.write(stream_head(200, _SSE, headers, keep_alive=False))
            version = server.pump.version
            last = statejson.walk(version.state, watch.segments)
            # The first event is the current value, so the client needs no separate read.
            transport.write(chunk(sse_event(version.sequence, last)))
            sent_sequence = version.sequence
            while not self._closing:
                try:
                    await asyncio.wait_for(watcher.wake.wait(), server.limits.watch_heartbeat)
                except TimeoutError:
                    transport.write(chunk(b": keep-alive\n\n"))
                    await self._drain()
                    continue
                watcher.wake.clear()
                while watcher.backlog:
                    version = watcher.backlog.popleft()
                    if version.sequence <= sent_sequence:
                        continue
                    value = statejson.walk(version.state, watch.segments)
                    if changed(last, value):
                        transport.write(chunk(sse_event(version.sequence, value)))
                        last = value
                        sent_sequence = version.sequence
                        await self._drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            server.watchers.remove(watcher)
            self._close()
