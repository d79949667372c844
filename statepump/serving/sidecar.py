"""The query API: HTTP/1.1 + JSON on a Unix domain socket (and optionally loopback TCP).

The asyncio shell around :mod:`statepump.core.httpapi`. It runs in the pump's event
loop and only reads: every request reads ``pump.version`` once and answers
from that one immutable version. Endpoints are described in
``statepump/openapi.yaml``.

Why it is built the way it is:

* An ``asyncio.Protocol`` per connection, not streams: a cached read is
  parsed, looked up and written inside one ``data_received`` call, with no
  task, future or coroutine. Anything that waits (``?min_sequence``, a huge
  value, ``/v1/watch``) gets its own task, so a slow request or client never
  holds up another connection.
* Encoded responses are cached for the current version (LRU, bounded in
  entries and bytes) and dropped when a new version is published.
* Waiting for ``min_sequence`` is ``pump.wait_for``, a future per waiter:
  thousands of waiters cost memory, not CPU.
* Writes are bounded: when a client stops reading and its buffer passes
  ``Limits.write_buffer`` the connection stops producing (and stops taking
  pipelined requests); if it stays stuck for ``Limits.write_timeout`` it is
  aborted. One sweeper task per server enforces the idle, request and write
  timeouts, so the hot path only stores a timestamp.

>>> Server.__init__.__doc__.splitlines()[0]
'Serve ``pump`` on ``socket_path`` (and on loopback TCP ``listen``).'
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import json
import logging
import os
import socket
import stat
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from statepump.core import statejson
from statepump.core.errors import ConfigError, StatepumpError
from statepump.core.events import Version
from statepump.core.httpapi import (
    DEFAULT_SOCKET_PATH,
    Endpoint,
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
from statepump.serving import metrics
from statepump.settings import is_loopback

log = logging.getLogger(__name__)

SOCKET_MODE: Final = 0o660

_PROMETHEUS: Final = b"text/plain; version=0.0.4; charset=utf-8"
_SSE: Final = b"text/event-stream"
#: Pipelined requests queued behind one that waits, before reading stops.
_MAX_QUEUED: Final = 64


class Servable(Protocol):
    """What the server needs of a pump (``statepump.pump.Pump`` provides it)."""

    version: Version[Any]

    @property
    def ready(self) -> bool: ...

    @property
    def not_ready_reason(self) -> str | None: ...

    def status(self) -> Mapping[str, Any]: ...

    async def wait_for(self, sequence: int, timeout: float | None = None) -> Version[Any]: ...

    def subscribe(self, callback: Callable[[Version[Any], Version[Any]], None]) -> Callable[[], None]: ...


class _Stopping(Exception):
    """A waiting request outlived the server's stop grace."""


class SocketInUse(StatepumpError):
    """Another live process answers on the socket path."""


class Server:
    """The socket API of one pump.

    >>> import tempfile
    >>> from statepump.client import AsyncClient
    >>> from statepump.pump import Pump
    >>> from statepump.sources.memory import MemorySource
    >>> source = MemorySource()
    >>> _ = source.append({"op": "set", "path": "greeting", "value": "hello"})
    >>> async def main(socket_path):
    ...     async with Pump(source) as pump:
    ...         await pump.wait_ready(timeout=5)
    ...         server = Server(pump, socket_path=socket_path)
    ...         await server.start()
    ...         try:
    ...             async with AsyncClient(socket_path) as client:
    ...                 return await client.get("greeting")
    ...         finally:
    ...             await server.stop(grace=5.0)
    >>> with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
    ...     asyncio.run(main(Path(tmp) / "statepump.sock"))
    'hello'
    """

    def __init__(
        self,
        pump: Servable,
        *,
        socket_path: Path | None = DEFAULT_SOCKET_PATH,
        listen: tuple[str, int] | None = None,
        listen_any: bool = False,
        socket_group: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        """Serve ``pump`` on ``socket_path`` (and on loopback TCP ``listen``).

        ``listen`` must be a loopback address unless ``listen_any`` is true;
        ``socket_group`` names the group that owns the socket file (mode 0660).
        Raises :class:`ConfigError` for a non-loopback ``listen`` or an unknown group.
        """
        if socket_path is None and listen is None:
            raise ConfigError("the server needs a socket path or a TCP listen address")
        if listen is not None and not listen_any and not is_loopback(listen[0]):
            raise ConfigError(
                f"listen address {listen[0]!r} is not loopback; the API has no authentication, "
                "so binding beyond this machine needs an explicit listen_any (--listen-any)"
            )
        self._gid: int | None = None
        if socket_group is not None:
            try:
                self._gid = grp.getgrnam(socket_group).gr_gid
            except KeyError:
                raise ConfigError(f"socket group {socket_group!r} does not exist") from None
        self.pump = pump
        self.limits = limits or Limits()
        self.requests = metrics.RequestStats()
        self.registry = metrics.registry(pump, self.requests)
        self._socket_path = socket_path
        self._listen = listen
        self._servers: list[asyncio.Server] = []
        self._socket_inode: tuple[int, int] | None = None
        self._tcp_address: tuple[str, int] | None = None
        self._connections: set[_Connection] = set()
        self._watchers: dict[tuple[str, ...], set[_Watcher]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False
        self._all_closed = asyncio.Event()
        #: Set when stop()'s grace is over: requests still waiting for a sequence number are answered 503.
        self._grace_over = asyncio.Event()
        # Encoded responses of the version in _cache_version, keyed by request target.
        self._cache: OrderedDict[bytes, tuple[bytes, int]] = OrderedDict()
        self._cache_bytes = 0
        self._cache_version: Version[Any] | None = None

    @property
    def socket_path(self) -> Path | None:
        """The Unix socket served, as given (``None`` when serving TCP only)."""
        return self._socket_path

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        """The bound TCP ``(host, port)`` once started (the real port when 0 was asked)."""
        return self._tcp_address

    async def start(self) -> None:
        """Bind and start answering; raises :class:`SocketInUse` if a live server holds the socket."""
        loop = asyncio.get_running_loop()
        try:
            if self._socket_path is not None:
                sock = self._bind_unix(self._socket_path)
                self._servers.append(await loop.create_unix_server(lambda: _Connection(self), sock=sock, backlog=4096))
            if self._listen is not None:
                host, port = self._listen
                tcp = await loop.create_server(lambda: _Connection(self), host, port, reuse_address=True, backlog=4096)
                self._servers.append(tcp)
                bound = tcp.sockets[0].getsockname()
                self._tcp_address = (str(bound[0]), int(bound[1]))
        except BaseException:
            await self._close_listeners()
            raise
        self._unsubscribe = self.pump.subscribe(self._on_publish)
        self._sweeper = asyncio.create_task(self._sweep(), name="statepump-server-sweeper")
        log.info(
            "serving the query API on %s%s",
            self._socket_path if self._socket_path is not None else "-",
            f" and tcp {self._tcp_address[0]}:{self._tcp_address[1]}" if self._tcp_address else "",
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, answer requests in flight (up to ``grace`` seconds), close, remove the socket."""
        self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self._close_listeners()
        for connection in list(self._connections):
            connection.close_when_idle()
        if self._connections:
            self._all_closed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), grace)
        if self._connections:
            # A request still waiting for its sequence number gets an answer, not a reset.
            self._grace_over.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), 1.0)
        for connection in list(self._connections):
            connection.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        # Let connection_lost callbacks of aborted transports run before returning.
        await asyncio.sleep(0)

    async def _close_listeners(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()
        self._remove_socket()

    # ----------------------------------------------------------- the socket file

    def _bind_unix(self, path: Path) -> socket.socket:
        path.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(path))
            # The mode is set before listen(): until then nobody can connect,
            # whatever the umask gave the new file.
            os.chmod(path, SOCKET_MODE)
            if self._gid is not None:
                os.chown(path, -1, self._gid)
            info = os.stat(path)
            self._socket_inode = (info.st_dev, info.st_ino)
            # Bursts of clients (a web app's workers starting) must not overflow the accept queue.
            sock.listen(4096)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise StatepumpError(f"cannot listen on socket {path}: {exc.strerror or exc}") from exc
        return sock

    def _remove_socket(self) -> None:
        if self._socket_path is None or self._socket_inode is None:
            return
        with contextlib.suppress(FileNotFoundError):
            info = os.stat(self._socket_path)
            # Only the file this server created: a successor may already have bound the path.
            if (info.st_dev, info.st_ino) == self._socket_inode:
                self._socket_path.unlink()
        self._socket_inode = None

    # ----------------------------------------------------------- responses

    def cached(self, target: bytes) -> tuple[bytes, int] | None:
        """A cached response to a plain keep-alive ``GET target`` of the current version."""
        if self.pump.version is not self._cache_version:
            return None
        hit = self._cache.get(target)
        if hit is not None:
            self._cache.move_to_end(target)
        return hit

    def remember(self, version: Version[Any], target: bytes, encoded: bytes, status: int) -> None:
        if version is not self._cache_version:
            self._cache.clear()
            self._cache_bytes = 0
            self._cache_version = version
        # Before anything is applied, readiness decides between the state and 503: never cache then.
        if len(encoded) > self.limits.cache_bytes // 16 or version.sequence < 0:
            return
        self._cache[target] = (encoded, status)
        self._cache_bytes += len(encoded)
        while len(self._cache) > self.limits.cache_entries or self._cache_bytes > self.limits.cache_bytes:
            _, (dropped, _) = self._cache.popitem(last=False)
            self._cache_bytes -= len(dropped)

    def not_ready(self, version: Version[Any]) -> str | None:
        """Why state reads are refused: only before anything at all was applied or loaded.

        After that the last good version is served (with its sequence number),
        even while the pump catches up or is stopped by a gap: it is exactly
        the fold of events 0..N, and the client can see N.
        """
        if version.sequence >= 0 or self.pump.ready:
            return None
        return self.pump.not_ready_reason or "the pump has not loaded any state yet"

    def plain(self, endpoint: Endpoint, request: Request) -> tuple[bytes, int]:
        head = request.method == "HEAD"
        keep = request.keep_alive
        if endpoint is Endpoint.HEALTHZ:
            return response(200, b'{"status":"alive"}', keep_alive=keep, http10=request.http10, head=head), 200
        if endpoint is Endpoint.READYZ:
            pump = self.pump
            if pump.ready:
                body = b'{"ready":true,"sequence":%d}' % pump.version.sequence
                return response(200, body, keep_alive=keep, http10=request.http10, head=head), 200
            reason = pump.not_ready_reason or "not ready"
            body = statejson.encode({"ready": False, "reason": reason, "sequence": pump.version.sequence})
            return response(503, body, keep_alive=keep, http10=request.http10, head=head), 503
        if endpoint is Endpoint.STATUS:
            body = json.dumps(self.pump.status(), separators=(",", ":"), default=str).encode()
            return response(200, body, keep_alive=keep, http10=request.http10, head=head), 200
        if endpoint is Endpoint.METRICS:
            body = metrics.exposition(self.registry)
            encoded = response(200, body, content_type=_PROMETHEUS, keep_alive=keep, http10=request.http10, head=head)
            return encoded, 200
        raise AssertionError(endpoint)

    # ----------------------------------------------------------- watchers

    def add_watcher(self, watcher: _Watcher) -> None:
        self._watchers.setdefault(watcher.segments, set()).add(watcher)
        self.requests.watchers += 1

    def remove_watcher(self, watcher: _Watcher) -> None:
        group = self._watchers.get(watcher.segments)
        if group is not None and watcher in group:
            group.discard(watcher)
            self.requests.watchers -= 1
            if not group:
                del self._watchers[watcher.segments]

    def _on_publish(self, old: Version[Any], new: Version[Any]) -> None:
        # Runs in the pump's loop right after a publish: one walk per watched
        # path, not per watcher, and identity says whether a subtree changed.
        for segments, group in self._watchers.items():
            if changed(statejson.walk(old.state, segments), statejson.walk(new.state, segments)):
                for watcher in group:
                    watcher.push(new)

    # ----------------------------------------------------------- connections

    def connection_opened(self, connection: _Connection) -> bool:
        if self._stopping or len(self._connections) >= self.limits.max_connections:
            return False
        self._connections.add(connection)
        self.requests.connections = len(self._connections)
        return True

    def connection_closed(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        self.requests.connections = len(self._connections)
        if not self._connections:
            self._all_closed.set()

    async def _sweep(self) -> None:
        limits = self.limits
        period = max(0.05, min(1.0, limits.idle_timeout / 4, limits.request_timeout / 4, limits.write_timeout / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for connection in list(self._connections):
                connection.check_timeouts(now, limits)


def changed(before: Any, after: Any) -> bool:
    """Whether a watched subtree changed between two versions.

    Persistent structures share unchanged subtrees, so identity settles most
    cases; equal scalars (a value set again) and small equal containers are
    not reported as changes.

    >>> from pyrsistent import freeze
    >>> changed(1000, int("1000")), changed(1, True), changed(freeze([1]), freeze([1]))
    (False, True, False)
    """
    if before is after:
        return False
    if type(before) is not type(after):
        return True
    try:
        if len(before) > 64:
            return True
    except TypeError:
        pass
    return bool(before != after)


def _clear_stale_socket(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise StatepumpError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise StatepumpError(f"cannot tell whether socket {path} is in use: {exc.strerror}") from exc
        # Nobody listens: the file was left by a process that died.
        log.warning("replacing stale socket %s", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        raise SocketInUse(f"another process is serving on {path}; stop it or choose another --socket")
    finally:
        probe.close()


class _Watcher:
    """One ``/v1/watch`` stream: the versions published since it last wrote."""

    __slots__ = ("backlog", "segments", "wake")

    def __init__(self, segments: tuple[str, ...], backlog: int) -> None:
        self.segments = segments
        # A slow watcher loses intermediate versions, never the latest one.
        self.backlog: deque[Version[Any]] = deque(maxlen=backlog)
        self.wake = asyncio.Event()

    def push(self, version: Version[Any]) -> None:
        self.backlog.append(version)
        self.wake.set()


class _Connection(asyncio.Protocol):
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

    def __init__(self, server: Server) -> None:
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
            why = "the server is stopping" if self._server._stopping else "too many connections"
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
        if self._server._stopping and self._task is None and not self._queued:
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
        try:
            target = route(request, server.limits)
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
        if isinstance(target, StateQuery):
            version = server.pump.version
            if target.min_sequence is not None and version.sequence < target.min_sequence:
                self._spawn(self._wait_and_answer(request, target, started))
                return
            self._answer_state(request, target, version, started)
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
        if self._server._stopping:
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
        grace_over = asyncio.ensure_future(self._server._grace_over.wait())
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

    async def _watch(self, watch: Watch) -> None:
        server = self._server
        transport = self._transport
        assert transport is not None
        watcher = _Watcher(watch.segments, server.limits.watch_backlog)
        server.add_watcher(watcher)
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
            server.remove_watcher(watcher)
            self._close()
