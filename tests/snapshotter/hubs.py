"""In-memory hubs with reproducible content, for tests that need several identical partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from statepump.sources.memory import MemorySource

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def body(i: int) -> dict[str, Any]:
    """Event ``i``: a config ``set`` that also carries a counter key for tests.snapshotter.reducers."""
    return {"op": "set", "path": ["keys", str(i % 37)], "value": i, "k": i % 5}


def hub(n: int, *, first: int = 0, live: bool = True) -> MemorySource:
    """A partition holding events 0..n-1 (``first``.. after retention), the same content every time."""
    source = MemorySource(live=live, max_wait=0.2)
    for i in range(n):
        source.append(body(i), enqueued_time=T0 + timedelta(seconds=i))
    source.expire(first)
    return source
