"""``python -m statepump.emulator``: run the emulator until SIGINT/SIGTERM.

Used by the test fixture that kills and restarts an emulator; the user-facing
command is ``statepump emulator``, which calls the same :func:`serve_forever`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from statepump.emulator import Emulator, quotas, serve_forever


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
    limits = parser.add_argument_group("the service's limits")
    limits.add_argument(
        "--consumer-group",
        action="append",
        default=[],
        metavar="NAME",
        help="a consumer group besides $Default (repeatable; NAME may be a comma list and hold one range, "
        "e.g. 'web-{01..20}')",
    )
    limits.add_argument("--consumer-groups", type=int, default=0, metavar="N", help="also create group-1 ... group-N")
    limits.add_argument(
        "--receivers-per-partition",
        type=int,
        default=quotas.RECEIVERS_PER_PARTITION,
        metavar="N",
        help="receivers allowed per partition and consumer group (0: no limit) [default: 5, as the service]",
    )
    limits.add_argument("--max-connections", type=int, metavar="N", help="connections allowed (default: any)")
    limits.add_argument(
        "--throughput-units",
        type=int,
        metavar="N",
        help="pace what all readers receive together to N x (2 MiB/s or 4,096 events/s) (default: no limit)",
    )
    limits.add_argument(
        "--throttle-ingress",
        action="store_true",
        help="with --throughput-units, also refuse sends past N x (1 MiB/s or 1,000 events/s) as server busy",
    )
    args = parser.parse_args(argv)
    try:
        args.consumer_groups = consumer_groups(args.consumer_group, args.consumer_groups)
    except ValueError as exc:
        parser.error(str(exc))
    if args.throttle_ingress and args.throughput_units is None:
        parser.error("--throttle-ingress needs --throughput-units")
    return args


def consumer_groups(specs: list[str], numbered: int) -> list[str]:
    """The consumer groups ``--consumer-group`` and ``--consumer-groups`` ask for, checked.

    >>> consumer_groups(["audit", "web-{1..2}"], 1)
    ['audit', 'web-1', 'web-2', 'group-1']
    """
    names = [name for spec in specs for name in quotas.expand(spec)] + quotas.numbered(numbered)
    for name in names:
        quotas.check_group_name(name)
    return names


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
        consumer_groups=args.consumer_groups,
        receivers_per_partition=args.receivers_per_partition or None,
        max_connections=args.max_connections,
        throughput_units=args.throughput_units,
        throttle_ingress=args.throttle_ingress,
    )
    asyncio.run(serve_forever(emulator))


if __name__ == "__main__":
    main()
