"""What a link address names (pure).

The SDK attaches links to full URLs: ``amqps://HOST[:PORT]/HUB`` (send to any
partition), ``.../HUB/Partitions/ID`` (send to one),
``.../HUB/ConsumerGroups/CG/Partitions/ID`` (receive), and the plain nodes
``$cbs`` and ``$management``. Path keywords, hub names and consumer group
names are case-insensitive on the service, so they are here too.

>>> parse_address("amqps://127.0.0.1:5671/hub/ConsumerGroups/$Default/Partitions/0", "hub")
Consumer(consumer_group='$default', partition='0')
>>> parse_address("amqps://127.0.0.1/hub", "hub")
Producer(partition=None)
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


class UnknownAddress(ValueError):
    """The address names no node of this emulator."""


@dataclass(frozen=True, slots=True)
class Cbs:
    """The claims-based-security node, ``$cbs``."""


@dataclass(frozen=True, slots=True)
class Management:
    """The management node, ``$management``."""


@dataclass(frozen=True, slots=True)
class Producer:
    """The hub (``partition`` None: the service picks) or one of its partitions, as a target."""

    partition: str | None


@dataclass(frozen=True, slots=True)
class Consumer:
    """One partition of the hub seen through a consumer group (lower-cased), as a source."""

    consumer_group: str
    partition: str


Node = Cbs | Management | Producer | Consumer


def parse_address(address: str, eventhub: str) -> Node:
    """The node ``address`` names; :class:`UnknownAddress` with the reason if none."""
    path = urlsplit(address).path if "://" in address else address
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if parts == ["$cbs"]:
        return Cbs()
    if parts in (["$management"], [eventhub, "$management"]):
        return Management()
    if not parts:
        raise UnknownAddress(f"the address {address!r} names no entity")
    if parts[0].lower() != eventhub.lower():
        raise UnknownAddress(
            f"The messaging entity '{parts[0]}' could not be found (this emulator serves '{eventhub}')."
        )
    rest = [p.lower() for p in parts[1:]]
    if not rest:
        return Producer(None)
    if len(rest) == 2 and rest[0] == "partitions":
        return Producer(parts[2])
    if len(rest) == 4 and rest[0] == "consumergroups" and rest[2] == "partitions":
        return Consumer(rest[1], parts[4])
    raise UnknownAddress(f"the address {address!r} is not a hub, partition or consumer group partition path")
