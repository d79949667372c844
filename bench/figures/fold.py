"""Figure 2: the fold alone, ``set`` events (decoded ``Event`` records) into the N-key state.

statepump: :func:`statepump.core.fold.fold` with the ``config`` reducer, in batches of
1,000 (the batch a source hands the pump), with the collector paused as the
pump does. Anchor: a plain ``dict`` update loop doing the same JSON decode
(``statepump.core.configops.decode_body``).
Also measured, to keep showing why the collector is paused: the same fold with
Python's cyclic collector on.
"""

from __future__ import annotations

import gc
import json
from typing import Any

from bench import dataset
from bench.figure import Figure, Size, spread
from bench.measure import Stats, interleaved, seconds
from statepump.core import collector
from statepump.core.configops import config, decode_body
from statepump.core.events import Version
from statepump.core.fold import fold
from statepump.core.reducer import Reducer

BATCH = 1_000
GOAL = 0.5  # x the dict loop's rate, measured in the same run


def run(size: Size) -> Figure:
    n = size.keys
    state = dataset.state(n)
    events = dataset.set_events(size.fold_events, n)
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    start: Version[Any] = Version(state, -1, None, "0")

    def fold_all(batches: list[Any] = batches, reducer: Reducer[Any] = config) -> None:
        v = start
        for batch in batches:
            v = fold(v, batch, reducer, applied_at=dataset.T0).version
        assert v.sequence == batch[-1].sequence

    # The same fold one immutable update per event (the reducer without its batch hook), and the anchor's
    # dict loop, interleaved with the figure's runs: on a shared machine, the goal's ratio then compares
    # runs a few seconds apart, not minutes.
    one_at_a_time = Reducer(config.name, config.version, config.apply, config.initial)
    plain = dict(dataset.config_dict(n))

    def dict_loop() -> None:
        for event in events:
            op = decode_body(event.body)[0]  # the reducer's own JSON reading and checks
            plain[op["path"]] = op["value"]

    with collector.paused():
        timed, timed_per_event, timed_dict = interleaved(
            (lambda: fold_all(batches, config), lambda: fold_all(batches, one_at_a_time), dict_loop),
            runs=size.runs,
            warmup=size.warmup,
        )
    ours = Stats.of(timed).rate(len(events))
    per_event = Stats.of(timed_per_event).rate(len(events))
    anchor = Stats.of(timed_dict).rate(len(events))
    pairs = sorted(d / f for f, d in zip(timed, timed_dict, strict=True))  # each run's ratio, fold to dict

    # The same fold, collector on: a handful of events is enough to see it.
    # In the figure's batches, with the batch hook and without it (one new bucket vector per event).
    few = [events[i : i + BATCH] for i in range(0, size.gc_on_events, BATCH)]
    gc.collect()
    was = gc.isenabled()
    gc.enable()
    gc_runs = max(2, size.runs // 2)
    try:
        gc_on = seconds(lambda: fold_all(few), runs=gc_runs, warmup=0).rate(size.gc_on_events)
        gc_on_each = seconds(lambda: fold_all(few, one_at_a_time), runs=gc_runs, warmup=0).rate(size.gc_on_events)
    finally:
        if not was:
            gc.disable()

    # Map updates alone (JSON decoded beforehand), to separate the map from the decoding.
    ops = [json.loads(e.body) for e in events]

    def pmap_sets() -> None:
        s = state
        for op in ops:
            s = s.set(op["path"], op["value"])

    def dict_sets() -> None:
        for op in ops:
            plain[op["path"]] = op["value"]

    with collector.paused():
        bare = seconds(pmap_sets, runs=size.runs, warmup=size.warmup).rate(len(ops))
    bare_dict = seconds(dict_sets, runs=size.runs, warmup=size.warmup).rate(len(ops))

    return Figure(
        "2",
        f"fold of `set` events into the {n:,}-key state ({len(events):,} events, collector paused as in the pump)",
        spread(ours.median, ours.min, ours.max) + " events/s",
        f"`dict` loop: {anchor.median:,.0f} events/s",
        f"{ours.median / anchor.median:.2f}× the dict",
        f"≥ {GOAL:g}× the dict",
        ours.median >= GOAL * anchor.median,
        (
            f"With the cyclic collector on, the same fold runs at {spread(gc_on.median, gc_on.min, gc_on.max)} "
            f"events/s ({ours.median / gc_on.median:,.1f}× slower), and one immutable update per event at "
            f"{spread(gc_on_each.median, gc_on_each.min, gc_on_each.max)} events/s "
            f"({per_event.median / gc_on_each.median:,.0f}× slower than with it off): each new bucket vector is "
            "young, and a young-generation collection walks it in full (see `statepump/core/collector.py`); the "
            "batch hook makes one per batch instead of one per event.",
            f"The same fold one immutable update per event (the `config` reducer without its batch hook), "
            f"interleaved: {spread(per_event.median, per_event.min, per_event.max)} events/s; with it "
            f"{ours.median / per_event.median:.2f}× that.",
            f"Map updates alone (JSON decoded beforehand): `pmap.set` {spread(bare.median, bare.min, bare.max)}/s, "
            f"`dict[k] = v` {bare_dict.median:,.0f}/s.",
            f"The fold, the per-event fold and the dict loop alternate within each run (dict loop with the collector "
            f"paused too); each run's own ratio to the dict: {', '.join(f'{r:.2f}' for r in pairs)}.",
            f"{size.runs} runs after {size.warmup} warm-up; each event is "
            '`{"op": "set", "path": "tenant-…:feature:setting", "value": …}` on a random existing key.',
        ),
    )
