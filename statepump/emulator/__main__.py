"""``python -m statepump.emulator``: run the emulator until SIGINT/SIGTERM.

Used by the test fixture that kills and restarts an emulator; the user-facing
command is ``statepump emulator``, which calls the same :func:`serve_forever`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from statepump.emulator import Emulator, serve_forever


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m statepump.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5672)
    parser.add_argument("--eventhub", default="hub")
    parser.add_argument("--partitions", type=int, default=2)
    storage = parser.add_mutually_exclusive_group()
    storage.add_argument("--data", type=Path, help="keep events in append-only files under this directory")
    storage.add_argument("--in-memory", action="store_true", help="keep events in memory only (the default)")
    parser.add_argument("--retention", type=float, help="drop events older than this many seconds")
    parser.add_argument("--admin-port", type=int, help="serve the admin HTTP endpoint on this port (0 = free)")
    parser.add_argument("--capture-dir", type=Path, help="write Capture Avro files under this directory")
    parser.add_argument("--capture-interval", type=float, default=300.0, help="Capture window, seconds")
    parser.add_argument(
        "--emulator-key", help="accept only SAS tokens signed with this RootManageSharedAccessKey (default: any)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    emulator = Emulator(
        host=args.host,
        port=args.port,
        eventhub=args.eventhub,
        partitions=args.partitions,
        data_dir=None if args.in_memory else args.data,
        retention=args.retention,
        admin_port=args.admin_port,
        capture_dir=args.capture_dir,
        capture_interval=args.capture_interval,
        key=args.emulator_key,
    )
    asyncio.run(serve_forever(emulator))


if __name__ == "__main__":
    main()
