"""A separate process that uploads one snapshot through BlobStore in small staged blocks, to be killed.

``STATEPUMP_TEST_BLOB_CONN=... python -m tests.stores.blob_writer CONTAINER SEQUENCE SIZE``

Blocks are 64 KiB and uploaded one at a time, so a test can watch the
uncommitted block list grow and SIGKILL the process before the commit.
The connection string comes from the environment, never the command line.
"""

from __future__ import annotations

import asyncio
import os
import sys

from statepump.stores.blob import BlobStore


async def write(container: str, sequence: int, size: int) -> None:
    store = BlobStore.from_connection_string(
        os.environ["STATEPUMP_TEST_BLOB_CONN"],
        container,
        "hub",
        "0",
        max_concurrency=1,
        max_single_put_size=64 * 1024,
        max_block_size=64 * 1024,
    )
    async with store:
        await store.write(sequence, b"\xa5" * size)


if __name__ == "__main__":
    asyncio.run(write(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    print("written", flush=True)
