"""Figure 8: writing the N-key state's snapshot, its size, and reading it back.

statepump: :func:`statepump.stores.snapshots.write_snapshot` into a
:class:`~statepump.stores.directory.DirectoryStore` (encode, SHA-256, temp
file, fsync, link), the file size; then :func:`statepump.core.codec.decode` of that
file. Anchor: ``msgpack.packb`` of the same data as a plain ``dict`` (and
``msgpack.unpackb`` for the read side).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import msgpack

from bench import dataset
from bench.figure import Figure, Size, spread
from bench.measure import seconds
from statepump.core import codec, collector
from statepump.core.configops import config
from statepump.core.events import Version
from statepump.stores.directory import DirectoryStore
from statepump.stores.snapshots import write_snapshot

GOAL_SECONDS = 2.0
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

        ours = seconds(write, runs=size.runs, warmup=size.warmup)
        data = next(Path(tmp).rglob("*.snapshot")).read_bytes()

    def pack() -> None:
        sizes.append(-len(msgpack.packb(plain, use_bin_type=True)))

    anchor = seconds(pack, runs=size.runs, warmup=size.warmup)
    ours_size = max(sizes)
    anchor_bytes = msgpack.packb(plain, use_bin_type=True)
    anchor_size = len(anchor_bytes)

    with collector.paused():
        decode = seconds(lambda: codec.decode(data), runs=size.runs, warmup=size.warmup)
        unpack = seconds(lambda: msgpack.unpackb(anchor_bytes, raw=False), runs=size.runs, warmup=size.warmup)
    _meta, back = codec.decode(data)
    if back != state:
        raise AssertionError("the snapshot did not decode to the state it was written from")

    met = ours.median <= GOAL_SECONDS and ours_size <= GOAL_SIZE * anchor_size
    ms = "{:,.0f}"
    return Figure(
        "8",
        f"snapshot write and size, {n:,}-key state",
        f"write {spread(ours.median * 1e3, ours.min * 1e3, ours.max * 1e3, ms)} ms, {ours_size / 1e6:,.1f} MB",
        f"`msgpack.packb(dict)`: {anchor.median * 1e3:,.0f} ms, {anchor_size / 1e6:,.1f} MB",
        f"time {ours.median / anchor.median:.1f}×, size {ours_size / anchor_size:.3f}×",
        f"≤ {GOAL_SECONDS:g} s, ≤ {GOAL_SIZE}× the size",
        met,
        (
            f"Read back: `codec.decode` {spread(decode.median * 1e3, decode.min * 1e3, decode.max * 1e3, ms)} ms "
            f"(verify SHA-256 + decode into pmaps/pvectors) against `msgpack.unpackb` into a dict "
            f"{unpack.median * 1e3:,.0f} ms ({decode.median / unpack.median:.2f}×).",
            "The write includes the SHA-256, the temporary file, fsync and the create-only link; "
            "the anchor is the in-memory `packb` only.",
        ),
    )
