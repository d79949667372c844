"""A separate process that writes one snapshot into a DirectoryStore, to be killed mid-write.

``python -m tests.stores.directory_writer ROOT SEQUENCE SIZE [--hold-before-publish]``

With ``--hold-before-publish`` the process stops right before the temporary
file is published under its final name, prints ``holding`` and waits on stdin,
so the test can SIGKILL it at exactly that point.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from statepump.stores.directory import DirectoryStore


def main(argv: list[str]) -> None:
    root, sequence, size = Path(argv[0]), int(argv[1]), int(argv[2])
    if "--hold-before-publish" in argv:

        def hold(*_args: Any, **_kwargs: Any) -> None:
            print("holding", flush=True)
            sys.stdin.read()

        os.link = hold
    print("writing", flush=True)
    asyncio.run(DirectoryStore(root, "hub", "0").write(sequence, b"\x5a" * size))
    print("written", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
