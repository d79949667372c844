"""The writer commands' checks and outcomes: ``statepump set``, ``delete``, ``merge`` and ``send``.

:mod:`statepump.cli` parses the flags and sends; this module builds the
bodies (:func:`bodies_for`), refuses what the fold would reject before
anything is sent (:func:`refusal`, with :mod:`statepump.core.writecheck`),
and with ``--wait`` reports what became of each event (:func:`report`).

Exit codes: 0 sent (and, with ``--wait``, applied); 2 refused, nothing
sent; 4 ``--wait`` timed out; 5 ``--wait`` and no sidecar; 6 rejected (or
poisoned) by the fold.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from statepump.core.errors import ConfigError

if TYPE_CHECKING:
    from statepump.core.schema import Schema

EXIT_REFUSED: Final = 2
EXIT_TIMED_OUT: Final = 4
EXIT_NO_SIDECAR: Final = 5
EXIT_REJECTED: Final = 6

#: The commands that write events, and what each says in ``--help``.
WRITERS: Final = ("send", "set", "delete", "merge")


def add_writer_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """The flags every writer command has (``--force``, ``--wait``, ``--author``, ``--expect``, ``--if-sequence``)."""
    if command != "send":
        parser.add_argument(
            "--expect",
            default=None,
            metavar="JSON",
            help="send as one atomic event with a test first: the fold rejects the change unless PATH still "
            "holds this value (optimistic concurrency; two racing writers: one is applied, one rejected)",
        )
        parser.add_argument(
            "--if-sequence",
            type=int,
            default=None,
            metavar="N",
            help="the fold rejects the change unless PATH (or a path above or below it) last changed at or "
            "before event N: the sequence of the state you read (optimistic concurrency without the value)",
        )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait until the sidecar (--socket) folded the event; print 'applied at N' or 'rejected at N: "
        "REASON' (exit 6)",
    )
    parser.add_argument("--wait-timeout", type=float, default=30.0, metavar="SECONDS", help="for --wait (default 30)")
    parser.add_argument(
        "--author",
        default=None,
        help="who writes, in the event's statepump-author property (default: the user name)",
    )


def _json_argument(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        hint = f"a string needs quotes: '\"{text[:20]}\"'"
        raise ConfigError(f"{what} must be JSON, not {text[:60]!r} ({hint})") from None


def bodies_for(args: argparse.Namespace, read_send_bodies: Callable[[Sequence[str]], list[bytes]]) -> list[bytes]:
    """The event bodies a writer command sends (bad JSON in an argument is a ConfigError, exit 2)."""
    from statepump.core.writecheck import NOTHING, delete_body, merge_body, set_body

    command: str = args.command
    if command == "send":
        if getattr(args, "file", None) is not None:
            try:
                lines = [line for line in Path(args.file).read_text().splitlines() if line.strip()]
            except OSError as exc:
                raise ConfigError(f"--file {args.file}: {exc.strerror}") from None
            return read_send_bodies(lines)
        return read_send_bodies(args.events)
    expect = NOTHING if args.expect is None else _json_argument(args.expect, "--expect")
    if_sequence: int | None = args.if_sequence
    if if_sequence is not None and if_sequence < -1:
        raise ConfigError(f"--if-sequence must be an event's sequence number (>= -1), not {if_sequence}")
    if command == "set":
        return [set_body(args.path, _json_argument(args.value, "VALUE"), expect=expect, if_sequence=if_sequence)]
    if command == "merge":
        return [merge_body(args.path, _json_argument(args.value, "JSON"), expect=expect, if_sequence=if_sequence)]
    return [delete_body(args.path, expect=expect, if_sequence=if_sequence)]


def author_of(args: argparse.Namespace) -> str:
    """``--author``, else the user name (``getpass``), else ``unknown``."""
    if args.author:
        return str(args.author)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")


def refusal(socket_path: Path, bodies: Sequence[bytes], schema: Schema | None = None) -> str | None:
    """Why the fold would reject ``bodies`` (syntax and ``--schema`` always; with a sidecar, its current values)."""
    from statepump.client import Client, PathNotFound, SidecarError, SidecarUnavailable
    from statepump.core.writecheck import Refused, check_against, check_syntax, top_level_keys

    try:
        for i, body in enumerate(bodies, 1):
            try:
                check_syntax(body, schema)
            except Refused as exc:
                raise Refused(f"event {i}: {exc}" if len(bodies) > 1 else str(exc)) from None
        keys = top_level_keys(bodies)
    except Refused as exc:
        return str(exc)
    if not socket_path.exists():
        return None  # no sidecar here: what the state holds is left to the fold
    try:
        with Client(socket_path, timeout=5.0) as client:
            if keys is None:
                current: dict[Any, Any] = client.get("")
            else:
                current = {}
                for key in keys:
                    with contextlib.suppress(PathNotFound):  # nothing there yet
                        current[key] = client.get([str(key)])
    except (SidecarUnavailable, SidecarError):
        return None  # not answering or not ready: the syntax check is all there is
    try:
        check_against(current, bodies, schema)
    except Refused as exc:
        return str(exc)
    return None


def report(socket_path: Path, sequences: Sequence[int], *, wait: bool, timeout: float) -> int:
    """Print what the command did: the sequence numbers, or with ``wait`` each event's outcome."""
    if not wait:
        for n in sequences:
            print(n)
        return 0
    from statepump.client import Client, SidecarUnavailable

    code = 0
    deadline = time.monotonic() + timeout
    try:
        with Client(socket_path, timeout=5.0) as client:
            for n in sequences:
                outcome = _outcome(client, n, deadline)
                if outcome is None:
                    status = client.status()
                    why = f" (not ready: {status['not_ready_reason']})" if status.get("not_ready_reason") else ""
                    print(
                        f"statepump: event {n} was sent but not folded within {timeout:g} s: the sidecar is at "
                        f"{status['sequence']}{why}",
                        file=sys.stderr,
                    )
                    return EXIT_TIMED_OUT
                kind, reason = outcome
                if kind == "applied":
                    print(f"applied at {n}")
                else:
                    print(f"{kind} at {n}: {reason}")
                    code = EXIT_REJECTED
    except SidecarUnavailable as exc:
        print(f"statepump: sent {', '.join(map(str, sequences))} but cannot --wait: {exc}", file=sys.stderr)
        return EXIT_NO_SIDECAR
    return code


def _outcome(client: Any, sequence: int, deadline: float) -> tuple[str, str | None] | None:
    """The event's outcome once the sidecar folded it (polled until ``deadline``)."""
    pause = 0.005
    while True:
        found = client.event(sequence)
        if found is not None:
            return str(found["outcome"]), found.get("reason")
        if time.monotonic() >= deadline:
            return None
        time.sleep(pause)  # polling the sidecar's ring; a few ms is well under a fold's batch interval
        pause = min(pause * 2, 0.1)
