"""The replication feed and the snapshot download, between real pumps in one process.

An upstream pump over a MemorySource is served by the sidecar's Server on a Unix
socket (or loopback TCP); downstream pumps read it through RelaySource and
RelayStore, as ``statepump run --upstream`` does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from pyrsistent import thaw

from statepump.core import codec
from statepump.core.events import canonical_time
from statepump.core.history import History
from statepump.pump import Pump
from statepump.sources.memory import MemorySource
from statepump.sources.relay import FallbackSource, RelaySource, Upstream, UpstreamClient
from statepump.stores.relaystore import ReadOnlyStore, RelayStore
from tests.relay.harness import Shared, upstream

TOKEN = b"t0ken-t0ken-t0ken-t0ken"


def downstream(*sockets: Any, **options: Any) -> Pump[Any]:
    names = [str(s) for s in sockets]
    source = RelaySource(names, max_wait=0.5, retry_seconds=10, stall_seconds=5)
    return Pump(source, store=RelayStore(names, "hub", "0"), replan_interval=0.2, **options)


async def until(condition: Any, what: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)  # the poll interval of a condition, not a wait standing in for it


def events(source: MemorySource, start: int, count: int) -> None:
    for i in range(start, start + count):
        source.append({"op": "set", "path": f"k/{i % 50}", "value": i}, properties={"n": i}, partition_key=f"p{i}")


async def test_a_downstream_reaches_the_upstreams_state_with_every_event_field() -> None:
    memory = MemorySource(max_wait=0.05)
    when = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    async with upstream(memory, pump_options={"poison_policy": "skip"}) as up:
        await up.pump.wait_ready(timeout=10)
        pump = downstream(up.socket, poison_policy="skip", dead_letter=None)
        async with pump:
            await pump.wait_ready(timeout=20)  # an empty relay: no snapshot, the feed from the first event
            memory.append(
                b'{"op": "set", "path": "a", "value": 1}',
                properties={"s": "x", "b": b"\xff\x00", "i": -5, "f": 0.5, "t": True, "none": None},
                partition_key="key",
                enqueued_time=when,
            )
            # A poison event: the upstream skips it, and the downstream's own fold must decide the same.
            memory.append(b"not json")
            events(memory, 2, 500)
            await pump.wait_for(501, timeout=20)
            assert thaw(pump.state) == thaw(up.pump.state)
            assert pump.status()["duplicates_skipped"] == 0
            assert pump.status()["poison_events"] == 1
            mine, theirs = pump.history.after(-1), up.pump.history.after(-1)
            assert [e.event for e in mine] == [e.event for e in theirs]
            assert [e.outcome for e in mine] == [e.outcome for e in theirs]
            first = mine[0].event
            # The canonical form (see Event): milliseconds, a boolean as 0/1, bytes that are not text as bytes.
            assert (first.enqueued_time, first.partition_key, first.offset) == (canonical_time(when), "key", "0")
            assert {k: type(v) for k, v in first.properties.items()} == {
                "s": str,
                "b": bytes,
                "i": int,
                "f": float,
                "t": int,
                "none": type(None),
            }


async def test_the_feed_sends_only_published_versions_and_keeps_alive() -> None:
    async with upstream(heartbeat=0.1) as up:
        events(up.source, 0, 5)
        await up.pump.wait_for(4, timeout=10)
        client = UpstreamClient()
        reader, writer, parser, head = await client.open(Upstream(socket=up.socket), b"/v1/events?after=1")
        try:
            assert parser.get_status_code() == 200
            assert head.headers["content-type"] == "application/vnd.statepump.feed"
            from statepump.core.feedframes import FeedDecoder, FeedStatus

            decoder = FeedDecoder(1)
            items: list[Any] = []
            async with asyncio.timeout(10):
                while sum(isinstance(i, FeedStatus) for i in items) < 3:  # the opening status and two keep-alives
                    for data in head.body:
                        items.extend(decoder.feed(data))
                    head.body = []
                    parser.feed_data(await reader.read(65536))
            assert [i.sequence for i in items if not isinstance(i, FeedStatus)] == [2, 3, 4]
            assert all(i.sequence == 4 and i.ready for i in items if isinstance(i, FeedStatus))
        finally:
            writer.close()


async def test_after_older_than_the_ring_is_410_naming_the_oldest_kept() -> None:
    async with upstream(history=History(max_events=10)) as up:
        events(up.source, 0, 40)
        await up.pump.wait_for(39, timeout=10)
        answer = await UpstreamClient().get(Upstream(socket=up.socket), b"/v1/events?after=5")
        assert answer.status == 410
        body = json.loads(answer.body)
        assert (body["oldest"], body["newest"], body["sequence"]) == (30, 39, 39)
        assert answer.headers["statepump-oldest"] == "30"


async def test_a_relay_restarted_with_a_hole_makes_the_downstream_reload_its_snapshot() -> None:
    memory = MemorySource(max_wait=0.05)
    events(memory, 0, 50)
    async with upstream(Shared(memory)) as first:
        await first.pump.wait_for(49, timeout=10)
        async with upstream(Shared(memory), history=History(max_events=5)) as second:
            pump = downstream(first.socket, second.socket)
            async with pump:
                await pump.wait_for(49, timeout=20)
                loads = pump.loaded
                await first.server.stop(grace=0.1)  # the first relay goes; the second holds only 5 events
                events(memory, 50, 100)
                await second.pump.wait_for(149, timeout=10)
                await pump.wait_for(149, timeout=30)
                assert pump.loaded is not loads and pump.loaded is not None and pump.loaded.meta is not None
                assert pump.loaded.meta.sequence > 49  # it took the second relay's snapshot, not a guess
                assert thaw(pump.state) == thaw(first.pump.state)
                assert pump.status()["duplicates_skipped"] == 0


async def test_a_downstream_of_a_not_ready_relay_is_not_ready_with_its_reason() -> None:
    memory = MemorySource(max_wait=0.05)
    events(memory, 0, 3)
    async with upstream(memory) as up:
        await up.pump.wait_for(2, timeout=10)
        pump = downstream(up.socket)
        async with pump:
            await pump.wait_ready(timeout=20)
            memory.append(b"poison: stops the relay (policy stop)")
            await until(lambda: not up.pump.ready, "the relay to stop")
            await until(lambda: not pump.ready, "the downstream to say it is not ready")
            assert up.pump.not_ready_reason is not None
            assert pump.not_ready_reason == f"upstream not ready: {up.pump.not_ready_reason}"
            assert pump.version.sequence == 2  # the poison event is not past the relay's published version


async def test_the_snapshot_is_encoded_once_per_version_signed_and_read_only_downstream() -> None:
    key = b"k" * 32
    memory = MemorySource(max_wait=0.05)
    events(memory, 0, 20)
    source = MemorySource(max_wait=0.05)
    async with upstream(memory) as up:
        up.pump._executor.hmac_key = key  # the relay signs with its snapshot key
        await up.pump.wait_for(19, timeout=10)
        client, where = UpstreamClient(), Upstream(socket=up.socket)
        answers = await asyncio.gather(*(client.get(where, b"/v1/snapshot") for _ in range(4)))
        assert {a.headers["statepump-sequence"] for a in answers} == {"19"}
        assert up.server.relay.encodes == 1
        meta, state = codec.decode(answers[0].body, hmac_key=key)
        assert meta.signed and meta.sequence == 19 and thaw(state) == thaw(up.pump.state)
        store = RelayStore([str(up.socket)], "hub", "0")
        [ref] = await store.list()
        assert ref.sequence == 19
        with pytest.raises(ReadOnlyStore, match="read-only"):
            await store.write(20, b"")
    del source


async def test_over_tcp_the_feed_needs_the_token_and_refusals_do_not_log_it(caplog: pytest.LogCaptureFixture) -> None:
    async with upstream(listen=("127.0.0.1", 0), relay_token=TOKEN) as up:
        events(up.source, 0, 3)
        await up.pump.wait_for(2, timeout=10)
        assert up.server.tcp_address is not None
        host, port = up.server.tcp_address
        where = Upstream(host=host, port=port)
        caplog.set_level(logging.INFO)
        for token in (None, b"wrong-wrong-wrong-wrong"):
            answer = await UpstreamClient(token=token).get(where, b"/v1/snapshot")
            assert answer.status == 401
            assert answer.headers["www-authenticate"] == "Bearer"
            answer = await UpstreamClient(token=token).get(where, b"/v1/events?after=-1")
            assert answer.status == 401
        assert "refused /v1/snapshot from 127.0.0.1" in caplog.text
        assert "wrong-wrong" not in caplog.text and TOKEN.decode() not in caplog.text
        answer = await UpstreamClient(token=TOKEN).get(where, b"/v1/snapshot")
        assert answer.status == 200
        pump = Pump(
            RelaySource([f"http://{host}:{port}"], token=TOKEN, max_wait=0.5),
            store=RelayStore([f"http://{host}:{port}"], "hub", "0", token=TOKEN),
        )
        async with pump:
            await pump.wait_for(2, timeout=20)
            assert thaw(pump.state) == thaw(up.pump.state)
        # The Unix socket's own access control stands: no token asked there.
        assert (await UpstreamClient().get(Upstream(socket=up.socket), b"/v1/snapshot")).status == 200


async def test_a_downstream_that_cannot_use_the_relays_snapshot_never_skips_what_the_ring_lost() -> None:
    memory = MemorySource(max_wait=0.05)
    events(memory, 0, 40)
    async with upstream(memory, history=History(max_events=10), pump_options={"hmac_key": b"k" * 32}) as up:
        await up.pump.wait_for(39, timeout=10)
        # This downstream trusts another key: the relay's snapshot is refused, and its ring starts at 30.
        pump = downstream(up.socket, hmac_key=b"other-key-other-key")
        async with pump:
            await until(lambda: pump.not_ready_reason is not None and "gap" in pump.not_ready_reason, "a gap")
            assert pump.version.sequence == -1  # nothing served: not events 30..39 on an empty state
            assert "events 0..29 are missing" in str(pump.not_ready_reason)
            assert pump.status()["events_skipped_by_gap"] == 0


async def test_with_fallback_to_the_hub_a_downstream_reads_the_hub_when_no_relay_answers() -> None:
    memory = MemorySource(max_wait=0.05)  # stands for the hub that both the relay and the fallback read
    events(memory, 0, 50)
    async with upstream(Shared(memory)) as up:
        await up.pump.wait_for(49, timeout=10)
        relay = RelaySource([str(up.socket)], max_wait=0.5, retry_seconds=1, stall_seconds=5)
        source = FallbackSource(relay, lambda: Shared(memory))
        pump = Pump(source, store=RelayStore([str(up.socket)], "hub", "0"), replan_interval=0.2)
        async with pump:
            await pump.wait_for(49, timeout=20)
            assert source.kind == "relay"
            await up.server.stop(grace=0.1)  # no relay any more
            events(memory, 50, 50)
            await pump.wait_for(99, timeout=30)
            assert source.kind == "memory" and source.upstream_status["upstream"].startswith("the hub")
            assert thaw(pump.state) == thaw(up.pump.state)
            assert pump.status()["duplicates_skipped"] == 0 and pump.status()["events_skipped_by_gap"] == 0
