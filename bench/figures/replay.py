"""Figure 9: replaying an event log into one in-memory model, against the ``eventsourcing`` library.

statepump: a :class:`~statepump.pump.Pump` with no snapshot reads the whole
log from an in-memory source and folds it with the ``config`` reducer;
timed from start to ready. Anchor: the ``eventsourcing`` library (its POPO,
plain-Python-objects, recorder) rebuilding the equivalent aggregate, a
``Configuration`` whose ``set_setting(path, value)`` event assigns into a
dict, from the same operations stored as its events: ``repository.get(id)``
after a save.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from pyrsistent import pmap

from bench import dataset
from bench.figure import Figure, ServiceUnavailable, Size, spread
from bench.measure import Stats, seconds
from statepump.core import collector
from statepump.core.configops import config, decode_body
from statepump.core.events import Version
from statepump.core.fold import fold
from statepump.core.reducer import Reducer
from statepump.pump import CATCHUP_PUBLISH_INTERVAL, Pump
from statepump.sources.memory import MemorySource

GOAL = 5.0
SAVE_CHUNK = 10_000


def _eventsourcing_app(ops: list[dict[str, Any]]) -> tuple[Any, Any, int]:
    """An eventsourcing application holding one aggregate with ``ops`` as its events."""
    try:
        from eventsourcing.application import Application
        from eventsourcing.domain import Aggregate, event
    except ImportError:
        raise ServiceUnavailable(
            "figure 9 needs the `eventsourcing` library: pip install -e '.[bench]' (or pip install eventsourcing)"
        ) from None

    class Configuration(Aggregate):
        def __init__(self) -> None:
            self.settings: dict[str, Any] = {}

        @event("SettingSet")
        def set_setting(self, path: str, value: Any) -> None:
            self.settings[path] = value

    env = {"PERSISTENCE_MODULE": "eventsourcing.popo", "IS_SNAPSHOTTING_ENABLED": "n"}
    app: Application[Any] = Application(env=env)
    aggregate = Configuration()
    for i, op in enumerate(ops, 1):
        aggregate.set_setting(op["path"], op["value"])
        if i % SAVE_CHUNK == 0:
            app.save(aggregate)
    app.save(aggregate)
    return app, aggregate.id, len(aggregate.settings)


def run(size: Size) -> Figure:
    count = size.replay_events
    events = dataset.set_events(count, size.keys)
    ops = [json.loads(e.body) for e in events]
    app, aggregate_id, expected_keys = _eventsourcing_app(ops)
    sources: list[MemorySource] = []

    def fresh_source() -> None:
        # A pump closes its source when it stops, so each run gets its own.
        source = MemorySource(live=True)
        for e in events:
            source.append(e.body, enqueued_time=e.enqueued_time)
        sources.append(source)

    runs = max(2, min(size.runs, 3))

    results: list[int] = []
    to_ready: list[float] = []
    stops: list[float] = []

    def ours() -> None:
        # Timed from start to ready, as the figure says; stopping the pump (which gives the
        # state back to the cyclic collector, a full walk of it) is timed apart, in the notes.
        async def go() -> None:
            started = time.perf_counter_ns()
            pump: Pump[Any] = Pump(sources.pop())
            await pump.start()
            try:
                await pump.wait_ready(timeout=3600)
                to_ready.append((time.perf_counter_ns() - started) / 1e9)
                results.append(len(pump.state))
            finally:
                stopping = time.perf_counter_ns()
                await pump.stop()
                stops.append((time.perf_counter_ns() - stopping) / 1e9)

        asyncio.run(go())

    def theirs() -> None:
        results.append(len(app.repository.get(aggregate_id).settings))

    # For comparison: the fold alone (no pump) with a version per batch, as once live; a plain dict
    # loop with the same JSON decoding; and the fold one immutable update per event (the reducer
    # without its batch hook). The folds run interleaved with the pump's runs, so that all three
    # see the same machine.
    one_at_a_time = Reducer(config.name, config.version, config.apply, config.initial)

    def fold_alone(reducer: Reducer[Any]) -> float:
        """Seconds to the last version (not counting the state's release afterwards, as for the pump)."""
        version: Version[Any] = Version(pmap(), -1, None, "0")
        with collector.paused():
            started = time.perf_counter_ns()
            for i in range(0, count, 1_000):
                version = fold(version, events[i : i + 1_000], reducer, applied_at=dataset.T0).version
            elapsed = (time.perf_counter_ns() - started) / 1e9
            del version
        return elapsed

    folded_times: list[float] = []
    per_event_times: list[float] = []
    their_times: list[float] = []
    # Each round runs everything once, so that the pump, its anchor and the ceilings
    # share whatever the (shared, noisy) machine is doing; the first round is a warm-up.
    for i in range(1 + runs):
        fresh_source()
        ours()
        their_times.append(seconds(theirs, runs=1, warmup=0).median)
        folded_times.append(fold_alone(config))
        per_event_times.append(fold_alone(one_at_a_time))
        if i == 0:
            for times in (to_ready, stops, their_times, folded_times, per_event_times):
                times.clear()
    mine = Stats.of(to_ready)
    stop = Stats.of(stops)
    anchor = Stats.of(their_times)
    if set(results) != {expected_keys}:
        raise AssertionError(f"the two models disagree on the number of keys: {sorted(set(results))}")

    def dict_loop() -> None:
        plain: dict[str, Any] = {}
        for event in events:
            op = decode_body(event.body)[0]
            plain[op["path"]] = op["value"]

    folded = Stats.of(folded_times).rate(count)
    per_event = Stats.of(per_event_times).rate(count)
    ceiling = seconds(dict_loop, runs=runs, warmup=1).rate(count)
    ours_rate = mine.rate(count)
    their_rate = anchor.rate(count)
    ratio = anchor.median / mine.median
    return Figure(
        "9",
        f"replay of {count:,} events into one in-memory model (statepump pump, no snapshot, from start to ready)",
        f"{spread(mine.median, mine.min, mine.max, '{:,.2f}')} s ({ours_rate.median:,.0f} events/s)",
        f"`eventsourcing` POPO `repository.get`: {anchor.median:,.2f} s ({their_rate.median:,.0f} events/s)",
        f"{ratio:.1f}× faster",
        f"≥ {GOAL:g}× faster",
        ratio >= GOAL,
        (
            f"Both replay the same {count:,} `set` operations over {size.keys:,} possible keys "
            f"({expected_keys:,} distinct keys at the end); {runs} rounds after a warm-up, each running the "
            "pump, `repository.get` and the two folds below once.",
            "eventsourcing's aggregate is a mutable dict; statepump's pump folds the source's batches of 1,000 "
            "into one open `Folder` while it catches up and publishes an immutable pmap about every "
            f"{CATCHUP_PUBLISH_INTERVAL:g} s and when caught up (the `config` reducer's batch hook gathers the "
            "keys in a dict and rebuilds the map's buckets in one pass; equal object values are frozen once "
            "and shared).",
            f"Stopping the pump, untimed above: {spread(stop.median, stop.min, stop.max, '{:,.2f}')} s (the "
            "collector hands the new state to the oldest generation unexamined; it used to take 1.4-2.9 s, the "
            "first automatic collection walking the whole state).",
            f"In the same run: `fold()` of each batch of 1,000 on its own (a version per batch, as the pump "
            f"publishes once live) {folded.median:,.0f} events/s "
            f"({folded.median / their_rate.median:.1f}× eventsourcing; one immutable update per event, without "
            f"the batch hook: {per_event.median:,.0f} events/s); a plain `dict` loop with the same JSON "
            f"decoding {ceiling.median:,.0f} events/s ({ceiling.median / their_rate.median:.1f}× eventsourcing). "
            f"5× needs {5 * their_rate.median:,.0f} events/s.",
        ),
    )
