"""Figure 6: memory of the N-key state as the sidecar holds it, against the same data as a plain ``dict``.

Each side loads in a fresh child process and reports its own resident-set
growth (``/proc/self/statm``): statepump through
:func:`statepump.stores.snapshots.load_latest` from a directory store (the sidecar's
start-up path), the anchor through ``msgpack.unpackb`` of the same data into a
``dict``. A second pair of children reports ``tracemalloc``'s count of live
Python allocations, which excludes allocator slack.

Child mode: ``python -m bench.figures.memory ours|dict PATH [--tracemalloc]``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgpack

from bench import dataset
from bench.figure import Figure, Size, spread
from bench.measure import Stats, rss_bytes
from statepump.core.configops import config
from statepump.core.events import Version
from statepump.stores.directory import DirectoryStore
from statepump.stores.snapshots import write_snapshot

GOAL = 1.5  # x the same data as a dict, loaded the same way
ROOT = Path(__file__).resolve().parents[2]


def child(kind: str, path: str, traced: bool) -> dict[str, int]:
    """Load the state (``ours``) or the dict (``dict``) and say how much memory it took."""
    import tracemalloc

    gc.disable()  # as the pump runs
    if traced:
        tracemalloc.start()
    before = rss_bytes()
    obj: Any
    if kind == "ours":
        from statepump.stores.snapshots import load_latest

        loaded = asyncio.run(load_latest(DirectoryStore(Path(path), "hub", "0"), config, eventhub="hub", partition="0"))
        obj = loaded.version.state
    else:
        with open(path, "rb") as f:
            data = f.read()
        obj = msgpack.unpackb(data, raw=False)
        del data
    after = rss_bytes()
    traced_bytes = tracemalloc.get_traced_memory()[0] if traced else 0
    return {"rss": after - before, "traced": traced_bytes, "keys": len(obj)}


def _spawn(kind: str, path: Path, traced: bool = False) -> dict[str, int]:
    cmd = [sys.executable, "-m", "bench.figures.memory", kind, str(path)] + (["--tracemalloc"] if traced else [])
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"memory child {kind} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(size: Size) -> Figure:
    n = size.keys
    runs = min(size.runs, 3)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        store = DirectoryStore(Path(tmp), "hub", "0")
        version: Version[Any] = Version(dataset.state(n), n - 1, dataset.T0, "0", dataset.T0)
        asyncio.run(write_snapshot(store, version, config, eventhub="hub", events_folded=n))
        plain_path = Path(tmp) / "plain.msgpack"
        plain_path.write_bytes(msgpack.packb(dataset.config_dict(n), use_bin_type=True))
        ours = [_spawn("ours", Path(tmp)) for _ in range(runs)]
        anchor = [_spawn("dict", plain_path) for _ in range(runs)]
        ours_traced = _spawn("ours", Path(tmp), traced=True)
        anchor_traced = _spawn("dict", plain_path, traced=True)
    if {r["keys"] for r in ours + anchor} != {n}:
        raise AssertionError("a memory child did not load all keys")
    mine = Stats.of([r["rss"] / 1e6 for r in ours])
    theirs = Stats.of([r["rss"] / 1e6 for r in anchor])
    ratio = mine.median / theirs.median
    traced_ratio = ours_traced["traced"] / max(anchor_traced["traced"], 1)
    return Figure(
        "6",
        f"memory of the {n:,}-key state in the sidecar (loaded from its snapshot)",
        spread(mine.median, mine.min, mine.max, "{:,.0f}") + " MB RSS",
        f"same data as a `dict`: {theirs.median:,.0f} MB RSS",
        f"{ratio:.2f}×",
        f"≤ {GOAL:g}× the dict's",
        ratio <= GOAL,
        (
            f"tracemalloc (live Python allocations, no allocator slack): {ours_traced['traced'] / 1e6:,.0f} MB "
            f"against {anchor_traced['traced'] / 1e6:,.0f} MB ({traced_ratio:.2f}×).",
            f"Resident-set growth of a fresh child process while loading, {runs} children each; the snapshot and "
            "msgpack bytes are freed before measuring.",
        ),
    )


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], sys.argv[2], "--tracemalloc" in sys.argv[3:])))
