"""The client side of the socket API, without I/O: what to send, and what an answer means.

:class:`statepump.client.Client` (blocking) and
:class:`statepump.client.AsyncClient` (asyncio) differ only in how they move
bytes; everything they must agree on is here, once, as h11 keeps HTTP apart
from sockets: the request target of a read or a watch (:func:`state_target`,
:func:`watch_target`), the request bytes, the parsed :class:`Response`, the
value or the error a status stands for (:func:`value_of`, :func:`raise_for`),
and the changes in a ``/v1/watch`` stream (:class:`WatchResponse`). The
server side of the same exchanges is :mod:`statepump.core.httpapi`.

The errors say what happened (all are :class:`SidecarError`):

* :class:`SidecarUnavailable`: no socket file, or nobody listening on it;
* :class:`NotReady`: the sidecar has no state to serve yet (``reason`` says why);
* :class:`PathNotFound`: nothing at that path in the state;
* :class:`Timeout`: ``min_sequence`` not reached in time, or no answer;
* :class:`RequestRejected`: any other refusal (``status``).

>>> state_target("markup/tshirt", min_sequence=42, timeout=2)
b'/v1/state/markup/tshirt?min_sequence=42&timeout=2.0'
>>> value_of(200, b'{"rps": 10}', "limits")
{'rps': 10}
>>> value_of(404, b'{"error": "no value at limits/x", "path": "limits/x", "sequence": 7}', "limits/x")
Traceback (most recent call last):
...
statepump.core.clientprotocol.PathNotFound: no value at path 'limits/x' at sequence 7
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httptools

from statepump.core.errors import StatepumpError

#: A path in the state: ``"a/b/c"``, or a sequence of segments (integers index lists).
PathLike = str | Sequence[str | int]


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


# ------------------------------------------------------------- requests


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
    """The request target of a watch (its path is a query parameter, so a key cannot hold a slash).

    >>> watch_target(["markup", "t shirt"])
    b'/v1/watch?path=markup/t%20shirt'
    """
    segments = segments_of(path)
    if any("/" in s for s in segments):
        raise ValueError("a watched path cannot contain a key with a slash")
    return b"/v1/watch?path=" + quote("/".join(segments), safe="/").encode("ascii")


def request(target: bytes) -> bytes:
    """The bytes of ``GET target`` (keep-alive: HTTP/1.1 without ``Connection: close``).

    >>> request(b"/readyz")
    b'GET /readyz HTTP/1.1\\r\\nHost: statepump\\r\\n\\r\\n'
    """
    return b"GET " + target + b" HTTP/1.1\r\nHost: statepump\r\n\r\n"


# ------------------------------------------------------------- answers


class Response:
    """One parsed response (httptools callbacks): feed ``parser`` until ``complete``.

    >>> response = Response()
    >>> response.parser.feed_data(b"HTTP/1.1 200 OK\\r\\nStatepump-Sequence: 7\\r\\nContent-Length: 2\\r\\n\\r\\n42")
    >>> response.complete, response.status, response.sequence, response.body
    (True, 200, 7, [b'42'])
    """

    __slots__ = ("body", "complete", "parser", "sequence", "status")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        """Ready for the next response on the same connection."""
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


def error_fields(body: bytes) -> dict[str, Any]:
    """The fields of an error body (``{"error": ...}`` and more), or the start of a body that is not JSON.

    >>> error_fields(b'{"error": "not ready", "reason": "catching up"}')["reason"], error_fields(b"<html>")
    ('catching up', {'error': '<html>'})
    """
    try:
        decoded = json.loads(body)
    except ValueError:
        return {"error": body[:200].decode("utf-8", "replace")}
    return decoded if isinstance(decoded, dict) else {"error": str(decoded)}


def raise_for(status: int, body: bytes, path: str) -> None:
    """Raise the error a non-200 answer to a request about ``path`` stands for.

    >>> raise_for(503, b'{"error": "not ready: no state", "reason": "no state"}', "a")
    Traceback (most recent call last):
    ...
    statepump.core.clientprotocol.NotReady: the statepump sidecar is not ready: no state
    """
    fields = error_fields(body)
    message = str(fields.get("error", f"HTTP {status}"))
    if status == 404 and "path" in fields:
        raise PathNotFound(path, fields.get("sequence"))
    if status == 503:
        raise NotReady(str(fields.get("reason") or message))
    if status == 504:
        raise Timeout(message)
    raise RequestRejected(status, message)


def value_of(status: int, body: bytes, path: str) -> Any:
    """The JSON value of a 200 answer to a state read of ``path``; else its error, raised."""
    if status == 200:
        return json.loads(body)
    raise_for(status, body, path)
    raise AssertionError("unreachable")


def unavailable(socket_path: Path, exc: OSError) -> SidecarUnavailable:
    """The error for a failed connect or exchange on ``socket_path``, saying which failure it was.

    >>> print(unavailable(Path("/run/s.sock"), ConnectionRefusedError()))
    no statepump sidecar: nothing listens on socket /run/s.sock
    """
    if isinstance(exc, FileNotFoundError):
        return SidecarUnavailable(f"no statepump sidecar: socket {socket_path} does not exist")
    if isinstance(exc, ConnectionRefusedError):
        return SidecarUnavailable(f"no statepump sidecar: nothing listens on socket {socket_path}")
    return SidecarUnavailable(f"statepump sidecar on {socket_path} unreachable: {exc.strerror or exc}")


class EventStream:
    """Splits a Server-Sent Events body into ``(sequence, value)`` changes.

    >>> stream = EventStream()
    >>> stream.feed(b'data: {"sequence": 3, "exists": true, "value": 1}\\n\\ndata: {"seq')
    [(3, 1)]
    >>> stream.feed(b'uence": 4, "exists": false, "value": null}\\n\\n')
    [(4, None)]
    """

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


class WatchResponse:
    """The answer to ``GET /v1/watch`` for ``path``, fed as it arrives: the changes it holds so far.

    A refusal (any status but 200) is raised as its error once it is complete.

    >>> watch = WatchResponse("markup")
    >>> watch.feed(b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n")
    []
    >>> watch.feed(b'36\\r\\ndata: {"sequence": 3, "exists": true, "value": 0.03}\\n\\n\\r\\n')
    [(3, 0.03)]
    """

    __slots__ = ("_events", "_path", "_response")

    def __init__(self, path: PathLike) -> None:
        self._path = path
        self._events = EventStream()
        self._response = Response()

    def feed(self, data: bytes) -> list[tuple[int, Any]]:
        result = self._response
        before = len(result.body)
        result.parser.feed_data(data)
        if result.status and result.status != 200:
            if result.complete:
                raise_for(result.status, b"".join(result.body), "/".join(segments_of(self._path)))
            return []
        changes = [change for piece in result.body[before:] for change in self._events.feed(piece)]
        del result.body[:]
        return changes
