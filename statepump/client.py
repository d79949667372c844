"""Clients of the statepump sidecar's socket API.

:class:`Client` (blocking) and :class:`AsyncClient` (asyncio) keep one
keep-alive connection to the Unix socket and reconnect once when the server
closed an idle one. They only move bytes: the requests, the parsing of the
answers and the errors are the sans-I/O core they share,
:mod:`statepump.core.clientprotocol`, and its errors are importable from here.
Errors say what happened:

* :class:`SidecarUnavailable`: no socket file, or nobody listening on it;
* :class:`NotReady`: the sidecar has no state to serve yet (``reason`` says why);
* :class:`PathNotFound`: nothing at that path in the state;
* :class:`Timeout`: ``min_sequence`` not reached in time, or no answer.

Usage (``tests/server/test_client.py`` makes the same calls to a real sidecar)::

    with Client("/run/statepump/statepump.sock") as sidecar:
        rate = sidecar.get("markup/tshirt")
        rate, seq = sidecar.get_with_sequence("markup/tshirt", min_sequence=42, timeout=2)

Paths are ``"a/b/c"`` strings or sequences of segments (integers index
lists); use a sequence when a key itself contains a slash. The
``statepump query`` and ``statepump health`` commands over :class:`Client`
are :mod:`statepump.clientcommands`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httptools

from statepump.core.clientprotocol import (
    NotReady,
    PathLike,
    PathNotFound,
    RequestRejected,
    Response,
    SidecarError,
    SidecarUnavailable,
    Timeout,
    WatchResponse,
    error_fields,
    raise_for,
    request,
    segments_of,
    state_target,
    unavailable,
    value_of,
    watch_target,
)
from statepump.core.httpapi import DEFAULT_SOCKET_PATH

__all__ = [
    "AsyncClient",
    "Client",
    "NotReady",
    "PathLike",
    "PathNotFound",
    "RequestRejected",
    "SidecarError",
    "SidecarUnavailable",
    "Timeout",
]


# ------------------------------------------------------------- blocking


class Client:
    """A blocking client of the sidecar (one keep-alive connection; not thread-safe).

    ``timeout`` bounds every wait for the sidecar in seconds; a read with
    ``min_sequence`` waits up to its own ``timeout`` on top.

    >>> Client("/nonexistent/s.sock").get("a")
    Traceback (most recent call last):
    ...
    statepump.core.clientprotocol.SidecarUnavailable: no statepump sidecar: socket /nonexistent/s.sock does not exist
    """

    def __init__(self, socket_path: str | Path = DEFAULT_SOCKET_PATH, *, timeout: float = 10.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._response = Response()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError as exc:
            sock.close()
            raise unavailable(self.socket_path, exc) from None
        return sock

    def _exchange(self, target: bytes, wait: float = 0.0) -> Response:
        timeout = self.timeout + wait
        reused = self._sock is not None
        for attempt in (0, 1):
            sock = self._sock
            if sock is None:
                sock = self._sock = self._connect(timeout)
                self._response = Response()
            elif wait:
                sock.settimeout(timeout)
            result = self._response
            result.reset()
            try:
                sock.sendall(request(target))
                while not result.complete:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionResetError("the sidecar closed the connection")
                    result.parser.feed_data(data)
            except TimeoutError:
                self.close()
                raise Timeout(f"no answer from the sidecar on {self.socket_path} within {timeout:g} s") from None
            except (OSError, httptools.HttpParserError) as exc:
                self.close()
                # A kept-alive connection the server closed meanwhile: retry once on a new one (GET is idempotent).
                if attempt == 0 and reused and not result.body and not result.status:
                    continue
                if isinstance(exc, OSError):
                    raise unavailable(self.socket_path, exc) from None
                raise SidecarError(f"malformed answer from the sidecar: {exc}") from None
            if wait:
                sock.settimeout(self.timeout)
            return result
        raise AssertionError("unreachable")

    def get_with_sequence(
        self, path: PathLike = "", min_sequence: int | None = None, timeout: float | None = None
    ) -> tuple[Any, int]:
        """The value at ``path`` and the sequence number of the version it was read from."""
        target = state_target(path, min_sequence, timeout)
        wait = (timeout if timeout is not None else 30.0) if min_sequence is not None else 0.0
        result = self._exchange(target, wait)
        body = result.body[0] if len(result.body) == 1 else b"".join(result.body)
        value = value_of(result.status, body, "/".join(segments_of(path)))
        return value, result.sequence if result.sequence is not None else -1

    def get(self, path: PathLike = "", min_sequence: int | None = None, timeout: float | None = None) -> Any:
        """The JSON value at ``path`` (``""``: the whole state), once the sidecar reached ``min_sequence``."""
        target = state_target(path, min_sequence, timeout)
        wait = (timeout if timeout is not None else 30.0) if min_sequence is not None else 0.0
        result = self._exchange(target, wait)
        body = result.body[0] if len(result.body) == 1 else b"".join(result.body)
        if result.status == 200:
            return json.loads(body)
        return value_of(result.status, body, "/".join(segments_of(path)))

    def status(self) -> dict[str, Any]:
        """The sidecar's ``/v1/status`` object."""
        result = self._exchange(b"/v1/status")
        body = b"".join(result.body)
        if result.status != 200:
            raise_for(result.status, body, "")
        decoded: dict[str, Any] = json.loads(body)
        return decoded

    def history(
        self, path: PathLike = "", *, limit: int = 100, before: int | None = None, after: int | None = None
    ) -> dict[str, Any]:
        """``/v1/history``: the recent changes that touched ``path``, newest first (see the README)."""
        query = {"path": "/".join(segments_of(path)), "limit": limit, "before": before, "after": after}
        return self._document(b"/v1/history?" + _encode_query(query), "/".join(segments_of(path)))

    def diff(self, start: int, end: int, path: PathLike = "") -> dict[str, Any]:
        """``/v1/diff``: what changed at or below ``path`` from the state at ``start`` to the one at ``end``."""
        query = {"from": start, "to": end, "path": "/".join(segments_of(path))}
        return self._document(b"/v1/diff?" + _encode_query(query), "/".join(segments_of(path)))

    def event(self, sequence: int) -> dict[str, Any] | None:
        """``/v1/events/{sequence}``: the event and its outcome (``applied``, ``rejected``, ``poisoned``)
        while the sidecar keeps it; ``None`` when it does not (not folded yet, or older than its ring)."""
        result = self._exchange(b"/v1/events/%d" % sequence)
        body = b"".join(result.body)
        if result.status == 404:
            return None
        if result.status != 200:
            raise_for(result.status, body, "")
        decoded: dict[str, Any] = json.loads(body)
        return decoded

    def _document(self, target: bytes, path: str) -> dict[str, Any]:
        result = self._exchange(target)
        body = b"".join(result.body)
        if result.status != 200:
            raise_for(result.status, body, path)
        decoded: dict[str, Any] = json.loads(body)
        return decoded

    def alive(self) -> bool:
        """Whether the sidecar answers ``/healthz`` with 200 (the liveness probe)."""
        return self._exchange(b"/healthz").status == 200

    def ready(self) -> bool:
        """Whether the sidecar is caught up (``/readyz`` answers 200)."""
        return self._exchange(b"/readyz").status == 200

    def ready_reason(self) -> str | None:
        """``None`` when ready, else the sidecar's reason."""
        result = self._exchange(b"/readyz")
        if result.status == 200:
            return None
        return str(error_fields(b"".join(result.body)).get("reason", f"HTTP {result.status}"))

    def watch(self, path: PathLike = "", idle_timeout: float = 60.0) -> Generator[tuple[int, Any], None, None]:
        """``(sequence, value)`` for the current value at ``path``, then for each change.

        ``value`` is ``None`` when the path does not exist (or was deleted).
        Uses a connection of its own; close the iterator to stop watching.
        """
        target = watch_target(path)
        sock = self._connect(self.timeout)
        try:
            sock.sendall(request(target))
            sock.settimeout(idle_timeout)
            answer = WatchResponse(path)
            while True:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    raise Timeout(f"watch: nothing from the sidecar for {idle_timeout:g} s") from None
                if not data:
                    raise SidecarUnavailable(f"the sidecar on {self.socket_path} closed the watch stream")
                yield from answer.feed(data)
        finally:
            sock.close()


def _encode_query(params: dict[str, Any]) -> bytes:
    """A query string of the parameters that are set (``None`` and ``""`` are left out)."""
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in params.items() if v is not None and v != ""}).encode("ascii")


# ------------------------------------------------------------- asyncio


class AsyncClient:
    """The asyncio counterpart of :class:`Client` (one connection, calls serialised by a lock).

    Usage::

        async with AsyncClient("/run/statepump/statepump.sock") as sidecar:
            print(await sidecar.get("markup/tshirt"))
            async for sequence, value in sidecar.watch("markup"):
                print(sequence, value)
    """

    def __init__(self, socket_path: str | Path = DEFAULT_SOCKET_PATH, *, timeout: float = 10.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection."""
        writer = self._writer
        self._reader = self._writer = None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(asyncio.open_unix_connection(str(self.socket_path)), self.timeout)
        except TimeoutError:
            raise Timeout(f"no answer from the sidecar on {self.socket_path} within {self.timeout:g} s") from None
        except OSError as exc:
            raise unavailable(self.socket_path, exc) from None

    async def _exchange(self, target: bytes, wait: float = 0.0) -> Response:
        async with self._lock:
            reused = self._writer is not None
            for attempt in (0, 1):
                if self._reader is None or self._writer is None:
                    self._reader, self._writer = await self._connect()
                reader, writer = self._reader, self._writer
                result = Response()
                try:
                    writer.write(request(target))
                    async with asyncio.timeout(self.timeout + wait):
                        while not result.complete:
                            data = await reader.read(65536)
                            if not data:
                                raise ConnectionResetError("the sidecar closed the connection")
                            result.parser.feed_data(data)
                except TimeoutError:
                    await self.close()
                    raise Timeout(
                        f"no answer from the sidecar on {self.socket_path} within {self.timeout + wait:g} s"
                    ) from None
                except (OSError, httptools.HttpParserError) as exc:
                    await self.close()
                    if attempt == 0 and reused and not result.body and not result.status:
                        continue
                    if isinstance(exc, OSError):
                        raise unavailable(self.socket_path, exc) from None
                    raise SidecarError(f"malformed answer from the sidecar: {exc}") from None
                return result
        raise AssertionError("unreachable")

    async def get_with_sequence(
        self, path: PathLike = "", min_sequence: int | None = None, timeout: float | None = None
    ) -> tuple[Any, int]:
        """The value at ``path`` and the sequence number of the version it was read from."""
        target = state_target(path, min_sequence, timeout)
        wait = (timeout if timeout is not None else 30.0) if min_sequence is not None else 0.0
        result = await self._exchange(target, wait)
        value = value_of(result.status, b"".join(result.body), "/".join(segments_of(path)))
        return value, result.sequence if result.sequence is not None else -1

    async def get(self, path: PathLike = "", min_sequence: int | None = None, timeout: float | None = None) -> Any:
        """The JSON value at ``path`` (``""``: the whole state), once the sidecar reached ``min_sequence``."""
        value, _ = await self.get_with_sequence(path, min_sequence, timeout)
        return value

    async def status(self) -> dict[str, Any]:
        """The sidecar's ``/v1/status`` object."""
        result = await self._exchange(b"/v1/status")
        body = b"".join(result.body)
        if result.status != 200:
            raise_for(result.status, body, "")
        decoded: dict[str, Any] = json.loads(body)
        return decoded

    async def ready(self) -> bool:
        """Whether the sidecar is caught up (``/readyz`` answers 200)."""
        return (await self._exchange(b"/readyz")).status == 200

    async def watch(self, path: PathLike = "", idle_timeout: float = 60.0) -> AsyncGenerator[tuple[int, Any], None]:
        """``(sequence, value)`` for the current value at ``path``, then for each change (own connection)."""
        target = watch_target(path)
        reader, writer = await self._connect()
        try:
            writer.write(request(target))
            answer = WatchResponse(path)
            while True:
                try:
                    async with asyncio.timeout(idle_timeout):
                        data = await reader.read(65536)
                except TimeoutError:
                    raise Timeout(f"watch: nothing from the sidecar for {idle_timeout:g} s") from None
                if not data:
                    raise SidecarUnavailable(f"the sidecar on {self.socket_path} closed the watch stream")
                for change in answer.feed(data):
                    yield change
        finally:
            writer.close()
