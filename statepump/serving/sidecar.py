"""The query API: HTTP/1.1 + JSON on a Unix domain socket (and optionally loopback TCP).

The asyncio shell around :mod:`statepump.core.httpapi`. It runs in the pump's event
loop and only reads: every request reads ``pump.version`` once and answers
from that one immutable version. Endpoints are described in
``statepump/openapi.yaml``.

This module is the server: the listeners and the socket file, starting and
stopping, the response cache and the timeouts. Each accepted connection is an
:class:`~statepump.serving.apiconnection.ApiConnection` (parse, answer, wait,
stream), and ``/v1/watch`` streams are registered in
:class:`~statepump.serving.watch.Watchers`.

Why it is built the way it is:

* Encoded responses are cached for the current version (LRU, bounded in
  entries and bytes) and dropped when a new version is published, so a
  cached read costs a dictionary lookup and one write.
* One sweeper task per server enforces the idle, request and write
  timeouts of every connection, so the hot path only stores a timestamp.
* Stopping answers what is in flight: after ``grace`` seconds a request still
  waiting for its sequence number is answered 503, not reset.

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
import ssl
import stat
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from statepump.core import statejson
from statepump.core.errors import ConfigError, StatepumpError
from statepump.core.events import Version
from statepump.core.history import History
from statepump.core.httpapi import DEFAULT_SOCKET_PATH, Endpoint, EventQuery, Limits, Request, event_response, response
from statepump.serving import metrics
from statepump.serving.apiconnection import ApiConnection
from statepump.serving.explore import Explorer, StatusStream
from statepump.serving.watch import Watchers
from statepump.settings import is_loopback

log = logging.getLogger(__name__)

SOCKET_MODE: Final = 0o660

_PROMETHEUS: Final = b"text/plain; version=0.0.4; charset=utf-8"


class Servable(Protocol):
    """What the server needs of a pump (``statepump.pump.Pump`` provides it)."""

    version: Version[Any]

    @property
    def ready(self) -> bool: ...

    @property
    def not_ready_reason(self) -> str | None: ...

    def status(self) -> Mapping[str, Any]: ...

    @property
    def history(self) -> History: ...

    async def wait_for(self, sequence: int, timeout: float | None = None) -> Version[Any]: ...

    def subscribe(self, callback: Callable[[Version[Any], Version[Any]], None]) -> Callable[[], None]: ...


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
        relay_token: bytes | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """Serve ``pump`` on ``socket_path`` (and on loopback TCP ``listen``).

        ``listen`` must be a loopback address unless ``listen_any`` is true;
        ``socket_group`` names the group that owns the socket file (mode 0660).
        ``relay_token`` is the bearer token TCP clients of the relay feed and
        snapshot must send (without one, a server beyond loopback refuses them
        there); ``tls`` serves TCP with TLS.
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
        self._connections: set[ApiConnection] = set()
        self.watchers = Watchers(self.requests)
        from statepump.serving.relayserving import RelayServing

        beyond_loopback = listen is not None and not is_loopback(listen[0])
        self.relay = RelayServing(pump, token=relay_token, tcp_needs_token=beyond_loopback)
        self._tls = tls
        #: History, diffs, paged children and the console (statepump/serving/explore.py).
        self.explorer = Explorer(pump)
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

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` began: connections answer what is in flight and take nothing new."""
        return self._stopping

    @property
    def grace_over(self) -> asyncio.Event:
        """Set when :meth:`stop`'s grace is over: requests still waiting for a sequence number are answered 503."""
        return self._grace_over

    async def start(self) -> None:
        """Bind and start answering; raises :class:`SocketInUse` if a live server holds the socket."""
        loop = asyncio.get_running_loop()
        try:
            if self._socket_path is not None:
                sock = self._bind_unix(self._socket_path)
                self._servers.append(
                    await loop.create_unix_server(lambda: ApiConnection(self), sock=sock, backlog=4096)
                )
            if self._listen is not None:
                host, port = self._listen
                tcp = await loop.create_server(
                    lambda: ApiConnection(self), host, port, reuse_address=True, backlog=4096, ssl=self._tls
                )
                self._servers.append(tcp)
                bound = tcp.sockets[0].getsockname()
                self._tcp_address = (str(bound[0]), int(bound[1]))
        except BaseException:
            await self._close_listeners()
            raise
        self._unsubscribe = self.pump.subscribe(self.watchers.publish)
        self.explorer.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="statepump-server-sweeper")
        log.info(
            "serving the query API on %s%s",
            self._socket_path if self._socket_path is not None else "-",
            f" and tcp {self._tcp_address[0]}:{self._tcp_address[1]}" if self._tcp_address else "",
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, answer requests in flight (up to ``grace`` seconds), close, remove the socket."""
        self._stopping = True
        self.explorer.stop()
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

    def event(self, query: EventQuery, request: Request) -> tuple[bytes, int]:
        return event_response(self.pump.history, query, request)

    def explore(self, request: Request, peer: Any = None) -> tuple[bytes, int, str] | StatusStream:
        return self.explorer.answer(request, peer)

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

    # ----------------------------------------------------------- connections

    def connection_opened(self, connection: ApiConnection) -> bool:
        if self._stopping or len(self._connections) >= self.limits.max_connections:
            return False
        self._connections.add(connection)
        self.requests.connections = len(self._connections)
        return True

    def connection_closed(self, connection: ApiConnection) -> None:
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
