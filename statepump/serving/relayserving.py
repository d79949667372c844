"""The relay's side of the sidecar: the replication feed and the snapshot download.

``GET /v1/events?after=N`` streams, in order, every event the pump folded past
after ``N`` (applied, rejected and poison-skipped alike: a downstream's own
fold decides the same outcome, so the feed carries events, not outcomes),
framed by :mod:`statepump.core.feedframes`, from the pump's ring
(:attr:`statepump.pump.Pump.history`). It sends only through the *published*
``version.sequence``, never an event still inside a catch-up's open fold, so a
downstream is never ahead of what its relay serves. While idle it sends a
status frame every ``heartbeat`` seconds (the keep-alive, and the relay's
readiness, which the downstream adopts). ``N`` older than the ring: 410 with
the oldest number kept; the downstream then loads ``GET /v1/snapshot``.

``GET /v1/snapshot`` is the current version as a snapshot file (the codec's
format, signed when the pump has an HMAC key), its sequence number in
``Statepump-Sequence``. Encoding a 1,000,000-key state takes over a second,
so it runs on a thread, at most one at a time, and its bytes are kept until a
newer version is encoded: every download of one version costs one encode, and
a request during an encode gets that encode's result.

Over TCP both need ``Authorization: Bearer TOKEN`` when the server has a token
(``--relay-token-file``), compared in constant time; a server listening
beyond loopback without one refuses them. A refusal is logged with the peer,
never with what it sent.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from statepump.core import codec, collector
from statepump.core.events import Version
from statepump.core.feedframes import CONTENT_TYPE, event_frames, hello, status_frame
from statepump.core.history import Trimmed
from statepump.core.httpapi import Feed, Request, SnapshotQuery, chunk, error_body, relay_route, response, stream_head

__all__ = ["Feed", "RelayServing", "SnapshotQuery", "relay_route"]

log = logging.getLogger("statepump.relay")

#: Events per feed write: bounds the bytes one write buffers for a slow reader.
FEED_BATCH: Final = 1000
SNAPSHOT_TYPE: Final = b"application/vnd.statepump.snapshot"
#: Bytes of a snapshot written before waiting for the reader to take them.
SNAPSHOT_SLICE: Final = 1 << 20


class RelayServing:
    """Answers ``/v1/events`` and ``/v1/snapshot`` for one pump (each sidecar ``Server`` holds one).

    >>> relay = RelayServing(None, token=b"s" * 16)
    >>> asked = Request("GET", b"/v1/snapshot")
    >>> relay.refusal(asked, ("127.0.0.1", 5000), over_tcp=True).split(b"\\r\\n")[0]
    b'HTTP/1.1 401 Unauthorized'
    >>> relay.refusal(Request("GET", b"/v1/snapshot", authorization=b"Bearer " + b"s" * 16), None, over_tcp=True)
    >>> relay.refusal(asked, None, over_tcp=False) is None  # the Unix socket's mode and group decide there
    True
    """

    def __init__(
        self,
        pump: Any,
        *,
        token: bytes | None = None,
        tcp_needs_token: bool = False,
        heartbeat: float = 1.0,
    ) -> None:
        """Serve ``pump``'s feed and snapshot; ``token`` is required of TCP clients when given.

        ``tcp_needs_token``: refuse TCP clients when there is no token (a server beyond loopback).
        """
        self.pump = pump
        self._token = token
        self._tcp_needs_token = tcp_needs_token
        self.heartbeat = heartbeat
        self._snapshot: tuple[Version[Any], bytes] | None = None
        self._encoding: asyncio.Future[tuple[Version[Any], bytes]] | None = None
        #: Snapshot encodes done (one per version asked for).
        self.encodes = 0

    # --- authorization ---------------------------------------------------------------

    def refusal(self, request: Request, peer: object, over_tcp: bool) -> bytes | None:
        """The 401 to answer, or ``None`` when the request may have the feed or the snapshot."""
        if not over_tcp:
            return None  # the Unix socket's mode and group are its access control
        if self._token is None:
            if not self._tcp_needs_token:
                return None
            why = "this relay has no --relay-token-file, so it serves the feed and snapshot on its Unix socket only"
            log.warning("refused %s from %s: no token configured", _endpoint(request), _peer(peer))
        else:
            given = request.authorization or b""
            scheme, _, value = given.partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self._token):
                return None
            what = "no token" if not given else "a wrong token"
            log.warning("refused %s from %s: %s", _endpoint(request), _peer(peer), what)
            why = "the relay feed and snapshot need Authorization: Bearer TOKEN (--relay-token-file)"
        body = error_body(401, why)
        return response(401, body, headers=[(b"WWW-Authenticate", b"Bearer")], keep_alive=False)

    # --- the snapshot ---------------------------------------------------------------------

    async def snapshot(self) -> tuple[Version[Any], bytes]:
        """The newest encoded version and its file (encoding the current one if it is newer and none is under way)."""
        current = self.pump.version
        cached = self._snapshot
        if cached is not None and cached[0].sequence >= current.sequence:
            return cached
        if self._encoding is None:
            self._encoding = asyncio.ensure_future(self._encode(current))
        encoding = self._encoding
        return await asyncio.shield(encoding)

    async def _encode(self, version: Version[Any]) -> tuple[Version[Any], bytes]:
        pump = self.pump
        reducer = pump.reducer
        meta = codec.SnapshotMeta(
            eventhub=str(getattr(pump, "eventhub", "hub")),
            partition=version.partition,
            sequence=version.sequence,
            enqueued_time=version.enqueued_time,
            reducer=reducer.name,
            reducer_version=reducer.version,
            created_at=datetime.now(UTC),
            events_folded=max(0, version.sequence + 1),
            schema=reducer.schema,
        )
        key: bytes | None = getattr(pump, "hmac_key", None)

        def encode() -> bytes:
            with collector.paused():
                return codec.encode(meta, version.state, hmac_key=key, changed=version.changed)

        try:
            data = await asyncio.to_thread(encode)
        finally:
            self._encoding = None
        self.encodes += 1
        if self._snapshot is None or self._snapshot[0].sequence < version.sequence:
            self._snapshot = (version, data)
        return version, data

    async def answer_snapshot(
        self,
        request: Request,
        write: Callable[[bytes], None],
        drain: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        pump = self.pump
        if pump.version.sequence < 0:
            reason = pump.not_ready_reason or "nothing applied yet"
            write(
                response(
                    503,
                    error_body(503, f"no version to snapshot yet: {reason}", reason=reason),
                    keep_alive=request.keep_alive,
                )
            )
            return 503
        version, data = await self.snapshot()
        headers = [(b"Statepump-Sequence", b"%d" % version.sequence), (b"Cache-Control", b"no-cache")]
        keep = request.keep_alive
        write(response(200, data, content_type=SNAPSHOT_TYPE, headers=headers, keep_alive=keep, head=True))
        if request.method != "HEAD":
            # In slices, waiting for a slow reader between them: its buffer never holds a whole state's copy.
            view = memoryview(data)
            for start in range(0, len(view), SNAPSHOT_SLICE):
                write(view[start : start + SNAPSHOT_SLICE])  # type: ignore[arg-type]
                if drain is not None:
                    await drain()
        return 200

    # --- the feed --------------------------------------------------------------------------

    async def answer_feed(
        self,
        feed: Feed,
        request: Request,
        write: Callable[[bytes], None],
        drain: Callable[[], Awaitable[None]],
        closing: Callable[[], bool],
    ) -> int:
        """Stream the feed until the client goes or the ring no longer holds the next event; the status sent."""
        pump = self.pump
        history = pump.history
        try:
            pending = history.after(feed.after, through=pump.version.sequence, limit=FEED_BATCH)
        except Trimmed as trimmed:
            message = str(trimmed)
            body = error_body(
                410,
                message,
                after=feed.after,
                oldest=trimmed.oldest,
                newest=trimmed.newest,
                sequence=pump.version.sequence,
            )
            oldest = b"" if trimmed.oldest is None else b"%d" % trimmed.oldest
            write(response(410, body, headers=[(b"Statepump-Oldest", oldest)], keep_alive=request.keep_alive))
            return 410
        headers = [(b"Cache-Control", b"no-cache"), (b"Statepump-Sequence", b"%d" % pump.version.sequence)]
        write(stream_head(200, CONTENT_TYPE, headers, keep_alive=False))
        if request.method == "HEAD":
            write(b"0\r\n\r\n")
            return 200
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def published(_old: Version[Any], _new: Version[Any]) -> None:
            loop.call_soon_threadsafe(wake.set)

        unsubscribe = pump.subscribe(published)
        sent = feed.after
        status = (pump.version.sequence, pump.ready, pump.not_ready_reason)
        write(chunk(hello(pump.version.partition, feed.after) + status_frame(*status)))
        try:
            while not closing():
                if pending:
                    write(chunk(event_frames(e.event for e in pending)))
                    sent = pending[-1].sequence
                    pending = []
                    await drain()
                    await asyncio.sleep(0)  # a long backlog must not keep other clients waiting
                now = (pump.version.sequence, pump.ready, pump.not_ready_reason)
                if now[1:] != status[1:]:
                    status = now
                    write(chunk(status_frame(*status)))
                wake.clear()
                top = pump.version.sequence
                if top > sent:
                    try:
                        pending = history.after(sent, through=top, limit=FEED_BATCH)
                    except Trimmed:
                        # The ring restarted past us (a skipped range): end; the reader's retry gets 410.
                        log.info("feed after %d ends: the ring no longer holds %d", feed.after, sent + 1)
                        break
                    if pending:
                        continue
                try:
                    await asyncio.wait_for(wake.wait(), self.heartbeat)
                except TimeoutError:
                    status = (pump.version.sequence, pump.ready, pump.not_ready_reason)
                    write(chunk(status_frame(*status)))
                    await drain()
            if not closing():
                write(b"0\r\n\r\n")
        except ConnectionError:
            pass
        finally:
            unsubscribe()
        return 200


def _endpoint(request: Request) -> str:
    return request.target.partition(b"?")[0].decode("ascii", "replace")


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "the socket"
