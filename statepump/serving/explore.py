"""The sidecar's read-only views of the past and of large states: history, diffs, children, the console.

``GET /v1/history``, ``GET /v1/diff``, ``GET /v1/children`` and the web console
under ``/ui``. Everything here answers from the pump's ring of recent events
(``Pump.history``) and from :class:`~statepump.core.timeline.Checkpoints`, the
published states this module keeps while the ring holds the events after them
(see :mod:`statepump.core.timeline` for why that is exact and bounded). The
logic is pure (:mod:`statepump.core.timeline`, :mod:`statepump.core.changes`);
this is the thin part that parses a request and encodes an answer.

>>> from statepump.core.httpapi import Request
>>> from statepump.pump import Pump
>>> from statepump.sources.memory import MemorySource
>>> explorer = Explorer(Pump(MemorySource()))
>>> explorer.answer(Request("GET", b"/v1/history?limit=x"))[0].split(b"\\r\\n")[0]
b'HTTP/1.1 400 Bad Request'
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from pyrsistent import PMap, PSet, PVector

from statepump.core import changes, statejson, timeline
from statepump.core.events import Version
from statepump.core.history import History
from statepump.core.httpapi import HttpError, Request, chunk, error_body, error_response, response, stream_head
from statepump.core.pyrsistent_internals import keys_starting_with, pairs_from
from statepump.settings import is_loopback

log = logging.getLogger(__name__)

#: The request targets this module answers (the connection checks the prefix first).
PREFIXES: Final = (b"/v1/history", b"/v1/diff", b"/v1/children", b"/ui")

#: The largest sequence number, offset or cursor taken (as openapi.yaml says).
_LARGEST: Final = 999_999_999_999_999_999
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
#: A map with more keys than this is paged in its own (hash) order: sorting a million keys per page costs seconds.
SORTED_UP_TO: Final = 10_000

_ASSETS: Final = {
    "index.html": b"text/html; charset=utf-8",
    "console.js": b"text/javascript; charset=utf-8",
    "console.css": b"text/css; charset=utf-8",
}
#: The console may load only its own files and talk only to this sidecar.
_UI_HEADERS: Final = [
    (b"Cache-Control", b"no-cache"),
    (b"Content-Security-Policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    (b"X-Content-Type-Options", b"nosniff"),
]


class Explorer:
    """Answers ``/v1/history``, ``/v1/diff``, ``/v1/children`` and ``/ui`` for one pump."""

    def __init__(self, pump: Any) -> None:
        self.pump = pump
        self.checkpoints = timeline.Checkpoints()
        #: Seconds between two status events of ``/ui/stream`` (the console's live chart).
        self.stream_interval = 1.0
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def history(self) -> History:
        ring = getattr(self.pump, "history", None)
        return ring if isinstance(ring, History) else History(0, 0)

    def start(self) -> None:
        """Keep every published state while the ring holds the events after it."""
        version: Version[Any] = self.pump.version
        if version.sequence >= -1:
            self.checkpoints.add(version.sequence, version.state, self.history)
        self._unsubscribe = self.pump.subscribe(self._published)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _published(self, old: Version[Any], new: Version[Any]) -> None:
        self.checkpoints.add(new.sequence, new.state, self.history)

    # ------------------------------------------------------------------ requests

    def answer(self, request: Request, peer: Any = None) -> tuple[bytes, int, str] | StatusStream:
        """The response to ``request``, its status and its metrics label (500 for a bug, logged).

        ``peer`` is the client's address: until the API has a token for clients beyond this
        machine, the console and these views answer TCP clients on loopback only (a Unix
        socket, which ``kubectl port-forward`` reaches, is local by construction).
        """
        if isinstance(peer, tuple) and peer and not is_loopback(str(peer[0])):
            body = error_body(403, "the console and history are served to loopback clients only")
            return response(403, body, keep_alive=False), 403, "ui"
        if request.target == b"/ui/stream" and request.method == "GET":
            return StatusStream(self.pump, self.stream_interval)
        try:
            return self._answer(request)
        except Exception:
            log.exception("answering %r failed", request.target[:80])
            return error_response(500, "internal error", keep_alive=request.keep_alive), 500, "other"

    def _answer(self, request: Request) -> tuple[bytes, int, str]:
        raw_path, _, raw_query = request.target.partition(b"?")
        label = "ui" if raw_path.startswith(b"/ui") else raw_path.rsplit(b"/", 1)[-1].decode("ascii", "replace")
        head = request.method == "HEAD"
        try:
            if request.method not in ("GET", "HEAD"):
                raise HttpError(405, f"method {request.method} not allowed: the socket API is read-only (GET, HEAD)")
            query = _query(raw_query)
            if raw_path.startswith(b"/ui"):
                return self._asset(raw_path, request), 200, label
            if raw_path == b"/v1/history":
                body = self._history(query)
            elif raw_path == b"/v1/diff":
                body = self._diff(query)
            elif raw_path == b"/v1/children":
                body = self._children(query)
            else:
                raise HttpError(404, f"no such endpoint: {_text(raw_path)}")
        except HttpError as error:
            fields = getattr(error, "fields", {})
            encoded = response(
                error.status,
                error_body(error.status, error.message, **fields),
                keep_alive=request.keep_alive,
                http10=request.http10,
                head=head,
            )
            return encoded, error.status, label
        headers = [(b"Cache-Control", b"no-cache")]
        encoded = response(200, body, headers=headers, keep_alive=request.keep_alive, http10=request.http10, head=head)
        return encoded, 200, label

    def _history(self, query: dict[str, str]) -> bytes:
        _only(query, ("path", "limit", "before", "after"))
        path = changes.split(query.get("path", ""))
        limit = _int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        assert limit is not None
        before = _int(query, "before", None, 0, None)
        after = _int(query, "after", None, -1, None)
        reducer = self.pump.reducer
        found = timeline.page(self.history, reducer, path, limit=limit, before=before, after=after)
        document = {
            "path": changes.render(path),
            "entries": [timeline.entry_json(e, reducer) for e in found.entries],
            "oldest": found.oldest,
            "newest": found.newest,
            "more": found.more,
            "next_before": found.entries[-1].sequence if found.more and found.entries else None,
            "paths_known": reducer.paths is not None or reducer.name == "config",
        }
        return statejson.encode(document)

    def _diff(self, query: dict[str, str]) -> bytes:
        _only(query, ("from", "to", "path"))
        start = _int(query, "from", None, -1, None)
        end = _int(query, "to", None, -1, None)
        if start is None or end is None:
            raise HttpError(400, "/v1/diff needs ?from=N&to=M (sequence numbers)")
        path = changes.split(query.get("path", ""))
        found = self.diff(start, end, path)
        document = {"from": start, "to": end, "path": changes.render(path), "changes": [c.as_json() for c in found]}
        return statejson.encode(document)

    def diff(self, start: int, end: int, path: tuple[str, ...] = ()) -> list[changes.Change]:
        """The changes from the state at ``start`` to the state at ``end``, at or below ``path``."""
        ring, reducer = self.history, self.pump.reducer
        try:
            old = timeline.state_at(self.checkpoints, ring, reducer, start)
            new = timeline.state_at(self.checkpoints, ring, reducer, end)
        except timeline.NotKept as exc:
            error = HttpError(410, str(exc))
            error.fields = {"oldest": exc.oldest, "newest": exc.newest}  # type: ignore[attr-defined]
            raise error from None
        lo, hi = sorted((start, end))
        touched: list[changes.Path] | None = []
        try:
            between = ring.after(lo, through=hi) if hi > lo else []
        except LookupError:  # trimmed since the states were rebuilt: compare the whole subtree
            between, touched = [], None
        for entry in between:
            paths = changes.event_paths(reducer, entry.event)
            if paths is None:
                touched = None  # a reducer that cannot say: compare the whole subtree
                break
            assert touched is not None
            touched.extend(paths)
        if touched is not None:
            return changes.within(changes.diff_paths(old, new, touched), path)
        return changes.diff(statejson.walk(old, path), statejson.walk(new, path), path)

    def _children(self, query: dict[str, str]) -> bytes:
        _only(query, ("path", "offset", "limit", "prefix", "cursor"))
        path = changes.split(query.get("path", ""))
        offset = _int(query, "offset", 0, 0, None)
        cursor = _int(query, "cursor", None, 0, None)
        limit = _int(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        assert offset is not None
        assert limit is not None
        prefix = query.get("prefix", "")
        version = self.pump.version
        node = statejson.walk(version.state, path)
        if node is statejson.MISSING:
            error = HttpError(404, f"no value at path {changes.render(path)!r}")
            error.fields = {"path": changes.render(path), "sequence": version.sequence}  # type: ignore[attr-defined]
            raise error
        page = children(node, path, offset, limit, prefix, cursor=cursor)
        return statejson.encode(page | {"sequence": version.sequence})

    def _asset(self, raw_path: bytes, request: Request) -> bytes:
        name = raw_path[len(b"/ui") :].lstrip(b"/").decode("ascii", "replace") or "index.html"
        content_type = _ASSETS.get(name)
        if content_type is None:
            raise HttpError(404, f"no such file in the console: {name[:80]}")
        data = resources.files("statepump").joinpath("console", name).read_bytes()
        return response(
            200,
            data,
            content_type=content_type,
            headers=_UI_HEADERS,
            keep_alive=request.keep_alive,
            http10=request.http10,
            head=request.method == "HEAD",
        )


class StatusStream:
    """``GET /ui/stream``: the pump's status as one Server-Sent Event (``event: status``) a second."""

    def __init__(self, pump: Any, interval: float) -> None:
        self.pump = pump
        self.interval = interval

    async def run(
        self,
        write: Callable[[bytes], None],
        drain: Callable[[], Awaitable[None]],
        closing: Callable[[], bool],
        close: Callable[[], None],
    ) -> None:
        """Write the stream until the client goes or the server stops (which cancels it)."""
        try:
            headers = [(b"Cache-Control", b"no-cache"), (b"X-Accel-Buffering", b"no")]
            write(stream_head(200, b"text/event-stream", headers, keep_alive=False))
            write(chunk(b"retry: 1000\n\n"))  # EventSource reconnects after a second when the sidecar restarts
            while not closing():
                status = json.dumps(self.pump.status(), separators=(",", ":"), default=str)
                write(chunk(b"event: status\ndata: " + status.encode() + b"\n\n"))
                await drain()
                await asyncio.sleep(self.interval)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            close()


def children(
    node: Any, path: tuple[str, ...], offset: int, limit: int, prefix: str = "", *, cursor: int | None = None
) -> dict[str, Any]:
    """One page of ``node``'s children, each with its kind and size (scalars with their value).

    Maps up to :data:`SORTED_UP_TO` keys are paged in key order; larger ones in
    their own order, stable for one version, by ``cursor`` (``next_cursor``: a
    page costs its size, not its depth; a page may hold a few more than
    ``limit``, whole buckets); ``prefix`` narrows a map to its sorted matches.

    >>> from pyrsistent import freeze
    >>> page = children(freeze({"b": {"x": 1}, "a": 2}), (), 0, 10)
    >>> [(c["key"], c["kind"]) for c in page["children"]], page["total"]
    ([('a', 'value'), ('b', 'map')], 2)
    """
    kind, size = _kind(node)
    items: Any
    ordered = True
    next_cursor: int | None = None
    if isinstance(node, PMap):
        if prefix:
            keys = sorted(keys_starting_with(node, prefix), key=str)
            total = len(keys)
            items = ((k, node[k]) for k in keys[offset : offset + limit])
        elif len(node) <= SORTED_UP_TO:
            keys = sorted(node.keys(), key=str)
            total = len(keys)
            items = ((k, node[k]) for k in keys[offset : offset + limit])
        elif cursor is not None or offset == 0:
            ordered = False
            total = len(node)
            items, next_cursor = pairs_from(node, cursor or 0, limit)
        else:
            ordered = False
            total = len(node)
            items = itertools.islice(node.items(), offset, offset + limit)
    elif isinstance(node, PVector):
        total = len(node)
        items = ((i, node[i]) for i in range(offset, min(total, offset + limit)))
    elif isinstance(node, PSet):
        members = sorted(node, key=str)
        total = len(members)
        items = ((i, v) for i, v in enumerate(members[offset : offset + limit], offset))
    else:
        return {"path": changes.render(path), "kind": kind, "value": node, "children": [], "total": 0}
    out = []
    for key, value in items:
        child_kind, child_size = _kind(value)
        entry: dict[str, Any] = {"key": str(key), "kind": child_kind}
        if child_kind == "value":
            entry["value"] = value
        else:
            entry["size"] = child_size
        out.append(entry)
    return {
        "path": changes.render(path),
        "kind": kind,
        "size": size,
        "total": total,
        "offset": offset,
        "sorted": ordered,
        "children": out,
        "next_offset": offset + len(out) if offset + len(out) < total and ordered else None,
        "next_cursor": next_cursor,
    }


def _kind(node: Any) -> tuple[str, int | None]:
    if isinstance(node, PMap):
        return "map", len(node)
    if isinstance(node, PVector):
        return "vector", len(node)
    if isinstance(node, PSet):
        return "set", len(node)
    return "value", None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")[:80]


def _query(raw: bytes) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in raw.split(b"&") if raw else ():
        if not pair:
            continue
        name_raw, _, value_raw = pair.partition(b"=")
        try:
            name = unquote_to_bytes(name_raw.replace(b"+", b" ")).decode("utf-8")
            value = unquote_to_bytes(value_raw.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "the query is not UTF-8 once percent-decoded") from None
        if name in params:
            raise HttpError(400, f"query parameter {name[:40]!r} given twice")
        params[name] = value
    return params


def _only(query: dict[str, str], allowed: tuple[str, ...]) -> None:
    for name in query:
        if name not in allowed:
            raise HttpError(400, f"unknown query parameter {name[:40]!r} (this endpoint takes: {', '.join(allowed)})")


def _int(query: dict[str, str], name: str, default: int | None, low: int, high: int | None) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    digits = raw.removeprefix("-")
    value = int(raw) if digits.isascii() and digits.isdigit() and len(digits) <= 19 else None
    high = _LARGEST if high is None else high
    if value is None or value < low or value > high:
        span = f"from {low} to {high}"
        raise HttpError(400, f"query parameter {name!r} must be an integer {span}, not {raw[:40]!r}")
    return value
