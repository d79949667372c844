"""A relay that sends bad feed data: the downstream drops the connection with one line, never a wrong event.

The "relay" here is a small asyncio server on a Unix socket that answers
``/v1/status`` and then, for ``/v1/events``, the frames a test gives it: a real
server's bytes, cut, damaged or out of order. RelaySource must reconnect and
yield only the events that follow its position exactly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from statepump.core.events import Event
from statepump.core.feedframes import event_frame, hello, status_frame
from statepump.core.httpapi import chunk
from statepump.sources.relay import RelaySource

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(n: int) -> Event:
    return Event("0", n, str(n), T0, None, {}, b"{}")


class FakeRelay:
    """Answers each feed request with ``feeds[i]`` (bytes of the body), the last one for every later request."""

    def __init__(self, path: Path, feeds: list[Callable[[int], bytes]]) -> None:
        self.path = path
        self.feeds = feeds
        self.requests: list[int] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ")[1]
        if target == b"/v1/status":
            body = json.dumps({"sequence": 9, "ready": True, "enqueued_time": None, "history": {"oldest": 0}})
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body.encode()))
        else:
            after = int(target.split(b"after=")[1])
            self.requests.append(after)
            feed = self.feeds[min(len(self.requests) - 1, len(self.feeds) - 1)]
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(feed(after)))
        await writer.drain()
        writer.close()


@pytest.fixture
async def relay_dir() -> AsyncIterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sp-bad-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def read_until(source: RelaySource, after: int, last: int) -> list[Event]:
    got: list[Event] = []
    async with asyncio.timeout(20):
        async for batch in source.read(after):
            got.extend(batch)
            if got and got[-1].sequence >= last:
                return got
    return got


def good(after: int) -> bytes:
    return hello("0", after) + status_frame(9, True, None) + b"".join(event_frame(ev(n)) for n in range(after + 1, 10))


@pytest.mark.parametrize(
    "bad",
    [
        # event 3 where 2 is due: the stream fails at 3, before taking it
        lambda after: hello("0", after) + event_frame(ev(after + 1)) + event_frame(ev(after + 3)),
        # a damaged frame (a flipped byte in an event's body)
        lambda after: hello("0", after) + event_frame(ev(after + 1)) + event_frame(ev(after + 2))[:-1] + b"X",
        # an oversize frame's header
        lambda after: hello("0", after) + event_frame(ev(after + 1)) + b"\xff\xff\xff\xff\x00\x00\x00\x00",
        # cut inside a frame, then the connection closes
        lambda after: hello("0", after) + event_frame(ev(after + 1)) + event_frame(ev(after + 2))[:7],
    ],
    ids=["wrong-sequence", "damaged", "oversize", "truncated"],
)
async def test_bad_feed_data_means_reconnect_after_the_last_good_event(
    relay_dir: Path, bad: Callable[[int], bytes], caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeRelay(relay_dir / "relay.sock", [bad, good])
    server = await asyncio.start_unix_server(fake.handle, path=str(fake.path))
    caplog.set_level(logging.WARNING, "statepump.relay")
    source = RelaySource([str(fake.path)], max_wait=0.5, retry_seconds=10)
    try:
        got = await read_until(source, -1, 9)
    finally:
        await source.close()
        server.close()
    assert [e.sequence for e in got] == list(range(10))  # each number once, in order, none made up
    assert fake.requests == [-1, 0]  # reconnected exactly after the last good event
    assert source.reconnects >= 1
    warnings = [r.getMessage() for r in caplog.records if "relay feed" in r.getMessage()]
    assert warnings and all("\n" not in w for w in warnings)
