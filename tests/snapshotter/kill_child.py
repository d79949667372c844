"""A snapshotter run that a test SIGKILLs while it writes (tests/snapshotter/test_kill.py).

Usage: python -m tests.snapshotter.kill_child KEYS dir PATH
       python -m tests.snapshotter.kill_child KEYS blob CONNECTION_STRING CONTAINER

The hub is one in-memory event that makes a state of KEYS keys (reducer
tests.snapshotter.reducers:bulk); the store is the real directory or Blob
store. Blob writes are staged in 1 MiB blocks so that a kill can land between
Stage Block and Put Block List.
"""

from __future__ import annotations

import asyncio
import sys

from snapshotter.run import run_once
from statepump.settings import load
from statepump.sources.memory import MemorySource
from statepump.stores import SnapshotStore

#: Long values make a snapshot of tens of MB from a quickly built state, so a write takes long enough to catch.
TAG = "t" * 150


async def main(argv: list[str]) -> None:
    keys, kind = int(argv[0]), argv[1]
    hub = MemorySource()
    hub.append({"keys": keys, "tag": TAG})
    store: SnapshotStore
    if kind == "dir":
        from pathlib import Path

        from statepump.stores.directory import DirectoryStore

        store = DirectoryStore(Path(argv[2]), "hub", "0")
    else:
        from statepump.stores.blob import BlobStore

        store = BlobStore.from_connection_string(
            argv[2], argv[3], "hub", "0", max_single_put_size=1 << 20, max_block_size=1 << 20
        )
    settings = load({"reducer": "tests.snapshotter.reducers:bulk", "snapshot_dir": "/nonexistent"}, environ={})
    print("folding", flush=True)
    outcome = await run_once(settings, source=hub, store=store)
    print(outcome.line(), flush=True)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
