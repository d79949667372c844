"""The socket API's HTTP core, without I/O: bytes in, requests out; a request
and a version in, response bytes out.

:class:`RequestParser` turns received bytes into :class:`Request` values and
enforces the size limits (request line, header bytes, header count, body),
raising :class:`HttpError` with the status to answer (400, 413, 414, 431).
:func:`route` maps a request to what it asks for (:class:`StateQuery`,
:class:`Watch` or an :class:`Endpoint`) and validates its parameters.
:func:`state_response` renders ``GET /v1/state/...`` for one version: walk the
path, 404 naming it, 304 for a matching ``If-None-Match``, else the value.
``statepump/serving/sidecar.py`` is the thin asyncio shell around this.

The parser is httptools (llhttp). Measured here on the request this API
serves most, a small keep-alive GET: 0.8 µs to parse with httptools against
43 µs for an h11 receive/send cycle, and the whole request budget is about
30 µs (30,000 requests/s on one core).

>>> parser = RequestParser(Limits())
>>> [request] = parser.feed(b"GET /v1/state/a%2Fb/c HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
>>> route(request, Limits())
StateQuery(segments=('a/b', 'c'), min_sequence=None, timeout=30.0)
"""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote_to_bytes

import httptools

from statepump.core import statejson
from statepump.core.events import Version
from statepump.core.history import Entry, History

#: Where ``statepump run`` listens unless told otherwise (relative to the working directory).
DEFAULT_SOCKET_PATH: Final = Path(".statepump/statepump.sock")


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep one client from costing the server more than its share.

    >>> Limits(max_connections=10).max_connections
    10
    """

    #: Longest request target (path and query) in bytes; longer gets 414.
    max_target: int = 8 * 1024
    #: Total bytes of header names and values; more gets 431.
    max_header_bytes: int = 16 * 1024
    #: Number of header fields; more gets 431.
    max_headers: int = 64
    #: A read-only API has no use for request bodies; longer gets 413.
    max_body: int = 4 * 1024
    #: Open connections; the next one gets 503 and is closed.
    max_connections: int = 1024
    #: A keep-alive connection with no request for this long is closed.
    idle_timeout: float = 60.0
    #: A request must arrive completely within this many seconds of its first byte (else 408).
    request_timeout: float = 10.0
    #: A client that reads nothing of its response for this long is disconnected.
    write_timeout: float = 10.0
    #: Bytes buffered for a client before the server stops producing for it.
    write_buffer: int = 256 * 1024
    #: ``timeout`` of ``?min_sequence`` when the request gives none, and its maximum.
    default_wait: float = 30.0
    max_wait: float = 300.0
    #: Encoded responses kept for the current version (and their total size).
    cache_entries: int = 4096
    cache_bytes: int = 64 * 1024 * 1024
    #: Seconds between SSE comments that keep a quiet watch connection checked.
    watch_heartbeat: float = 15.0
    #: Versions a slow watcher may fall behind before older ones are coalesced.
    watch_backlog: int = 1024


class HttpError(Exception):
    """A request the server cannot serve; ``status`` is what to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Request:
    """The parts of a request this API looks at."""

    method: str
    target: bytes
    keep_alive: bool = True
    http10: bool = False
    if_none_match: bytes | None = None
    #: The ``Authorization`` header (the relay feed's bearer token over TCP); never logged.
    authorization: bytes | None = field(default=None, repr=False)


class RequestParser:
    """Incremental HTTP/1.1 request parser with limits (one per connection).

    After an :class:`HttpError` the connection's byte stream can no longer be
    trusted: answer the error and close.

    >>> p = RequestParser(Limits(max_target=10))
    >>> p.feed(b"GET /0123456789 HTTP/1.1\\r\\n\\r\\n")
    Traceback (most recent call last):
    ...
    statepump.core.httpapi.HttpError: request target longer than 10 bytes
    """

    __slots__ = (
        "_authorization",
        "_body",
        "_done",
        "_error",
        "_header_bytes",
        "_headers",
        "_if_none_match",
        "_limits",
        "_name",
        "_parser",
        "_target",
        "in_progress",
    )

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._done: list[Request] = []
        self._error: HttpError | None = None
        self._target: list[bytes] = []
        self._header_bytes = 0
        self._headers = 0
        self._body = 0
        self._if_none_match: bytes | None = None
        self._authorization: bytes | None = None
        self._name = b""
        #: True between the first byte of a request and its end.
        self.in_progress = False

    def feed(self, data: bytes) -> list[Request]:
        """The requests completed by ``data`` (possibly none, possibly several)."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An Upgrade request is answered as a plain one; the server closes after it.
            pass
        except httptools.HttpParserCallbackError:
            if self._error is not None:
                raise self._error from None
            raise
        except httptools.HttpParserInvalidMethodError:
            raise HttpError(400, "malformed request line or unknown method (the socket answers GET, HEAD)") from None
        except httptools.HttpParserInvalidURLError:
            raise HttpError(400, "malformed request target") from None
        except httptools.HttpParserError as exc:
            raise HttpError(400, f"malformed request: {_parser_reason(exc)}") from None
        done = self._done
        self._done = []
        return done

    def _fail(self, error: HttpError) -> None:
        self._error = error
        raise error

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.in_progress = True
        self._target = []
        self._header_bytes = 0
        self._headers = 0
        self._body = 0
        self._if_none_match = None
        self._authorization = None

    def on_url(self, url: bytes) -> None:
        self._target.append(url)
        if sum(map(len, self._target)) > self._limits.max_target:
            self._fail(HttpError(414, f"request target longer than {self._limits.max_target} bytes"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        self._header_bytes += len(name) + len(value)
        if self._headers > self._limits.max_headers:
            self._fail(HttpError(431, f"more than {self._limits.max_headers} header fields"))
        if self._header_bytes > self._limits.max_header_bytes:
            self._fail(HttpError(431, f"header fields longer than {self._limits.max_header_bytes} bytes"))
        if len(name) == 13 and name.lower() == b"if-none-match":
            self._if_none_match = value if self._if_none_match is None else self._if_none_match + b"," + value
        elif len(name) == 13 and name.lower() == b"authorization":
            self._authorization = value

    def on_body(self, body: bytes) -> None:
        self._body += len(body)
        if self._body > self._limits.max_body:
            self._fail(HttpError(413, f"request body longer than {self._limits.max_body} bytes"))

    def on_message_complete(self) -> None:
        parser = self._parser
        target = self._target[0] if len(self._target) == 1 else b"".join(self._target)
        self._done.append(
            Request(
                method=parser.get_method().decode("ascii", "replace"),
                target=target,
                keep_alive=parser.should_keep_alive() and not parser.should_upgrade(),
                http10=parser.get_http_version() == "1.0",
                if_none_match=self._if_none_match,
                authorization=self._authorization,
            )
        )
        self.in_progress = False


def _parser_reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__


# ---------------------------------------------------------------- routing


class Endpoint(enum.Enum):
    """What a request asks for; the value is the label in request metrics."""

    STATE = "state"
    FEED = "feed"
    SNAPSHOT = "snapshot"
    STATUS = "status"
    HEALTHZ = "healthz"
    READYZ = "readyz"
    METRICS = "metrics"
    WATCH = "watch"
    EVENT = "event"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class StateQuery:
    """``GET /v1/state/{segments}``, optionally waiting for ``min_sequence``."""

    segments: tuple[str, ...]
    min_sequence: int | None = None
    timeout: float = 30.0

    @property
    def path(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True, slots=True)
class Watch:
    """``GET /v1/watch?path=...``: a stream of the changes at ``segments``."""

    segments: tuple[str, ...]

    @property
    def path(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True, slots=True)
class Feed:
    """``GET /v1/events?after=N``: the replication feed of the events after ``N`` (-1: from the first)."""

    after: int


@dataclass(frozen=True, slots=True)
class SnapshotQuery:
    """``GET /v1/snapshot``: the current version as a snapshot file."""


def relay_route(request: Request) -> Feed | SnapshotQuery | None:
    """The relay's two endpoints, or ``None`` for any other request (then :func:`route` decides).

    >>> relay_route(Request("GET", b"/v1/events?after=41")), relay_route(Request("GET", b"/v1/snapshot"))
    (Feed(after=41), SnapshotQuery())
    >>> relay_route(Request("GET", b"/v1/events/41")) is None
    True
    >>> relay_route(Request("GET", b"/v1/events?after=x"))
    Traceback (most recent call last):
    ...
    statepump.core.httpapi.HttpError: query parameter 'after' must be an integer from -1, not 'x'
    """
    raw_path, _, raw_query = request.target.partition(b"?")
    if raw_path == b"/v1/snapshot":
        if request.method not in ("GET", "HEAD"):
            raise HttpError(405, f"method {request.method} not allowed: the socket API is read-only (GET, HEAD)")
        _only(_query(raw_query), ())
        return SnapshotQuery()
    if raw_path != b"/v1/events":
        return None
    if request.method not in ("GET", "HEAD"):
        raise HttpError(405, f"method {request.method} not allowed: the socket API is read-only (GET, HEAD)")
    query = _query(raw_query)
    _only(query, ("after",))
    raw = query.get("after")
    if raw is None:
        raise HttpError(400, "the feed needs ?after=N: the last sequence number the reader holds (-1 for none)")
    digits = raw.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19 or int(raw) < -1:
        raise HttpError(400, f"query parameter 'after' must be an integer from -1, not {raw[:40]!r}")
    return Feed(int(raw))


@dataclass(frozen=True, slots=True)
class Plain:
    """One of the endpoints without parameters."""

    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class EventQuery:
    """``GET /v1/events/{sequence}``: one recent event and its outcome."""

    sequence: int


Route = StateQuery | Watch | Plain | EventQuery

_STATE_PREFIX: Final = b"/v1/state"
_PLAIN: Final = {
    "/v1/status": Endpoint.STATUS,
    "/healthz": Endpoint.HEALTHZ,
    "/readyz": Endpoint.READYZ,
    "/metrics": Endpoint.METRICS,
}
_BAD_ESCAPE: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def route(request: Request, limits: Limits) -> Route:
    """What ``request`` asks for, or an :class:`HttpError` (400 / 404 / 405).

    >>> route(Request("GET", b"/v1/state?min_sequence=7&timeout=2"), Limits())
    StateQuery(segments=(), min_sequence=7, timeout=2.0)
    >>> route(Request("GET", b"/v1/watch?path=a/b"), Limits())
    Watch(segments=('a', 'b'))
    >>> route(Request("POST", b"/v1/state"), Limits())
    Traceback (most recent call last):
    ...
    statepump.core.httpapi.HttpError: method POST not allowed: the socket API is read-only (GET, HEAD)
    """
    if request.method != "GET" and request.method != "HEAD":
        raise HttpError(405, f"method {request.method} not allowed: the socket API is read-only (GET, HEAD)")
    raw_path, _, raw_query = request.target.partition(b"?")
    if not raw_path.startswith(b"/"):
        raise HttpError(400, "request target must be an absolute path such as /v1/state")
    query = _query(raw_query)
    if raw_path == _STATE_PREFIX or raw_path.startswith(_STATE_PREFIX + b"/"):
        _only(query, ("min_sequence", "timeout"))
        # Split before decoding, so that %2F is a slash inside a key.
        segments = tuple(_decode(s, "path") for s in raw_path[len(_STATE_PREFIX) :].split(b"/") if s)
        min_sequence = _int_param(query, "min_sequence")
        timeout = _timeout_param(query, limits)
        return StateQuery(segments, min_sequence, timeout)
    path = _decode(raw_path, "path")
    if path == "/v1/watch":
        _only(query, ("path",))
        # Empty segments are skipped, as the config reducer does with "a//b".
        return Watch(tuple(s for s in query.get("path", "").split("/") if s))
    if path.startswith(_EVENT_PREFIX):  # /v1/events/{n}; the feed, /v1/events?after=N, is routed apart
        _only(query, ())
        return EventQuery(_sequence_segment(path[len(_EVENT_PREFIX) :]))
    endpoint = _PLAIN.get(path)
    if endpoint is None:
        raise HttpError(404, f"no such endpoint: {path}")
    _only(query, ())
    return Plain(endpoint)


_EVENT_PREFIX: Final = "/v1/events/"


def _sequence_segment(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise HttpError(400, f"/v1/events/{{sequence}} takes a non-negative integer, not {raw[:40]!r}")
    return int(raw)


def _decode(raw: bytes, what: str) -> str:
    if _BAD_ESCAPE.search(raw):
        raise HttpError(400, f"bad percent-encoding in the {what}")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, f"the {what} is not UTF-8 once percent-decoded") from None


def _query(raw: bytes) -> dict[str, str]:
    params: dict[str, str] = {}
    if not raw:
        return params
    for pair in raw.split(b"&"):
        if not pair:
            continue
        name_raw, _, value_raw = pair.partition(b"=")
        name = _decode(name_raw.replace(b"+", b" "), "query")
        if name in params:
            raise HttpError(400, f"query parameter {name!r} given twice")
        params[name] = _decode(value_raw.replace(b"+", b" "), "query")
    return params


def _only(query: dict[str, str], allowed: Sequence[str]) -> None:
    for name in query:
        if name not in allowed:
            known = ", ".join(allowed) if allowed else "none"
            raise HttpError(400, f"unknown query parameter {name!r} (this endpoint takes: {known})")


def _int_param(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise HttpError(400, f"query parameter {name!r} must be a non-negative integer, not {raw[:40]!r}")
    return int(raw)


def _timeout_param(query: dict[str, str], limits: Limits) -> float:
    raw = query.get("timeout")
    if raw is None:
        return limits.default_wait
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= limits.max_wait:  # also rejects nan and inf
        raise HttpError(
            400, f"query parameter 'timeout' must be seconds from 0 to {limits.max_wait:g}, not {raw[:40]!r}"
        )
    return value


# ---------------------------------------------------------------- responses

_REASONS: Final = {
    200: b"OK",
    304: b"Not Modified",
    401: b"Unauthorized",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    410: b"Gone",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}
JSON: Final = b"application/json"
_NO_BODY_STATUSES: Final = (204, 304)


def response(
    status: int,
    body: bytes = b"",
    *,
    content_type: bytes = JSON,
    headers: Iterable[tuple[bytes, bytes]] = (),
    keep_alive: bool = True,
    http10: bool = False,
    head: bool = False,
) -> bytes:
    """A complete response with ``Content-Length`` (no body sent for HEAD).

    >>> response(200, b"{}")
    b'HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: 2\\r\\n\\r\\n{}'
    """
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown"))]
    if status not in _NO_BODY_STATUSES:
        lines.append(b"Content-Type: " + content_type)
        lines.append(b"Content-Length: %d" % len(body))
    lines.extend(name + b": " + value for name, value in headers)
    if allow := _ALLOW.get(status):
        lines.append(allow)
    if not keep_alive:
        lines.append(b"Connection: close")
    elif http10:
        lines.append(b"Connection: keep-alive")
    lines.append(b"\r\n")
    head_bytes = b"\r\n".join(lines)
    if head or status in _NO_BODY_STATUSES:
        return head_bytes
    return head_bytes + body


_ALLOW: Final = {405: b"Allow: GET, HEAD"}


def stream_head(
    status: int,
    content_type: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    keep_alive: bool = True,
) -> bytes:
    """The head of a chunked response (a huge state, an event stream)."""
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown")), b"Content-Type: " + content_type]
    lines.extend(name + b": " + value for name, value in headers)
    lines.append(b"Transfer-Encoding: chunked")
    if not keep_alive:
        lines.append(b"Connection: close")
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (``b""`` gives the final, empty chunk).

    >>> chunk(b"hello")
    b'5\\r\\nhello\\r\\n'
    """
    return b"%x\r\n%s\r\n" % (len(data), data)


def error_body(status: int, message: str, **fields: Any) -> bytes:
    """The JSON body of every error: ``{"error": ..., "status": ..., ...}``.

    >>> error_body(404, "no value at path 'a/b'", path="a/b")
    b'{"error":"no value at path \\'a/b\\'","status":404,"path":"a/b"}'
    """
    return statejson.encode({"error": message, "status": status, **fields})


def error_response(status: int, message: str, *, keep_alive: bool = True, head: bool = False, **fields: Any) -> bytes:
    """A complete JSON error response."""
    return response(status, error_body(status, message, **fields), keep_alive=keep_alive, head=head)


def etag(version: Version[Any]) -> bytes:
    """The entity tag of every value read from ``version``: its sequence number."""
    return b'"%d"' % version.sequence


def etag_matches(if_none_match: bytes, tag: bytes) -> bool:
    """Whether an ``If-None-Match`` value matches ``tag`` (weak comparison, RFC 9110 13.1.2).

    >>> etag_matches(b'"3", W/"7"', b'"7"'), etag_matches(b'"3"', b'"7"'), etag_matches(b"*", b'"7"')
    (True, False, True)
    """
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip()
        if candidate == b"*" or candidate.removeprefix(b"W/") == tag:
            return True
    return False


#: Values with more members than this are sent chunked instead of cached whole.
STREAM_MEMBERS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Streamed:
    """A value too large for one buffer: send ``head``, then :func:`statejson.iter_encode` chunks."""

    head: bytes
    value: Any = field(repr=False)


def state_headers(version: Version[Any]) -> list[tuple[bytes, bytes]]:
    return [
        (b"Statepump-Sequence", b"%d" % version.sequence),
        (b"ETag", etag(version)),
        (b"Cache-Control", b"no-cache"),
    ]


def state_response(version: Version[Any], query: StateQuery, request: Request) -> bytes | Streamed:
    """The answer to ``GET /v1/state/...`` from one ``version``.

    >>> from pyrsistent import freeze
    >>> v = Version(freeze({"a": {"b": 1}}), 5, None, "0")
    >>> state_response(v, StateQuery(("a", "b")), Request("GET", b""))[-1:]
    b'1'
    >>> state_response(v, StateQuery(("a", "x")), Request("GET", b"")).split(b"\\r\\n")[0]
    b'HTTP/1.1 404 Not Found'
    """
    head = request.method == "HEAD"
    headers = state_headers(version)
    value = statejson.walk(version.state, query.segments)
    if value is statejson.MISSING:
        message = f"no value at path {query.path!r}" if query.segments else "no state"
        return response(
            404,
            error_body(404, message, path=query.path, sequence=version.sequence),
            headers=headers,
            keep_alive=request.keep_alive,
            http10=request.http10,
            head=head,
        )
    if request.if_none_match is not None and etag_matches(request.if_none_match, etag(version)):
        return response(304, headers=headers, keep_alive=request.keep_alive, http10=request.http10)
    if _is_large(value) and not request.http10:
        return Streamed(stream_head(200, JSON, headers, keep_alive=request.keep_alive), value)
    return response(
        200,
        statejson.encode(value),
        headers=headers,
        keep_alive=request.keep_alive,
        http10=request.http10,
        head=head,
    )


def _is_large(value: Any) -> bool:
    try:
        return not isinstance(value, str | bytes) and len(value) > STREAM_MEMBERS
    except TypeError:
        return False


def sse_event(sequence: int, value: Any) -> bytes:
    """One Server-Sent Event for a change at a watched path (``value`` is MISSING when deleted).

    >>> sse_event(4, 1)
    b'id: 4\\nevent: change\\ndata: {"sequence":4,"exists":true,"value":1}\\n\\n'
    """
    exists = value is not statejson.MISSING
    body = statejson.encode({"sequence": sequence, "exists": exists, "value": value if exists else None})
    return b"id: %d\nevent: change\ndata: %s\n\n" % (sequence, body)


def event_document(entry: Entry) -> dict[str, Any]:
    """The JSON of one event of the ring, as ``GET /v1/events/{sequence}`` answers it.

    The body is text when it is UTF-8, else base64 (``body_encoding`` says which).

    >>> from datetime import datetime, timezone
    >>> from statepump.core.events import Event
    >>> e = Event("0", 7, "70", datetime(2026, 1, 1, tzinfo=timezone.utc), None, {"statepump-author": "ann"}, b"{}")
    >>> doc = event_document(Entry(e, "rejected", "unknown op 'x'"))
    >>> doc["outcome"], doc["reason"], doc["body"], doc["body_encoding"], doc["properties"]
    ('rejected', "unknown op 'x'", '{}', 'utf-8', {'statepump-author': 'ann'})
    """
    event = entry.event
    try:
        body, encoding = event.body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(event.body).decode("ascii"), "base64"
    return {
        "sequence": event.sequence,
        "partition": event.partition,
        "offset": event.offset,
        "outcome": entry.outcome,
        "reason": entry.reason,
        "enqueued_time": event.enqueued_time.isoformat(),
        "partition_key": event.partition_key,
        "properties": {str(k): _property_value(v) for k, v in event.properties.items()},
        "body": body,
        "body_encoding": encoding,
    }


def _property_value(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # AMQP's other types (a UUID, a timestamp): their text


def event_response(history: History, query: EventQuery, request: Request) -> tuple[bytes, int]:
    """The answer to ``GET /v1/events/{sequence}`` from the pump's ring: the event, or 404 naming what is kept.

    >>> import json
    >>> ring = History()
    >>> ring.clear(at=4)
    >>> encoded, status = event_response(ring, EventQuery(3), Request("GET", b""))
    >>> status, json.loads(encoded.split(b"\\r\\n\\r\\n")[1])["error"]
    (404, 'event 3 is not among the recent events kept (it keeps none yet)')
    """
    head = request.method == "HEAD"
    entry = history.get(query.sequence)
    if entry is None:
        oldest, newest = history.oldest, history.newest
        kept = f"it keeps {oldest}..{newest}" if oldest is not None else "it keeps none yet"
        message = f"event {query.sequence} is not among the recent events kept ({kept})"
        body = error_body(404, message, sequence=query.sequence, oldest=oldest, newest=newest)
        return response(404, body, keep_alive=request.keep_alive, http10=request.http10, head=head), 404
    body = statejson.encode(event_document(entry))
    return response(200, body, keep_alive=request.keep_alive, http10=request.http10, head=head), 200
