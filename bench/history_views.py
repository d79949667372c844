"""The sidecar's history views, measured in-process: /v1/history, /v1/diff and /v1/children on large inputs.

    python -m bench.history_views

Pure code (statepump.core.timeline, statepump.core.changes, statepump.serving.explore.children):
a 10,000-event ring searched for one path; the diff between two versions of a 1,000,000-key
state 100 events apart, from the touched paths (what /v1/diff does for the config reducer)
and by walking both states; a page of children of the 1,000,000-key map at the start, in the
middle, and by prefix. Each figure is the median of 5 runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pyrsistent import pmap

from statepump.core import changes, timeline
from statepump.core.configops import config
from statepump.core.events import Event, Version
from statepump.core.fold import fold
from statepump.core.history import History
from statepump.serving.explore import children

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def median_ms(fn: Callable[[], Any], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    ring = History(max_events=10_000)
    ring.clear(at=-1)
    events = [
        Event(
            "0",
            n,
            str(n),
            T0,
            None,
            {"statepump-author": "ci"},
            b'{"op": "set", "path": "k%d/x", "value": %d}' % (n % 500, n),
        )
        for n in range(10_000)
    ]
    ring.record(events, through=9_999)
    search = median_ms(lambda: timeline.history(ring, config, ("k7",), limit=100))
    print(f"history of one path in a 10,000-event ring: {search:.1f} ms")

    big = pmap({f"key-{i}": pmap({"n": i}) for i in range(1_000_000)})
    start = Version(big, -1, None, "0")
    later = [
        Event("0", n, str(n), T0, None, {}, b'{"op": "set", "path": "key-%d/n", "value": -1}' % (n * 7919))
        for n in range(100)
    ]
    result = fold(start, later, config, applied_at=T0)
    assert result.applied == 100, result.rejected[:1]
    new = result.version.state
    touched = [p for e in later for p in (changes.config_paths(e) or ())]
    fast = median_ms(lambda: changes.diff_paths(big, new, touched))
    slow = median_ms(lambda: changes.diff(big, new), runs=3)
    print(f"diff of a 1,000,000-key state, 100 events apart: {fast:.2f} ms from the touched paths,", end=" ")
    print(f"{slow:.0f} ms walking both")

    print(
        f"children page (100) of a 1,000,000-key map at offset 0: {median_ms(lambda: children(big, (), 0, 100)):.2f} ms"
    )
    print(f"children page (100) at offset 500,000: {median_ms(lambda: children(big, (), 500_000, 100)):.1f} ms")
    deep = median_ms(lambda: children(big, (), 0, 100, cursor=700_000))
    print(f"children page (100) by cursor, deep in the map: {deep:.2f} ms")
    prefixed = median_ms(lambda: children(big, (), 0, 100, "key-99999"))
    print(f"children by prefix 'key-99999' (sorted matches): {prefixed:.0f} ms")


if __name__ == "__main__":
    main()
