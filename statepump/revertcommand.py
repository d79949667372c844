"""``statepump revert --to N [PATH]``: bring PATH (or the whole state) back to how it was at event N, in one event.

The value now comes from the sidecar on ``--socket`` (with the sequence
number it was read at); the value at N is rebuilt offline, as ``statepump
query --at-sequence`` does (:func:`statepump.timetravel.state_at`: the
newest snapshot at or before N plus the events after it, from Capture and
the hub). :func:`statepump.core.revert.revert_ops` turns the difference into
config operations with preconditions; the command prints them, asks (``--yes``
for scripts; without a terminal and without ``--yes`` it refuses, exit 2),
checks them as the writer commands do, and sends them as ONE event (an
``ops`` list), so every node folds the revert alike and the log keeps it.
With ``--wait`` it prints ``applied at M`` or ``rejected at M: REASON``
(exit 6), as ``statepump set --wait`` does: a revert whose paths changed
since they were read is rejected, never applied over the newer change.

Exit codes: 0 sent (or nothing to revert); 2 refused or not confirmed,
nothing sent; 4, 5, 6 as the writer commands' ``--wait``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from statepump import writecommands
from statepump.core.errors import ConfigError
from statepump.settings import Settings

#: The application property a revert event carries besides ``statepump-author``: the event it went back to.
REVERT_PROPERTY = "statepump-revert-to"


def add_revert_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``statepump revert`` beside the settings."""
    parser.add_argument("path", nargs="?", default="", metavar="PATH", help="what to revert (default: everything)")
    parser.add_argument(
        "--to", dest="revert_to", type=int, required=True, metavar="N", help="the event whose value to go back to"
    )
    parser.add_argument("--yes", action="store_true", help="send without asking (for scripts)")
    parser.add_argument("--force", action="store_true", help="send even what the checks refuse")
    writecommands.add_writer_flags(parser, "send")  # --wait, --wait-timeout, --author: as the writers have them


def _now(settings: Settings, path: str) -> tuple[Any, int]:
    """The value at ``path`` on the sidecar (``MISSING`` if none) and the sequence number it was read at."""
    from pyrsistent import freeze

    from statepump.client import Client, PathNotFound, SidecarError, SidecarUnavailable
    from statepump.core.statejson import MISSING

    try:
        with Client(settings.socket_path, timeout=10.0) as client:
            status = client.status()
            reducer = (status.get("reducer") or {}).get("name")
            if reducer not in (None, "config"):
                raise ConfigError(f"revert writes config operations; the sidecar's reducer is {reducer!r}")
            if not status.get("ready"):
                why = status.get("not_ready_reason") or "not ready"
                raise ConfigError(f"the sidecar on {settings.socket_path} is not ready ({why}): nothing to revert from")
            try:
                value, sequence = client.get_with_sequence(path)
            except PathNotFound:
                # Nothing there now. A value written after `status` would make the revert's if_sequence fail.
                return MISSING, int(status["sequence"])
    except SidecarUnavailable as exc:
        raise ConfigError(f"revert needs the sidecar's state now (--socket): {exc}") from None
    except SidecarError as exc:
        raise ConfigError(f"revert: the sidecar on {settings.socket_path} answered: {exc}") from None
    return freeze(value), sequence


def _confirmed(args: argparse.Namespace) -> bool | None:
    """``True`` to send; ``False`` when the operator said no; ``None`` when there is nobody to ask."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        return None
    try:
        answer = input("send this revert as one event? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


async def revert_command(settings: Settings, args: argparse.Namespace) -> int:
    """Print the operations, confirm, send them as one event; see the module's docstring."""
    from statepump import timetravel
    from statepump.components import hub_arguments
    from statepump.core.changes import split
    from statepump.core.revert import describe_op, revert_ops
    from statepump.core.statejson import walk
    from statepump.core.writecheck import AUTHOR_PROPERTY
    from statepump.eventhubs.send import send_events

    target: int = args.revert_to
    path: str = args.path
    segments = split(path)
    where = path or "the whole state"
    if target < -1:
        raise ConfigError(f"--to must be an event's sequence number (-1 for before the first), not {target}")
    now, as_of = await asyncio.to_thread(_now, settings, path)
    if target > as_of:
        raise ConfigError(f"--to {target} is after the sidecar's state (sequence {as_of}): nothing to go back to")
    settings = timetravel.with_embedded_hub(settings)
    if "log_level" not in getattr(args, "given", ()):
        # The replay's pump logs its start and catch-up at INFO: noise around the operations printed here.
        logging.getLogger("statepump").setLevel(logging.WARNING)
    then = walk((await timetravel.state_at(settings, target)).state, segments)
    try:
        ops = revert_ops(now, then, segments, as_of=as_of)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not ops:
        print(f"nothing to revert: {where} holds at {as_of} what it held at {target}")
        return 0
    print(f"revert of {where} from sequence {as_of} to its value at {target}, as one event:")
    for op in ops:
        print(f"  {describe_op(op)}")
    print(
        "the tests and if_sequence make it a rejection, not an overwrite, if any of these paths changes after "
        f"{as_of} before it is folded"
    )
    confirmed = _confirmed(args)
    if confirmed is None:
        print("statepump revert: not a terminal: add --yes to send without asking; nothing was sent", file=sys.stderr)
        return writecommands.EXIT_REFUSED
    if not confirmed:
        print("statepump revert: not confirmed; nothing was sent", file=sys.stderr)
        return writecommands.EXIT_REFUSED
    body = json.dumps({"ops": ops}, separators=(",", ":"), ensure_ascii=False).encode()
    problem = None if args.force else writecommands.refusal(settings.socket_path, [body])
    if problem is not None:
        print(f"statepump revert: refused: {problem}; nothing was sent (--force sends it anyway)", file=sys.stderr)
        return writecommands.EXIT_REFUSED
    connection = hub_arguments(settings)
    for unused in ("partition", "consumer_group", "retry"):
        connection.pop(unused, None)
    properties = {AUTHOR_PROPERTY: writecommands.author_of(args), REVERT_PROPERTY: str(target)}
    sequences = await send_events(**connection, bodies=[body], partition=settings.partition, properties=properties)
    return writecommands.report(settings.socket_path, sequences, wait=args.wait, timeout=args.wait_timeout)
