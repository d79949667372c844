"""Figure 2s: figure 2's fold with a 20-rule ``--schema`` active, against the same fold without it.

Both folds are figure 2's (``set`` events in batches of 1,000 into the N-key
state, collector paused), interleaved within each run so that the ratio
compares runs seconds apart on a shared machine. The schema has twenty
rules on every key the events write (a pattern for the keys, types, bounds, a
``$ref``, the shape of the object values); every event passes it, so each one
is checked and applied. The goal: the checked fold at 0.8× the unchecked one
at least.

Also shown: what the record of last changes (``if_sequence``,
:mod:`statepump.core.lastchanged`) costs, by a third fold of the same reducer
that does not keep it.
"""

from __future__ import annotations

from typing import Any

from bench import dataset
from bench.figure import Figure, Size, spread
from bench.measure import Stats, interleaved
from statepump.core import collector
from statepump.core.configops import _ConfigTransient, config, config_reducer
from statepump.core.events import Version
from statepump.core.fold import fold
from statepump.core.reducer import Reducer
from statepump.core.schema import Schema

BATCH = 1_000
GOAL = 0.8  # x the fold without a schema, measured in the same run

#: Twenty rules for the dataset's keys (``tenant-00042:feature:setting``) and values.
SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",  # 1
    "propertyNames": {"maxLength": 80, "pattern": "^tenant-[0-9]{5}:"},  # 2, 3
    "definitions": {"limit": {"type": "integer", "minimum": 1, "maximum": 10_000}},  # 4, 5, 6
    "patternProperties": {  # 7
        "^tenant-[0-9]{5}:": {
            "type": ["integer", "number", "string", "boolean", "object"],  # 8
            "minimum": 0,  # 9
            "maximum": 100_000,  # 10
            "maxLength": 64,  # 11
            "required": ["enabled", "limit"],  # 12
            "additionalProperties": False,  # 13
            "properties": {
                "enabled": {"type": "boolean"},  # 14
                "limit": {"$ref": "#/definitions/limit"},  # 15
                "regions": {
                    "type": "array",  # 16
                    "maxItems": 8,  # 17
                    "items": {"type": "string", "maxLength": 16, "minLength": 1},  # 18, 19, 20
                },
            },
        }
    },
    "additionalProperties": False,
}


def run(size: Size) -> Figure:
    n = size.keys
    state = dataset.state(n)
    events = dataset.set_events(size.fold_events, n)
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    start: Version[Any] = Version(state, -1, None, "0")
    schema = Schema.from_document(SCHEMA)
    checked = config_reducer(schema)
    unrecorded = Reducer(config.name, config.version, config.apply, config.initial, _ConfigTransient)

    def fold_all(reducer: Reducer[Any]) -> None:
        v = start
        for batch in batches:
            result = fold(v, batch, reducer, applied_at=dataset.T0)
            assert not result.rejected, result.rejected[0].reason  # every event is valid: each one is checked
            v = result.version
        assert v.sequence == events[-1].sequence

    with collector.paused():
        timed, timed_checked, timed_unrecorded = interleaved(
            (lambda: fold_all(config), lambda: fold_all(checked), lambda: fold_all(unrecorded)),
            runs=size.runs,
            warmup=size.warmup,
        )
    plain = Stats.of(timed).rate(len(events))
    ours = Stats.of(timed_checked).rate(len(events))
    bare = Stats.of(timed_unrecorded).rate(len(events))
    pairs = sorted(f / c for f, c in zip(timed, timed_checked, strict=True))  # each run's ratio, checked to not
    per_event_us = (1 / ours.median - 1 / plain.median) * 1e6
    return Figure(
        "2s",
        f"figure 2's fold with a 20-rule `--schema` ({len(events):,} events into the {n:,}-key state)",
        spread(ours.median, ours.min, ours.max) + " events/s",
        f"the same fold, no schema: {plain.median:,.0f} events/s",
        f"{ours.median / plain.median:.2f}× without",
        f"≥ {GOAL:g}× without",
        ours.median >= GOAL * plain.median,
        (
            f"The schema costs {per_event_us:.2f} µs per event (jsonschema_rs: each event's key and value "
            "against the root's member rules in one call; statepump/core/schema.py); each run's own ratio: "
            f"{', '.join(f'{r:.2f}' for r in pairs)}.",
            f"With the record of when each key last changed (if_sequence), the fold runs at "
            f"{plain.median / bare.median:.2f}× the same reducer without it ({bare.median:,.0f} events/s).",
            f"{size.runs} runs after {size.warmup} warm-up, the three folds interleaved in each.",
        ),
    )
