"""Clients of the statepump sidecar's socket API, and the ``query`` / ``health`` commands.

:class:`Client` (blocking) and :class:`AsyncClient` (asyncio) keep one
keep-alive connection to the Unix socket and reconnect once when the server
closed an idle one. Errors say what happened:

* :class:`SidecarUnavailable`: no socket file, or nobody listening on it;
* :class:`NotReady`: the sidecar has no state to serve yet (``reason`` says why);
* :class:`PathNotFound`: nothing at that path in the state;
* :class:`Timeout`: ``min_sequence`` not reached in time, or no answer.

Usage (``tests/server/test_client.py`` makes the same calls to a real sidecar)::

    with Client("/run/statepump/statepump.sock") as sidecar:
        rate = sidecar.get("markup/tshirt")
        rate, seq = sidecar.get_with_sequence("markup/tshirt", min_sequence=42, timeout=2)

Paths are ``"a/b/c"`` strings or sequences of segments (integers index
lists); use a sequence when a key itself contains a slash.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import sys
from collections.abc import AsyncGenerator, Generator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import httptools

from statepump.core.errors import StatepumpError
from statepump.core.httpapi import DEFAULT_SOCKET_PATH

PathLike = str | Sequence[str | int]

#: Exit codes of :func:`query_command` and :func:`health_command`.
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_PATH_MISSING: Final = 3
EXIT_NOT_READY: Final = 4
EXIT_NO_SIDECAR: Final = 5


class SidecarError(StatepumpError):
    """Base class of the errors raised by the clients."""


class SidecarUnavailable(SidecarError):
    """Nothing answers on the socket path (missing file, refused, or connection lost)."""


class NotReady(SidecarError):
    """The sidecar cannot serve state yet; ``reason`` is its own explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the statepump sidecar is not ready: {reason}")
        self.reason = reason


class PathNotFound(SidecarError, LookupError):
    """No value at ``path`` in the state (at ``sequence``)."""

    def __init__(self, path: str, sequence: int | None = None) -> None:
        at = f" at sequence {sequence}" if sequence is not None else ""
        super().__init__(f"no value at path {path!r}{at}")
        self.path = path
        self.sequence = sequence


class Timeout(SidecarError, TimeoutError):
    """The sidecar did not reach ``min_sequence`` in time, or did not answer in time."""


class RequestRejected(SidecarError):
    """The sidecar refused the request (``status`` 4xx/5xx); the message is its explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the sidecar answered {status}: {message}")
        self.status = status


# ------------------------------------------------------------- pure parts


def segments_of(path: PathLike) -> tuple[str, ...]:
    """Path segments from ``"a/b"`` or ``["a", 0]`` (empty segments dropped, as the reducer does).

    >>> segments_of("markup//tshirt/"), segments_of(["servers", 0])
    (('markup', 'tshirt'), ('servers', '0'))
    """
    if isinstance(path, str):
        return tuple(s for s in path.split("/") if s)
    return tuple(str(s) for s in path if str(s))


@functools.lru_cache(maxsize=4096)
def _state_target(segments: tuple[str, ...]) -> bytes:
    return ("/v1/state/" + "/".join(quote(s, safe="") for s in segments)).encode("ascii")


def state_target(path: PathLike, min_sequence: int | None = None, timeout: float | None = None) -> bytes:
    """The request target of a state read (``timeout`` only matters with ``min_sequence``).

    >>> state_target("a b/c%d", min_sequence=5, timeout=1.5)
    b'/v1/state/a%20b/c%25d?min_sequence=5&timeout=1.5'
    """
    target = _state_target(segments_of(path))
    if min_sequence is not None:
        target += b"?min_sequence=%d" % min_sequence
        if timeout is not None:
            target += b"&timeout=" + repr(float(timeout)).encode()
    return target


def watch_target(path: PathLike) -> bytes:
    segments = segments_of(path)
    if any("/" in s for s in segments):
        raise ValueError("a watched path cannot contain a key with a slash")
    return b"/v1/watch?path=" + quote("/".join(segments), safe="/").encode("ascii")


def _request(target: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: statepump\r\n\r\n"


class _Response:
    """One parsed response (httptools callbacks)."""

    __slots__ = ("body", "complete", "parser", "sequence", "status")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        self.status = 0
        self.sequence: int | None = None
        self.body: list[bytes] = []
        self.complete = False

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 18 and name.lower() == b"statepump-sequence":
            self.sequence = int(value)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


def _error_fields(body: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(body)
    except ValueError:
        return {"error": body[:200].decode("utf-8", "replace")}
    return decoded if isinstance(decoded, dict) else {"error": str(decoded)}


def _raise_for(status: int, body: bytes, path: str) -> None:
    fields = _error_fields(body)
    message = str(fields.get("error", f"HTTP {status}"))
    if status == 404 and "path" in fields:
        raise PathNotFound(path, fields.get("sequence"))
    if status == 503:
        raise NotReady(str(fields.get("reason") or message))
    if status == 504:
        raise Timeout(message)
    raise RequestRejected(status, message)


def _value(status: int, body: bytes, path: str) -> Any:
    if status == 200:
        return json.loads(body)
    _raise_for(status, body, path)
    raise AssertionError("unreachable")


def _unavailable(socket_path: Path, exc: OSError) -> SidecarUnavailable:
    if isinstance(exc, FileNotFoundError):
        return SidecarUnavailable(f"no statepump sidecar: socket {socket_path} does not exist")
    if isinstance(exc, ConnectionRefusedError):
        return SidecarUnavailable(f"no statepump sidecar: nothing listens on socket {socket_path}")
    return SidecarUnavailable(f"statepump sidecar on {socket_path} unreachable: {exc.strerror or exc}")


class _EventStream:
    """Splits a Server-Sent Events body into ``(sequence, value)`` changes."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, Any]]:
        self._buffer += data
        events: list[tuple[int, Any]] = []
        while (end := self._buffer.find(b"\n\n")) >= 0:
            block, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    change = json.loads(line[5:])
                    events.append((int(change["sequence"]), change["value"] if change["exists"] else None))
        return events


# ------------------------------------------------------------- blocking


class Client:
    """A blocking client of the sidecar (one keep-alive connection; not thread-safe).

    ``timeout`` bounds every wait for the sidecar in seconds; a read with
    ``min_sequence`` waits up to its own ``timeout`` on top.

    >>> Client("/nonexistent/statepump.sock").get("a")
    Traceback (most recent call last):
    ...
    statepump.client.SidecarUnavailable: no statepump sidecar: socket /nonexistent/statepump.sock does not exist
    """

    def __init__(self, socket_path: str | Path = DEFAULT_SOCKET_PATH, *, timeout: float = 10.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._response = _Response()

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
            raise _unavailable(self.socket_path, exc) from None
        return sock

    def _exchange(self, target: bytes, wait: float = 0.0) -> _Response:
        timeout = self.timeout + wait
        reused = self._sock is not None
        for attempt in (0, 1):
            sock = self._sock
            if sock is None:
                sock = self._sock = self._connect(timeout)
                self._response = _Response()
            elif wait:
                sock.settimeout(timeout)
            result = self._response
            result.reset()
            try:
                sock.sendall(_request(target))
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
                    raise _unavailable(self.socket_path, exc) from None
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
        value = _value(result.status, body, "/".join(segments_of(path)))
        return value, result.sequence if result.sequence is not None else -1

    def get(self, path: PathLike = "", min_sequence: int | None = None, timeout: float | None = None) -> Any:
        """The JSON value at ``path`` (``""``: the whole state), once the sidecar reached ``min_sequence``."""
        target = state_target(path, min_sequence, timeout)
        wait = (timeout if timeout is not None else 30.0) if min_sequence is not None else 0.0
        result = self._exchange(target, wait)
        body = result.body[0] if len(result.body) == 1 else b"".join(result.body)
        if result.status == 200:
            return json.loads(body)
        return _value(result.status, body, "/".join(segments_of(path)))

    def status(self) -> dict[str, Any]:
        """The sidecar's ``/v1/status`` object."""
        result = self._exchange(b"/v1/status")
        body = b"".join(result.body)
        if result.status != 200:
            _raise_for(result.status, body, "")
        decoded: dict[str, Any] = json.loads(body)
        return decoded

    def ready(self) -> bool:
        """Whether the sidecar is caught up (``/readyz`` answers 200)."""
        return self._exchange(b"/readyz").status == 200

    def ready_reason(self) -> str | None:
        """``None`` when ready, else the sidecar's reason."""
        result = self._exchange(b"/readyz")
        if result.status == 200:
            return None
        return str(_error_fields(b"".join(result.body)).get("reason", f"HTTP {result.status}"))

    def watch(self, path: PathLike = "", idle_timeout: float = 60.0) -> Generator[tuple[int, Any], None, None]:
        """``(sequence, value)`` for the current value at ``path``, then for each change.

        ``value`` is ``None`` when the path does not exist (or was deleted).
        Uses a connection of its own; close the iterator to stop watching.
        """
        target = watch_target(path)
        sock = self._connect(self.timeout)
        try:
            sock.sendall(_request(target))
            sock.settimeout(idle_timeout)
            events = _EventStream()
            result = _Response()
            pending: list[tuple[int, Any]] = []
            while True:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    raise Timeout(f"watch: nothing from the sidecar for {idle_timeout:g} s") from None
                if not data:
                    raise SidecarUnavailable(f"the sidecar on {self.socket_path} closed the watch stream")
                before = len(result.body)
                result.parser.feed_data(data)
                if result.status and result.status != 200:
                    if result.complete:
                        _raise_for(result.status, b"".join(result.body), "/".join(segments_of(path)))
                    continue
                for piece in result.body[before:]:
                    pending.extend(events.feed(piece))
                del result.body[:]
                yield from pending
                pending.clear()
        finally:
            sock.close()


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
            raise _unavailable(self.socket_path, exc) from None

    async def _exchange(self, target: bytes, wait: float = 0.0) -> _Response:
        async with self._lock:
            reused = self._writer is not None
            for attempt in (0, 1):
                if self._reader is None or self._writer is None:
                    self._reader, self._writer = await self._connect()
                reader, writer = self._reader, self._writer
                result = _Response()
                try:
                    writer.write(_request(target))
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
                        raise _unavailable(self.socket_path, exc) from None
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
        value = _value(result.status, b"".join(result.body), "/".join(segments_of(path)))
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
            _raise_for(result.status, body, "")
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
            writer.write(_request(target))
            events = _EventStream()
            result = _Response()
            while True:
                try:
                    async with asyncio.timeout(idle_timeout):
                        data = await reader.read(65536)
                except TimeoutError:
                    raise Timeout(f"watch: nothing from the sidecar for {idle_timeout:g} s") from None
                if not data:
                    raise SidecarUnavailable(f"the sidecar on {self.socket_path} closed the watch stream")
                before = len(result.body)
                result.parser.feed_data(data)
                if result.status and result.status != 200:
                    if result.complete:
                        _raise_for(result.status, b"".join(result.body), "/".join(segments_of(path)))
                    continue
                changes = [change for piece in result.body[before:] for change in events.feed(piece)]
                del result.body[:]
                for change in changes:
                    yield change
        finally:
            writer.close()


# ------------------------------------------------------------- commands


def query_command(
    socket_path: str | Path, path: str = "", min_sequence: int | None = None, timeout: float | None = None
) -> int:
    """``statepump query``: print the JSON value at ``path``; returns the exit code.

    Exit codes: 0 printed; 3 no value at the path; 4 not ready, or
    ``min_sequence`` not reached within ``timeout``; 5 no sidecar on the
    socket; 1 anything else (the message is on stderr).
    """
    try:
        with Client(socket_path) as client:
            value = client.get(path, min_sequence=min_sequence, timeout=timeout)
    except PathNotFound as exc:
        print(f"statepump query: {exc}", file=sys.stderr)
        return EXIT_PATH_MISSING
    except (NotReady, Timeout) as exc:
        print(f"statepump query: {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    except SidecarUnavailable as exc:
        print(f"statepump query: {exc}", file=sys.stderr)
        return EXIT_NO_SIDECAR
    except (SidecarError, ValueError) as exc:
        print(f"statepump query: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(value, indent=2, ensure_ascii=False))
    return EXIT_OK


def health_command(socket_path: str | Path, ready: bool = False) -> int:
    """``statepump health [--ready]``: the exit code of a Kubernetes exec probe.

    Without ``ready`` (liveness): 0 when the sidecar answers ``/healthz``.
    With ``ready`` (readiness): 0 only when ``/readyz`` answers 200, else 4
    with the reason on stderr. 5 when no sidecar answers on the socket.
    """
    try:
        with Client(socket_path, timeout=5.0) as client:
            if not ready:
                alive = client._exchange(b"/healthz").status == 200
                return EXIT_OK if alive else EXIT_ERROR
            reason = client.ready_reason()
    except (SidecarUnavailable, Timeout) as exc:
        print(f"statepump health: {exc}", file=sys.stderr)
        return EXIT_NO_SIDECAR
    except SidecarError as exc:
        print(f"statepump health: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if reason is not None:
        print(f"statepump health: not ready: {reason}", file=sys.stderr)
        return EXIT_NOT_READY
    return EXIT_OK
