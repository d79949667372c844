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

        # Where the write's time goes: the encoding alone (format 2 and the SHA-256, in memory), and the
        # store's durable write of bytes already encoded (temporary file, fsync, create-only link).
        meta = codec.SnapshotMeta("hub", "0", 0, dataset.T0, config.name, config.version, dataset.T0, n)
        encoded: list[bytes] = []

        def encode_only() -> None:
            with collector.paused():  # as write_snapshot encodes
                encoded[:] = [codec.encode(meta, state)]

        def store_only() -> None:
            asyncio.run(store.write(next(sequence), encoded[0]))

        # Interleaved, so that the disk's and the machine's moods touch them all alike.
        timed: dict[str, list[float]] = {"ours": [], "floor": [], "anchor": [], "encode": [], "store": []}
        steps = (("ours", write), ("floor", pack_and_sync), ("anchor", pack), ("encode", encode_only))
        for i in range(size.warmup + size.runs):
            for name, fn in (*steps, ("store", store_only)):
                started = time.perf_counter_ns()
                fn()
                if i >= size.warmup:
                    timed[name].append((time.perf_counter_ns() - started) / 1e9)
        ours, floor, anchor, encoding, storing = (
            Stats.of(timed[k]) for k in ("ours", "floor", "anchor", "encode", "store")
        )
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
            "new file and `os.fsync`. They alternate within each run.",
            f"Where the write's time goes, interleaved with it: encoding alone (format 2 and the SHA-256, in memory) "
            f"{spread(encoding.median * 1e3, encoding.min * 1e3, encoding.max * 1e3, ms)} ms "
            f"({encoding.median / anchor.median:.1f}× `packb` of the dict: walking the pmaps' buckets and a "
            f"`default` callback per nested map, where the dict's packing stays in C); the store's durable write "
            f"of the encoded bytes {spread(storing.median * 1e3, storing.min * 1e3, storing.max * 1e3, ms)} ms "
            f"({storing.median / max(floor.median - anchor.median, 1e-9):.1f}× the floor's write + fsync).",
        ),
        floor=f"`packb` + write + fsync of its {anchor_size / 1e6:,.1f} MB: {floor.median * 1e3:,.0f} ms",
    )
