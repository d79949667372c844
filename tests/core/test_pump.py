"""The pump over in-memory sources: start, catch-up plan, readiness, publishing, poison, gaps."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pyrsistent import pmap

from statepump.core.configops import config
from statepump.core.errors import ServiceUnavailable
from statepump.core.events import Event, PartitionBounds, Version
from statepump.core.fold import fold
from statepump.core.reducer import Reducer
from statepump.pump import Pump, PumpFailed
from statepump.sources.memory import MemorySource
from statepump.stores.deadletters import DeadLetterFile
from statepump.stores.directory import DirectoryStore
from statepump.stores.snapshots import initial_version, write_snapshot
from tests.core.strategies import T0


def set_op(i: int) -> dict[str, Any]:
    return {"op": "set", "path": ["k", str(i % 50)], "value": i}


def fill(source: MemorySource, n: int, start: int = 0) -> None:
    for i in range(start, n):
        source.append(set_op(i))


def full_replay(n: int) -> Any:
    src = [Event("0", i, str(i), T0, None, {}, json.dumps(set_op(i)).encode()) for i in range(n)]
    return fold(initial_version(config, "0"), src, config, applied_at=T0).version.state


# --- consistency: readers see whole versions only ---------------------------------------

TOTAL = 1_000


def _transfer(state: Any, event: Event) -> Any:
    # Two keys change per event; a reader that saw one change without the other
    # would see the total drift. The "seq" key ties the state to its version.
    src, dst = json.loads(event.body)
    amount = state[src] // 2
    return state.set(src, state[src] - amount).set(dst, state[dst] + amount).set("seq", event.sequence)


TRANSFER = Reducer("transfer", 1, _transfer, pmap({"a": TOTAL, "b": 0, "c": 0, "seq": -1}))


def test_a_reader_thread_never_sees_a_partial_event() -> None:
    source = MemorySource(batch_size=7)
    pairs = [("a", "b"), ("b", "c"), ("c", "a"), ("b", "a")]
    n = 20_000
    for i in range(n):
        source.append(list(pairs[i % 4]))
    # Every batch published, catch-up or not: the reader is to see many versions.
    pump: Pump[Any] = Pump(source, reducer=TRANSFER, catchup_publish_interval=0)
    seen: list[Version[Any]] = []
    problems: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            v = pump.version  # one read; everything below uses this object only
            s = v.state
            if s["a"] + s["b"] + s["c"] != TOTAL:
                problems.append(f"total {s['a'] + s['b'] + s['c']} at {v.sequence}")
            if s["seq"] != v.sequence:
                problems.append(f"state of {s['seq']} published as version {v.sequence}")
            if not seen or seen[-1] is not v:
                seen.append(v)

    t = threading.Thread(target=reader)
    t.start()
    pump.start_in_thread()
    try:
        final = pump.wait_for_sync(n - 1, timeout=60)
    finally:
        done.set()
        t.join()
        pump.stop_in_thread()
    assert problems == []
    assert final.sequence == n - 1
    assert len(seen) > 10  # the reader really watched the fold happen
    assert [v.sequence for v in seen] == sorted(v.sequence for v in seen)


# --- start, readiness, waiting, subscribing ------------------------------------------------


async def test_ready_after_catching_up_to_the_tail_seen_at_start_and_then_follows_live() -> None:
    source = MemorySource(max_wait=0.1)
    fill(source, 500)
    async with Pump[Any](source) as pump:
        assert not pump.ready
        await pump.wait_ready(timeout=10)
        assert pump.version.sequence == 499
        assert pump.state == full_replay(500)
        source.append(set_op(500))
        v = await pump.wait_for(500, timeout=10)
        assert v.sequence == 500 and pump.state == full_replay(501)
        status = pump.status()
        assert status["ready"] and status["not_ready_reason"] is None
        assert status["events_from_hub"] == 501 and status["lag_events"] == 0


async def test_wait_for_times_out_and_many_waiters_are_released_by_one_publish() -> None:
    source = MemorySource(max_wait=0.1)
    async with Pump[Any](source) as pump:
        with pytest.raises(TimeoutError):
            await pump.wait_for(0, timeout=0.05)
        waiters = [asyncio.create_task(pump.wait_for(i % 3, timeout=10)) for i in range(2_000)]
        fill(source, 3)
        versions = await asyncio.gather(*waiters)
        assert all(v.sequence >= i % 3 for i, v in enumerate(versions))
        assert len(pump._waiters) == 0


async def test_subscribers_see_every_publish_in_order_with_old_and_new() -> None:
    source = MemorySource(max_wait=0.1, batch_size=10)
    calls: list[tuple[int, int]] = []
    pump: Pump[Any] = Pump(source)
    unsubscribe = pump.subscribe(lambda old, new: calls.append((old.sequence, new.sequence)))
    fill(source, 95)
    async with pump:
        await pump.wait_ready(timeout=10)
        unsubscribe()
        source.append(set_op(95))
        await pump.wait_for(95, timeout=10)
    assert calls[0][0] == -1 and calls[-1][1] == 94
    assert all(old < new for old, new in calls)
    assert all(calls[i][1] == calls[i + 1][0] for i in range(len(calls) - 1))


async def test_a_catch_up_publishes_at_the_end_of_each_step_and_live_batches_one_by_one(tmp_path: Path) -> None:
    # An hour between catch-up versions: Capture's step and the hub's catch-up each publish once,
    # at their ends, though they come in batches of 100; once live, every batch is a version.
    store = DirectoryStore(tmp_path, "hub", "0")
    await _snapshot_at(store, 1000)
    hub = MemorySource(max_wait=0.1, batch_size=100)
    capture = MemorySource(live=False, batch_size=100)
    for i in range(9000):
        hub.append(set_op(i))
        if i <= 6000:
            capture.append(set_op(i))
    hub.expire(5000)
    published: list[int] = []
    pump: Pump[Any] = Pump(hub, store=store, capture=capture, catchup_publish_interval=3600)
    pump.subscribe(lambda old, new: published.append(new.sequence))
    async with pump:
        await pump.wait_ready(timeout=30)
        assert pump.state == full_replay(9000)
        assert pump.status()["fold_batches"] == 80  # 1001..4999 from Capture, 5000..8999 from the hub
        fill(hub, 9250, start=9000)
        await pump.wait_for(9249, timeout=10)
        assert pump.state == full_replay(9250)
    assert published == [1000, 4999, 8999, 9099, 9199, 9249]


async def test_starts_from_the_snapshot_and_reads_only_the_events_after_it(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    source = MemorySource(max_wait=0.1)
    fill(source, 300)
    events = [Event("0", i, str(i), T0, None, {}, json.dumps(set_op(i)).encode()) for i in range(100)]
    at_99 = fold(initial_version(config, "0"), events, config, applied_at=T0).version
    await write_snapshot(store, at_99, config, eventhub="hub", events_folded=100)
    async with Pump[Any](source, store=store) as pump:
        await pump.wait_ready(timeout=10)
        status = pump.status()
    assert status["snapshot_sequence"] == 99
    assert status["events_from_hub"] == 200
    assert pump.state == full_replay(300)


# --- poison ------------------------------------------------------------------------------------


async def test_a_poison_event_stops_the_pump_and_the_last_good_version_is_served() -> None:
    source = MemorySource(max_wait=0.1)
    fill(source, 10)
    source.append(b'{"op": "set", "path": "x"')  # not JSON: poison (an invalid op is a rejection)
    fill(source, 20, start=11)
    async with Pump[Any](source) as pump:
        await pump.wait_for(9, timeout=10)
        # Halted, not ended: the pump reads on for a `statepump skip 10` (tests/core/test_control.py).
        while True:
            changed = pump.readiness_change()
            if pump.status()["halted_on_poison"] is not None:
                break
            await asyncio.wait_for(changed, 10)
        assert pump.status()["halted_on_poison"]["sequence"] == 10
        assert pump.version.sequence == 9
        assert not pump.ready
        reason = pump.not_ready_reason or ""
        assert "poison event 10" in reason and "not valid JSON" in reason
        assert pump.status()["poison_events"] == 1


async def test_a_rejected_event_is_a_no_op_counted_and_kept_in_the_ring_and_the_pump_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = MemorySource(max_wait=0.1)
    fill(source, 10)
    source.append(b'{"op": "set", "path": "x"}')  # no value: rejected
    fill(source, 20, start=11)
    with caplog.at_level(logging.WARNING, logger="statepump.pump"):
        async with Pump[Any](source) as pump:  # the default policy, stop, is for poison only
            await pump.wait_ready(timeout=10)
            assert pump.version.sequence == 19 and pump.ready
            expected = full_replay(20)
            assert pump.state == expected.set("k", expected["k"].discard("10"))
            status = pump.status()
            entry = pump.history.get(10)
    assert status["events_rejected"] == 1 and status["poison_events"] == 0
    assert status["last_rejected_event"] == {"sequence": 10, "reason": "'set' at x has no 'value'"}
    assert entry is not None and (entry.outcome, entry.reason) == ("rejected", "'set' at x has no 'value'")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["event 10 rejected (state unchanged): 'set' at x has no 'value'"]


async def test_skip_policy_dead_letters_the_poison_event_and_goes_on(tmp_path: Path) -> None:
    source = MemorySource(max_wait=0.1)
    fill(source, 10)
    source.append(b"\x00 not json")
    fill(source, 20, start=11)
    dead = DeadLetterFile(tmp_path / "dead.jsonl")
    async with Pump[Any](source, poison_policy="skip", dead_letter=dead) as pump:
        await pump.wait_ready(timeout=10)
        assert pump.version.sequence == 19
    [record] = dead.read()
    assert record["sequence"] == 10 and record["partition"] == "0"
    assert "not valid JSON" in record["error"]
    assert (record["body"], record["body_encoding"]) == ("\x00 not json", "utf-8")  # text, since it is UTF-8
    assert record["key"] == "0/10/config@1" and record["reducer"] == "config@1"


# --- the catch-up plan: gaps and Capture -------------------------------------------------------


async def _snapshot_at(store: DirectoryStore, n: int) -> None:
    events = [Event("0", i, str(i), T0, None, {}, json.dumps(set_op(i)).encode()) for i in range(n + 1)]
    v = fold(initial_version(config, "0"), events, config, applied_at=T0).version
    await write_snapshot(store, v, config, eventhub="hub", events_folded=n + 1)


async def test_expired_events_without_capture_are_a_reported_gap_never_a_state(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    await _snapshot_at(store, 99)
    hub = MemorySource(max_wait=0.1)
    fill(hub, 400)
    hub.expire(250)
    async with Pump[Any](hub, store=store, replan_interval=0.05) as pump:
        async with asyncio.timeout(10):
            while pump.status()["gap"] is None:  # polled: the gap is a state, not an event to await
                await asyncio.sleep(0.01)
        status = pump.status()
        assert status["gap"] == {"first": 100, "last": 249}
        assert not status["ready"]
        assert "events 100..249 are missing" in status["not_ready_reason"]
        assert pump.version.sequence == 99  # still serving the snapshot, nothing beyond the hole


async def test_allow_gap_skips_the_missing_range_and_says_so(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    await _snapshot_at(store, 99)
    hub = MemorySource(max_wait=0.1)
    fill(hub, 400)
    hub.expire(250)
    async with Pump[Any](hub, store=store, allow_gap=True) as pump:
        await pump.wait_ready(timeout=10)
        status = pump.status()
    assert status["events_skipped_by_gap"] == 150 and status["sequence"] == 399


async def test_capture_fills_what_retention_dropped_then_the_hub_takes_over(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    await _snapshot_at(store, 1000)
    hub = MemorySource(max_wait=0.1)
    capture = MemorySource(live=False)
    for i in range(9000):
        hub.append(set_op(i))
        if i <= 6000:
            capture.append(set_op(i))
    hub.expire(5000)
    async with Pump[Any](hub, store=store, capture=capture) as pump:
        await pump.wait_ready(timeout=30)
        status = pump.status()
    assert pump.state == full_replay(9000)
    assert status["events_from_capture"] == 5000 - 1001  # through 4999, then the hub from 5000
    assert status["events_from_hub"] == 4000
    assert status["duplicates_skipped"] == 0


async def test_no_snapshot_and_an_expired_hub_start_from_the_earliest_event_anywhere() -> None:
    hub = MemorySource(max_wait=0.1)
    capture = MemorySource(live=False)
    for i in range(300):
        hub.append(set_op(i))
        if i >= 50:
            capture.append(set_op(i))
    capture.expire(50)
    hub.expire(200)
    async with Pump[Any](hub, capture=capture) as pump:
        await pump.wait_ready(timeout=10)
        status = pump.status()
    assert status["events_skipped_by_gap"] == 50
    assert status["events_from_capture"] == 150 and status["events_from_hub"] == 100


async def test_until_stops_exactly_at_the_target_even_inside_a_batch() -> None:
    source = MemorySource(max_wait=0.1, batch_size=1000)
    fill(source, 500)
    pump: Pump[Any] = Pump(source, until=123)
    await pump.run()
    assert pump.version.sequence == 123
    assert pump.state == full_replay(124)


class OutageSource(MemorySource):
    """A memory partition that can be made unreachable, as a hub past its retry budget is."""

    down = False

    async def bounds(self) -> PartitionBounds:
        if self.down:
            raise ServiceUnavailable("the test hub is unreachable")
        return await super().bounds()

    async def read(self, after: int) -> AsyncIterator[Sequence[Event]]:
        async for batch in super().read(after):
            if self.down:
                raise ServiceUnavailable("the test hub is unreachable")
            yield batch


async def test_an_outage_after_ready_keeps_serving_not_ready_and_recovers() -> None:
    source = OutageSource(max_wait=0.05)
    fill(source, 10)
    async with Pump[Any](source, replan_interval=0.05) as pump:
        await pump.wait_ready(timeout=10)
        source.down = True
        async with asyncio.timeout(10):
            while pump.ready:  # polled: readiness is a state
                await asyncio.sleep(0.01)
        assert "the test hub is unreachable; serving sequence 9" in (pump.not_ready_reason or "")
        assert pump.version.sequence == 9 and pump.failure is None
        source.down = False
        source.append(set_op(10))
        await pump.wait_ready(timeout=10)
        assert (await pump.wait_for(10, timeout=10)).sequence == 10


async def test_an_unreachable_hub_at_start_is_a_failure() -> None:
    source = OutageSource(max_wait=0.05)
    source.down = True
    async with Pump[Any](source) as pump:
        with pytest.raises(PumpFailed, match="the test hub is unreachable"):
            await pump.wait_ready(timeout=10)
        assert isinstance(pump.failure, ServiceUnavailable)


# --- the ring of recent events ------------------------------------------------------------


async def test_the_pumps_history_holds_what_it_folded_past_after_the_snapshot_with_outcomes(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "hub", "0")
    source = MemorySource(max_wait=0.1)
    fill(source, 5)
    await _snapshot_at(store, 4)
    source.append(b"not json")  # 5: poison, skipped under the skip policy
    fill(source, 9, start=6)
    pump = Pump(source, store=store, poison_policy="skip")
    async with pump:
        await pump.wait_ready(timeout=5)
        ring = pump.history
        assert (ring.oldest, ring.newest) == (5, 8)
        assert [e.sequence for e in ring.after(4)] == [5, 6, 7, 8]
        assert [e.outcome for e in ring.after(4)] == ["poisoned", "applied", "applied", "applied"]
        poisoned = ring.get(5)
        assert poisoned is not None and poisoned.event.body == b"not json" and "JSON" in (poisoned.reason or "")
        source.append(set_op(9))
        await pump.wait_for(9, timeout=5)
        assert ring.newest == 9 and ring.get(9) is not None
