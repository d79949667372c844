"""A relay as an event source: another statepump's replication feed.

A pump whose source is a :class:`RelaySource` reads ``GET /v1/events?after=N``
of an upstream statepump (a sidecar, itself fed by the hub or by another
relay) instead of the hub: no Azure credentials, no hub receiver. The events
are the hub's own (sequence numbers, offsets, times, properties, bodies), and
the pump's fold checks them exactly as it checks the hub's: no duplicate, no
gap. The framing is :mod:`statepump.core.feedframes`; what can go wrong
there (a cut, a damaged or an oversize frame, a wrong number) ends that
connection with one line and the source reconnects after the last event it
yielded, on the same upstream or the next.

Failover: the upstreams are tried in order, starting with the one that last
worked. One that is down, answers an error, or is not ready while another is
ready is left for the next. When every upstream is down for
``retry_seconds``, :class:`~statepump.core.errors.ServiceUnavailable`.

Readiness passes through: the relay sends its readiness in status frames,
and :attr:`RelaySource.upstream_problem` is its reason while it is not ready
(the executor then holds the pump not ready with that reason).

410 (the relay no longer holds the events after our position, e.g. it was
restarted from a newer snapshot) is :class:`~statepump.core.errors.SequenceGapError`:
the executor plans again, finds the gap, and loads the newer snapshot that
:class:`statepump.stores.relaystore.RelayStore` serves from the relay.

>>> Upstream.parse("/run/statepump/statepump.sock").describe()
'/run/statepump/statepump.sock'
>>> Upstream.parse("https://relay-0.relay:8443").describe()
'https://relay-0.relay:8443'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools

from statepump.core.errors import ConfigError, SequenceGapError, ServiceUnavailable
from statepump.core.events import Event, PartitionBounds
from statepump.core.feedframes import MAX_FRAME, FeedDecoder, FeedError, FeedStatus

log = logging.getLogger("statepump.relay")


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream statepump: a Unix socket path, or ``http(s)://host:port``."""

    socket: Path | None = None
    host: str | None = None
    port: int | None = None
    tls: bool = False

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """An upstream from ``--upstream``'s text; :class:`ConfigError` naming what is wrong."""
        text = text.strip()
        if not text:
            raise ConfigError("--upstream: an empty upstream")
        if "://" not in text:
            return cls(socket=Path(text))
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError(f"--upstream: {text!r} is not a socket path or http(s)://host:port")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigError(f"--upstream: {text!r} has a bad port") from None
        return cls(host=parts.hostname, port=port, tls=parts.scheme == "https")

    def describe(self) -> str:
        if self.socket is not None:
            return str(self.socket)
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


class UpstreamError(Exception):
    """One upstream could not be used this time (down, refused, an error answer, a bad feed)."""


class _Gone(Exception):
    def __init__(self, oldest: int | None, sequence: int | None) -> None:
        self.oldest = oldest
        self.sequence = sequence


@dataclass(slots=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class _ResponseHead:
    """httptools callbacks: the status, the headers, and the body handed on as it arrives."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.done_head = False
        self.complete = False
        self.body: list[bytes] = []
        self._name = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.done_head = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class UpstreamClient:
    """HTTP/1.1 requests to upstreams, with the token and the CA the settings give (never logged)."""

    def __init__(
        self,
        *,
        token: bytes | None = None,
        ca_file: Path | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self._token = token
        self._ssl: ssl.SSLContext | None = None
        self._ca_file = ca_file
        self.connect_timeout = connect_timeout

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self._ca_file) if self._ca_file else None)
        return self._ssl

    async def open(
        self, upstream: Upstream, target: bytes, head_timeout: float | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, httptools.HttpResponseParser, _ResponseHead]:
        """Send ``GET target`` and read up to the end of the response head (within ``head_timeout``).

        The head of a snapshot comes after the relay has encoded it (over a
        second for a 1,000,000-key state), so it may wait longer than a connect.
        """
        try:
            async with asyncio.timeout(self.connect_timeout):
                if upstream.socket is not None:
                    reader, writer = await asyncio.open_unix_connection(str(upstream.socket), limit=1 << 20)
                else:
                    ctx = self._context() if upstream.tls else None
                    reader, writer = await asyncio.open_connection(upstream.host, upstream.port, ssl=ctx, limit=1 << 20)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise UpstreamError(f"cannot connect to {upstream.describe()}: {_why(exc)}") from None
        lines = [b"GET " + target + b" HTTP/1.1", b"Host: statepump", b"User-Agent: statepump-relay"]
        if self._token is not None and upstream.socket is None:
            lines.append(b"Authorization: Bearer " + self._token)
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        head = _ResponseHead()
        parser = httptools.HttpResponseParser(head)
        try:
            async with asyncio.timeout(head_timeout or self.connect_timeout):
                while not head.done_head:
                    data = await reader.read(65536)
                    if not data:
                        raise UpstreamError(f"{upstream.describe()} closed the connection before answering")
                    parser.feed_data(data)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            writer.close()
            raise UpstreamError(f"{upstream.describe()} did not answer: {_why(exc)}") from None
        except UpstreamError:
            writer.close()
            raise
        return reader, writer, parser, head

    async def get(self, upstream: Upstream, target: bytes, timeout: float = 60.0) -> _Answer:
        """One whole response, within ``timeout`` seconds."""
        reader, writer, parser, head = await self.open(upstream, target, head_timeout=timeout)
        try:
            async with asyncio.timeout(timeout):
                while not head.complete:
                    data = await reader.read(1 << 20)
                    if not data:
                        break
                    parser.feed_data(data)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            raise UpstreamError(f"{upstream.describe()} answered incompletely: {_why(exc)}") from None
        finally:
            writer.close()
        if not head.complete:
            raise UpstreamError(f"{upstream.describe()} closed the connection mid-answer")
        return _Answer(parser.get_status_code(), head.headers, b"".join(head.body))


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)


def error_text(answer: _Answer) -> str:
    try:
        return str(json.loads(answer.body).get("error", ""))[:300] or f"status {answer.status}"
    except (ValueError, AttributeError):
        return f"status {answer.status}"


class RelaySource:
    """The :class:`~statepump.sources.EventSource` of an upstream statepump's feed, with failover.

    >>> source = RelaySource(["/tmp/none.sock", "http://127.0.0.1:9"])
    >>> source.kind, [u.describe() for u in source.upstreams]
    ('relay', ['/tmp/none.sock', 'http://127.0.0.1:9'])
    """

    kind = "relay"

    def __init__(
        self,
        upstreams: Sequence[str | Upstream],
        *,
        partition: str = "0",
        token: bytes | None = None,
        ca_file: Path | None = None,
        retry_seconds: float = 60.0,
        max_wait: float = 1.0,
        connect_timeout: float = 5.0,
        max_frame: int = MAX_FRAME,
        stall_seconds: float = 10.0,
    ) -> None:
        if not upstreams:
            raise ConfigError("--upstream: give at least one upstream")
        self.upstreams = [u if isinstance(u, Upstream) else Upstream.parse(u) for u in upstreams]
        self.partition = partition
        self.client = UpstreamClient(token=token, ca_file=ca_file, connect_timeout=connect_timeout)
        self.retry_seconds = retry_seconds
        self.max_wait = max_wait
        self.max_frame = max_frame
        self.stall_seconds = stall_seconds
        #: Connections made again after one ended (a relay down, a bad feed, a failover).
        self.reconnects = 0
        #: The upstream in use (an index of :attr:`upstreams`).
        self.current = 0
        #: The current upstream's reason while it is not ready (``None`` when it is).
        self.upstream_problem: str | None = None
        self._last: tuple[int, datetime | None] | None = None
        self._closed = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._probed = 0.0

    @property
    def last_enqueued(self) -> tuple[int, datetime | None] | None:
        return self._last

    @property
    def upstream_status(self) -> dict[str, Any]:
        """For ``/v1/status``: the upstream in use and its readiness (no token, no key)."""
        return {
            "upstream": self.upstreams[self.current].describe(),
            "ready": self.upstream_problem is None,
            "reason": self.upstream_problem,
        }

    async def bounds(self) -> PartitionBounds:
        """The upstream's published sequence (last) and the oldest event its ring holds (first)."""
        deadline = time.monotonic() + self.retry_seconds
        failures: list[str] = []
        while True:
            for i in self._order():
                upstream = self.upstreams[i]
                try:
                    answer = await self.client.get(upstream, b"/v1/status", timeout=10.0)
                except UpstreamError as exc:
                    failures.append(str(exc))
                    continue
                if answer.status != 200:
                    failures.append(f"{upstream.describe()}: {error_text(answer)}")
                    continue
                status = json.loads(answer.body)
                self.current = i
                self.upstream_problem = None if status.get("ready") else str(status.get("not_ready_reason"))
                sequence = int(status["sequence"])
                when = datetime.fromisoformat(status["enqueued_time"]) if status.get("enqueued_time") else None
                ring = status.get("history") or {}
                oldest = ring.get("oldest")
                first = int(oldest) if oldest is not None else sequence + 1
                self._last = (sequence, when)
                return PartitionBounds(min(first, sequence + 1), sequence, when)
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"no upstream answered within {self.retry_seconds:g} s: {failures[-1]}")
            await asyncio.sleep(min(1.0, self.retry_seconds / 10))  # backoff between rounds of every upstream

    def _order(self) -> list[int]:
        n = len(self.upstreams)
        return [(self.current + k) % n for k in range(n)]

    async def read(self, after: int) -> AsyncIterator[Sequence[Event]]:
        position = after
        failing_since: float | None = None
        while not self._closed:
            upstream = self.upstreams[self.current]
            try:
                async for batch in self._stream(upstream, position):
                    failing_since = None
                    if batch:
                        position = batch[-1].sequence
                    yield batch
                    if self.upstream_problem is not None and await self._better_upstream():
                        log.warning("leaving %s (not ready: %s)", upstream.describe(), self.upstream_problem)
                        break
            except _Gone as gone:
                # Our position is older than the relay's ring: the executor plans again and loads its snapshot.
                first = gone.oldest if gone.oldest is not None else (gone.sequence or position) + 1
                raise SequenceGapError(
                    position + 1, first, where=f"({upstream.describe()} no longer holds them: it keeps from {first})"
                ) from None
            except (UpstreamError, FeedError) as exc:
                if self._closed:
                    return
                log.warning("relay feed: %s; trying the next upstream after event %d", exc, position)
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > self.retry_seconds:
                    why = f"no upstream served the feed for {self.retry_seconds:g} s: {exc}"
                    raise ServiceUnavailable(why) from None
                self.current = (self.current + 1) % len(self.upstreams)
                if self.current == 0 or len(self.upstreams) == 1:
                    await asyncio.sleep(0.2)  # a full round failed: do not spin
            self.reconnects += 1

    async def _better_upstream(self) -> bool:
        """Whether another upstream is ready while this one is not (probed at most every 2 s)."""
        if len(self.upstreams) == 1 or time.monotonic() - self._probed < 2.0:
            return False
        self._probed = time.monotonic()
        for i in self._order()[1:]:
            with contextlib.suppress(UpstreamError):
                if (await self.client.get(self.upstreams[i], b"/readyz", timeout=2.0)).status == 200:
                    self.current = i
                    return True
        return False

    async def _stream(self, upstream: Upstream, after: int) -> AsyncIterator[list[Event]]:
        reader, writer, parser, head = await self.client.open(upstream, b"/v1/events?after=%d" % after)
        self._writers.add(writer)
        try:
            status = parser.get_status_code()
            if status != 200:
                answer = await self._rest(reader, parser, head)
                if status == 410:
                    fields = _json(answer)
                    raise _Gone(fields.get("oldest"), fields.get("sequence"))
                raise UpstreamError(f"{upstream.describe()} refused the feed: {error_text(answer)}")
            decoder = FeedDecoder(after, max_frame=self.max_frame)
            pending = head.body
            while True:
                for data in pending:
                    items = decoder.feed(data)
                    events = [i for i in items if isinstance(i, Event)]
                    for item in items:
                        if isinstance(item, FeedStatus):
                            self._status(item)
                    if events:
                        yield events
                    elif items:
                        yield []  # a status: lets the pump refresh readiness
                pending = head.body = []
                if head.complete:
                    decoder.end()
                    raise UpstreamError(f"{upstream.describe()} ended the feed")
                try:
                    data = await asyncio.wait_for(reader.read(1 << 20), self.stall_seconds)
                except TimeoutError:
                    raise UpstreamError(f"{upstream.describe()} sent nothing for {self.stall_seconds:g} s") from None
                except OSError as exc:
                    raise UpstreamError(f"{upstream.describe()} dropped the feed: {_why(exc)}") from None
                if not data:
                    decoder.end()
                    raise UpstreamError(f"{upstream.describe()} closed the feed")
                try:
                    parser.feed_data(data)
                except httptools.HttpParserError as exc:
                    raise UpstreamError(f"{upstream.describe()} sent a malformed response: {_why(exc)}") from None
                pending = head.body
        finally:
            self._writers.discard(writer)
            writer.close()

    def _status(self, status: FeedStatus) -> None:
        self.upstream_problem = None if status.ready else (status.reason or "not ready")
        if self._last is None or status.sequence >= self._last[0]:
            self._last = (status.sequence, self._last[1] if self._last else None)

    async def _rest(self, reader: asyncio.StreamReader, parser: Any, head: _ResponseHead) -> _Answer:
        with contextlib.suppress(OSError, TimeoutError, httptools.HttpParserError):
            async with asyncio.timeout(5.0):
                while not head.complete:
                    data = await reader.read(65536)
                    if not data:
                        break
                    parser.feed_data(data)
        return _Answer(parser.get_status_code(), head.headers, b"".join(head.body))

    async def close(self) -> None:
        self._closed = True
        for writer in list(self._writers):
            writer.close()


def _json(answer: _Answer) -> dict[str, Any]:
    try:
        value = json.loads(answer.body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class FallbackSource:
    """The relays first; when none of them can be had, the hub (``--upstream-fallback hub``).

    The switch happens when the relay source gives up (every upstream down
    for ``--retry-seconds``), and the hub read resumes exactly after the last
    event the relays gave, so the fold still sees every number once. It stays
    on the hub until restarted: a pump that had to read the hub keeps its
    receiver rather than flapping between the two.
    """

    def __init__(self, relay: RelaySource, hub: Any) -> None:
        self.relay = relay
        self._make_hub = hub
        self.hub: Any = None
        #: ``relay``, then ``hub`` once fallen back (the executor counts events by it).
        self.kind = "relay"

    @property
    def upstream_problem(self) -> str | None:
        return self.relay.upstream_problem if self.hub is None else None

    @property
    def upstream_status(self) -> dict[str, Any]:
        if self.hub is None:
            return self.relay.upstream_status
        return {"upstream": "the hub (--upstream-fallback)", "ready": True, "reason": None}

    @property
    def reconnects(self) -> int:
        return self.relay.reconnects + int(getattr(self.hub, "reconnects", 0))

    @property
    def last_enqueued(self) -> tuple[int, datetime | None] | None:
        return self.relay.last_enqueued if self.hub is None else self.hub.last_enqueued

    def _fall_back(self, exc: Exception) -> None:
        log.error("%s; falling back to the hub (--upstream-fallback hub)", exc)
        self.hub = self._make_hub()
        self.kind = str(self.hub.kind)

    async def bounds(self) -> PartitionBounds:
        if self.hub is None:
            try:
                return await self.relay.bounds()
            except ServiceUnavailable as exc:
                self._fall_back(exc)
        return await self.hub.bounds()  # type: ignore[no-any-return]

    async def read(self, after: int) -> AsyncIterator[Sequence[Event]]:
        position = after
        if self.hub is None:
            try:
                async for batch in self.relay.read(after):
                    if batch:
                        position = batch[-1].sequence
                    yield batch
                return
            except ServiceUnavailable as exc:
                self._fall_back(exc)
        async for batch in self.hub.read(position):
            yield batch

    async def close(self) -> None:
        await self.relay.close()
        if self.hub is not None:
            await self.hub.close()
