"""Snapshotter run time and snapshot size for a 1,000,000-key state, directory store and Azurite.

Run: ``.venv/bin/python bench/snapshotter_run.py [--keys 1000000] [--delta 1000] [--runs 3] [--store both]``

Each figure is one in-process ``snapshotter.run.run_once`` (exactly what the
command runs after parsing its settings), median of ``--runs`` with min and
max. The hub is an in-memory partition (:class:`MemorySource`): through the
emulator and the SDK a catch-up runs at the SDK's receive rate (see
bench/emulator_throughput.py), which would measure the SDK, not the
snapshotter, and 1,000,000 events would take most of an hour.

* **first run**: no snapshot; the hub holds ``keys / 1000`` events, each a
  config ``merge`` of 1,000 keys; fold them all, write the snapshot.
* **steady run** (what cron does every time): the newest snapshot holds the
  1M-key state, retention has dropped the events before it, and ``--delta``
  new ``set`` events follow; load the snapshot, fold the delta, write.
* **steady run, --compress**: the same with zlib level 1 payloads.
* **nothing new**: load the snapshot, find nothing to do, apply retention.

Azurite (npm ``azurite-blob``, installed by devservices/azurite.py on
first use) runs in memory on a free loopback port for the duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapshotter.outcome import Outcome
from snapshotter.run import run_once
from statepump.settings import Settings, load
from statepump.sources.memory import MemorySource

T0 = datetime(2026, 11, 1, tzinfo=UTC)
PER_EVENT = 1000


class Hub:
    """Builds identical in-memory partitions: ``keys / 1000`` merges, then ``set`` events."""

    def __init__(self, keys: int) -> None:
        self.keys = keys
        self.merges = [
            json.dumps(
                {
                    "op": "merge",
                    "path": [],
                    "value": {f"key-{i:07d}": f"value {i}" for i in range(start, min(start + PER_EVENT, keys))},
                }
            ).encode()
            for start in range(0, keys, PER_EVENT)
        ]

    def partition(self, sets: int = 0, *, first: int = 0) -> MemorySource:
        source = MemorySource(live=False)
        n = 0
        for body in self.merges:
            source.append(body, enqueued_time=T0 + timedelta(milliseconds=n))
            n += 1
        for j in range(sets):
            change = {"op": "set", "path": [f"key-{(j * 7919) % self.keys:07d}"], "value": f"changed {n}"}
            source.append(change, enqueued_time=T0 + timedelta(milliseconds=n))
            n += 1
        source.expire(first)
        return source


def stats(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def mib(n: int | None) -> str:
    return f"{(n or 0) / 2**20:.1f} MiB ({n or 0:,} bytes)"


async def measure(name: str, settings: Settings, hub: Hub, delta: int, runs: int) -> list[str]:
    lines = [f"## {name}"]
    first: Outcome = await run_once(settings, source=hub.partition())
    assert first.action == "written", first.line()
    lines.append(
        f"first run, {len(hub.merges):,} events -> {hub.keys:,} keys: {first.seconds:.2f} s, {mib(first.size)}; "
        f"phases {', '.join(f'{k} {v:.2f} s' for k, v in first.timings.items())}"
    )

    async def steady(compress: bool) -> tuple[list[float], list[Outcome]]:
        times, outcomes = [], []
        for _ in range(runs):
            latest = max(o.sequence or 0 for o in [first, *outcomes_all])
            s = settings.model_copy(update={"compress": compress})
            sets = latest + 1 - len(hub.merges) + delta
            outcome = await run_once(s, source=hub.partition(sets, first=latest + 1))
            assert outcome.action == "written", outcome.line()
            assert outcome.events_folded == delta, outcome.line()
            times.append(outcome.seconds)
            outcomes.append(outcome)
            outcomes_all.append(outcome)
        return times, outcomes

    outcomes_all: list[Outcome] = []
    for compress in (False, True):
        times, outcomes = await steady(compress)
        phases = {k: statistics.median(o.timings.get(k, 0.0) for o in outcomes) for k in outcomes[0].timings}
        lines.append(
            f"steady run{' --compress' if compress else ''} (load {hub.keys:,}-key snapshot, fold {delta:,}, write): "
            f"{stats(times)}, {mib(outcomes[-1].size)}; median phases "
            f"{', '.join(f'{k} {v:.2f} s' for k, v in phases.items())}"
        )
    latest = outcomes_all[-1]
    assert latest.sequence is not None
    times = []
    for _ in range(runs):
        sets = latest.sequence + 1 - len(hub.merges)
        outcome = await run_once(settings, source=hub.partition(sets, first=latest.sequence + 1))
        assert outcome.action == "nothing-new", outcome.line()
        times.append(outcome.seconds)
    lines.append(f"nothing new (load and check only): {stats(times)}")
    return lines


def startup_seconds() -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import snapshotter.run, statepump.sources.eventhub, statepump.stores.blob"],
        check=True,
    )
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--delta", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", choices=("dir", "azurite", "both"), default="both")
    args = parser.parse_args()

    built = time.perf_counter()
    hub = Hub(args.keys)
    print(f"# snapshotter run, {args.keys:,}-key state (hub built in {time.perf_counter() - built:.1f} s)")
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}")
    print(f"command start-up (interpreter + imports): {startup_seconds():.2f} s")
    results: list[str] = []
    if args.store in ("dir", "both"):
        with tempfile.TemporaryDirectory() as directory:
            s = load({"snapshot_dir": directory, "keep": 2}, environ={})
            results += await measure("directory store", s, hub, args.delta, args.runs)
            print("\n".join(results), flush=True)
    if args.store in ("azurite", "both"):
        from azure.storage.blob.aio import BlobServiceClient

        from devservices.azurite import AzuriteProcess

        azurite = AzuriteProcess(location=None)
        info = azurite.start(retry_port=True)
        try:
            async with BlobServiceClient.from_connection_string(info.connection_string) as service:
                await service.create_container("snapshots")
            s = load(
                {"snapshot_container": "snapshots", "storage_connection_string": info.connection_string, "keep": 2},
                environ={},
            )
            lines = await measure("Azure Blob (Azurite, loopback)", s, hub, args.delta, args.runs)
            print("\n".join(lines), flush=True)
        finally:
            azurite.stop()
    peak: Callable[[], int] = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
    print(f"peak RSS of this process: {peak() / 1024:.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
