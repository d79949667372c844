"""Capture read rate: statepump's readers against a bare fastavro loop over the same files.

Writes ``--events`` events (default 1,000,000) as Capture would, in ``--files``
files (default 10) under a temporary directory (or ``--dir``, reused if it
already holds them), then reads them three ways, ``--runs`` times each
(default 3), and prints the median events/s of each (per CPU second and per wall second):

* ``fastavro.reader``: ``for record in fastavro.reader(f): pass`` (decode only)
* ``read_capture_file``: the same files to :class:`~statepump.core.events.Event`
  objects (decode + validation + time parsing)
* ``CaptureSource.read``: the whole source path (listing, framing into
  blocks, decoding, ordering and gap checks, batching), from a directory

``--paused`` turns the cyclic collector off for each timed run, as the pump
(and figure 3) does during a catch-up.

Usage::

    .venv/bin/python bench/capture_read.py [--events N] [--files N] [--codec null|deflate] [--dir PATH] [--paused]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastavro

from statepump.core import collector
from statepump.core.captureformat import DEFAULT_NAME_FORMAT, read_capture_file, render_name, write_capture_file
from statepump.core.events import Event
from statepump.sources.capture import CaptureSource

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def events(first: int, count: int) -> Iterator[Event]:
    for i in range(first, first + count):
        body = json.dumps({"op": "set", "path": f"tenants/t{i % 997}/flags/f{i % 31}", "value": i}).encode()
        yield Event("0", i, str(i * 160), T0 + timedelta(milliseconds=i), f"t{i % 997}", {"kind": "flag"}, body)


def prepare(root: Path, total: int, files: int, codec: str) -> list[Path]:
    per = -(-total // files)
    paths: list[Path] = []
    for w in range(files):
        name = render_name(DEFAULT_NAME_FORMAT, "ns", "hub", "0", T0 + timedelta(minutes=5 * w))
        path = root / name
        paths.append(path)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            write_capture_file(f, events(w * per, min(per, total - w * per)), codec=codec)  # type: ignore[arg-type]
    return paths


def raw(paths: list[Path]) -> int:
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            for _ in fastavro.reader(f):
                n += 1
    return n


def statepump_file(paths: list[Path]) -> int:
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            for _ in read_capture_file(f, "0", name=p.name):
                n += 1
    return n


def statepump_source(root: Path) -> int:
    async def go() -> int:
        source = CaptureSource.from_directory(root, namespace="ns", eventhub="hub", partition="0")
        n = 0
        try:
            async for batch in source.read(-1):
                n += len(batch)
        finally:
            await source.close()
        return n

    return asyncio.run(go())


def measure(
    methods: dict[str, Callable[[], int]], runs: int, expected: int, *, paused: bool = False
) -> dict[str, float]:
    """Median events/s of each method, by wall clock and by CPU time (the
    process's, all threads). Runs are interleaved (a, b, c, a, b, c, ...) so
    that a change in the machine's load touches every method alike; on a
    shared machine the CPU-time rate is the steadier of the two."""
    wall: dict[str, list[float]] = {label: [] for label in methods}
    cpu: dict[str, list[float]] = {label: [] for label in methods}
    for _ in range(runs):
        for label, fn in methods.items():
            with collector.paused() if paused else contextlib.nullcontext():
                started, started_cpu = time.perf_counter(), time.process_time()
                n = fn()
                elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
            if n != expected:
                sys.exit(f"{label}: read {n} events, expected {expected}")
            wall[label].append(n / elapsed)
            cpu[label].append(n / elapsed_cpu)
    medians = {label: statistics.median(r) for label, r in cpu.items()}
    print(f"{'':<22} {'per CPU second':>16} {'per wall second':>16}   (wall runs)")
    for label in methods:
        runs_text = ", ".join(f"{x:,.0f}" for x in wall[label])
        print(f"{label:<22} {medians[label]:>16,.0f} {statistics.median(wall[label]):>16,.0f}   ({runs_text})")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--codec", choices=["null", "deflate"], default="null")
    parser.add_argument("--dir", type=Path, default=None, help="where to keep the files (default: a temp dir)")
    parser.add_argument("--paused", action="store_true", help="cyclic collector off while timing, as in the pump")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        started = time.perf_counter()
        paths = prepare(root, args.events, args.files, args.codec)
        size = sum(p.stat().st_size for p in paths)
        print(
            f"{args.events:,} events in {len(paths)} files, codec {args.codec}, {size / 1e6:,.1f} MB "
            f"(prepared in {time.perf_counter() - started:.1f} s); Python {sys.version.split()[0]}, "
            f"fastavro {fastavro.__version__}"
        )
        load = os.getloadavg()[0]
        medians = measure(
            {
                "fastavro.reader (raw)": lambda: raw(paths),
                "read_capture_file": lambda: statepump_file(paths),
                "CaptureSource.read": lambda: statepump_source(root),
            },
            args.runs,
            args.events,
            paused=args.paused,
        )
        base = medians["fastavro.reader (raw)"]
        print(
            f"by CPU time: read_capture_file at {medians['read_capture_file'] / base:.0%} of raw; "
            f"CaptureSource.read at {medians['CaptureSource.read'] / base:.0%} "
            f"(1-min load average {load:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs)"
        )


if __name__ == "__main__":
    main()
