"""``statepump skip N --reason "..."``: release every node halted on poison event N, with one event.

It appends a control event (:mod:`statepump.core.control`) to the pump's
partition: every pump, snapshotter and later replay halted on N reads it and
skips N, then folds the events after N again, in order. Before sending, the
command checks, as the other writer commands do, and refuses with one line and
exit status 2, sending nothing (``--force`` sends anyway): a sequence number
the log does not hold yet (the skip would come before the event and never take
effect), or one the sidecar on ``--socket`` has already folded past.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from statepump.core import control
from statepump.core.errors import ConfigError
from statepump.settings import Settings
from statepump.writecommands import EXIT_REFUSED, author_of


def add_skip_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``statepump skip`` beside the settings (the writers' ``--author``, ``--force``)."""
    parser.add_argument("sequence", type=int, metavar="N", help="the poison event to skip (its sequence number)")
    parser.add_argument("--reason", required=True, help="why, for the log and every node's status (required)")
    parser.add_argument(
        "--force", action="store_true", help="send even a skip of an event not in the log yet or already folded"
    )
    parser.add_argument(
        "--author", default=None, help="who writes, in the event's statepump-author property (default: the user name)"
    )


async def skip_command(settings: Settings, args: argparse.Namespace) -> int:
    """Check, send the control event, print its sequence number (0), or refuse (2)."""
    from statepump.components import hub_arguments
    from statepump.core.writecheck import AUTHOR_PROPERTY
    from statepump.eventhubs.send import send_events
    from statepump.timetravel import with_embedded_hub

    target: int = args.sequence
    reason = str(args.reason).strip()
    if not reason:
        raise ConfigError("--reason must say why the event is skipped (every node logs it)")
    if len(reason) > control.MAX_REASON:
        raise ConfigError(f"--reason is {len(reason)} characters; at most {control.MAX_REASON}")
    settings = with_embedded_hub(settings)
    connection = hub_arguments(settings)
    for unused in ("partition", "consumer_group", "retry"):
        connection.pop(unused, None)
    if not args.force:
        hub_last = await _hub_last(connection, settings.partition)
        applied, halted = _sidecar_position(settings, target)
        problem = control.skip_refusal(target, hub_last=hub_last, applied_through=applied, halted_at=halted)
        if problem is not None:
            print(f"statepump skip: refused: {problem}; nothing was sent (--force sends it anyway)", file=sys.stderr)
            return EXIT_REFUSED
    properties = {control.CONTROL_PROPERTY: control.SKIP, AUTHOR_PROPERTY: author_of(args)}
    (sequence,) = await send_events(
        **connection,
        bodies=[control.skip_body(target, reason)],
        partition=settings.partition,
        properties=properties,
    )
    print(sequence)
    return 0


async def _hub_last(connection: dict[str, Any], partition: str) -> int:
    """The partition's last sequence number (-1 when empty), from the hub's management answer."""
    from azure.eventhub.exceptions import EventHubError

    from statepump.eventhubs.connection import HubEndpoint
    from statepump.eventhubs.failures import HubError, first_line

    endpoint = HubEndpoint(**connection)
    try:
        async with endpoint.producer(retry_total=3) as producer:
            props = await asyncio.wait_for(producer.get_partition_properties(partition), 60)
    except TimeoutError:
        raise HubError(f"reading partition {partition} of {endpoint.describe()}: no answer within 60 s") from None
    except EventHubError as exc:
        raise HubError(
            f"reading partition {partition} of {endpoint.describe()} failed: {endpoint.redact(first_line(exc))}"
        ) from None
    finally:
        await endpoint.close()
    return int(props["last_enqueued_sequence_number"])


def _sidecar_position(settings: Settings, target: int) -> tuple[int | None, int | None]:
    """The sidecar's sequence and the poison event it is halted on, when one answers on ``--socket``.

    A sidecar with ``--poison-policy skip`` that skipped ``target`` itself is past it, but the
    nodes halted on it are not: its position is no reason to refuse.
    """
    from statepump.client import Client, SidecarError, SidecarUnavailable

    if not settings.socket_path.exists():
        return None, None
    try:
        with Client(settings.socket_path, timeout=5.0) as client:
            status: dict[str, Any] = client.status()
    except (SidecarUnavailable, SidecarError):
        return None, None
    halted = status.get("halted_on_poison")
    if status.get("last_poison_event") == target and not halted:
        return None, None
    return int(status["sequence"]), (int(halted["sequence"]) if halted else None)
