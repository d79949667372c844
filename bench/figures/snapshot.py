"""Figure 8: writing the N-key state's snapshot, its size, and reading it back.

statepump: :func:`statepump.stores.snapshots.write_snapshot` into a
:class:`~statepump.stores.directory.DirectoryStore` (encode, SHA-256, temp
file, fsync, link), the file size; then :func:`statepump.core.codec.decode` of that
file. Anchor: ``msgpack.packb`` of the same data as a plain ``dict`` (and
``msgpack.unpackb`` for the read side). Floor: that ``packb`` plus writing its
bytes to a new file in the same directory and ``fsync``-ing it, i.e. the least a
durable write of this much data costs here.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

from bench import dataset
from bench.figure import Figure, Size, spread
from bench.measure import Stats, seconds
from statepump.core import codec, collector
from statepump.core.configops import config
from statepump.core.events import Version
from statepump.stores.directory import DirectoryStore
from statepump.stores.snapshots import write_snapshot

GOAL_FLOOR = 3.0  # x the floor: packb + write + fsync of the same bytes
GOAL_SIZE = 1.1


def run(size: Size) -> Figure:
    n = size.keys
    state = dataset.state(n)
    plain = dataset.config_dict(n)
    version: Version[Any] = Version(state, n - 1, dataset.T0, "0", dataset.T0)
    sizes: list[int] = []
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        store = DirectoryStore(Path(tmp), "hub", "0")
        sequence = iter(range(10**9))

        def write() -> None:
            # write_snapshot is create-only, so each run writes a new sequence number (same state).
            v = Version(version.state, next(sequence), version.enqueued_time, "0", version.applied_at)
            _ref, nbytes = asyncio.run(write_snapshot(store, v, config, eventhub="hub", events_folded=n))
            sizes.append(nbytes)

        floor_files = iter(range(10**9))

        def pack_and_sync() -> None:
            packed = msgpack.packb(plain, use_bin_type=True)
            fd = os.open(Path(tmp) / f"floor-{next(floor_files)}.msgpack", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                view = memoryview(packed)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)

        def pack() -> None:
            sizes.append(-len(msgpack.packb(plain, use_bin_type=True)))

        # Interleaved, so that the disk's and the machine's moods touch all three alike.
        timed: dict[str, list[float]] = {"ours": [], "floor": [], "anchor": []}
        for i in range(size.warmup + size.runs):
            for name, fn in (("ours", write), ("floor", pack_and_sync), ("anchor", pack)):
                started = time.perf_counter_ns()
                fn()
                if i >= size.warmup:
                    timed[name].append((time.perf_counter_ns() - started) / 1e9)
        ours, floor, anchor = (Stats.of(timed[k]) for k in ("ours", "floor", "anchor"))
        data = next(Path(tmp).rglob("*.snapshot")).read_bytes()
    ours_size = max(sizes)
    anchor_bytes = msgpack.packb(plain, use_bin_type=True)
    anchor_size = len(anchor_bytes)

    with collector.paused():
        decode = seconds(lambda: codec.decode(data), runs=size.runs, warmup=size.warmup)
        unpack = seconds(lambda: msgpack.unpackb(anchor_bytes, raw=False), runs=size.runs, warmup=size.warmup)
    _meta, back = codec.decode(data)
    if back != state:
        raise AssertionError("the snapshot did not decode to the state it was written from")

    to_floor = ours.median / floor.median
    met = to_floor <= GOAL_FLOOR and ours_size <= GOAL_SIZE * anchor_size
    ms = "{:,.0f}"
    return Figure(
        "8",
        f"snapshot write and size, {n:,}-key state",
        f"write {spread(ours.median * 1e3, ours.min * 1e3, ours.max * 1e3, ms)} ms, {ours_size / 1e6:,.1f} MB",
        f"`msgpack.packb(dict)`: {anchor.median * 1e3:,.0f} ms, {anchor_size / 1e6:,.1f} MB",
        f"time {to_floor:.2f}× the floor ({ours.median / anchor.median:.1f}× packb), "
        f"size {ours_size / anchor_size:.3f}×",
        f"time ≤ {GOAL_FLOOR:g}× the floor, size ≤ {GOAL_SIZE}× msgpack's",
        met,
        (
            f"Read back: `codec.decode` {spread(decode.median * 1e3, decode.min * 1e3, decode.max * 1e3, ms)} ms "
            f"(verify SHA-256 + decode into pmaps/pvectors) against `msgpack.unpackb` into a dict "
            f"{unpack.median * 1e3:,.0f} ms ({decode.median / unpack.median:.2f}×).",
            "The write includes the SHA-256, the temporary file, fsync and the create-only link; "
            "the anchor is the in-memory `packb` only; the floor is that `packb` plus `os.write` of its bytes to a "
            "new file and `os.fsync`. The three alternate within each run.",
        ),
        floor=f"`packb` + write + fsync of its {anchor_size / 1e6:,.1f} MB: {floor.median * 1e3:,.0f} ms",
    )
