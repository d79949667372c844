"""What the service refuses, and in its words (pure): consumer groups, receivers, connections.

Event Hubs lets a receiver attach only to a consumer group that exists, and
allows at most five receivers per partition and consumer group, counted over
every connection of the namespace; the sixth is refused. A receiver holds its
slot until its link detaches or its connection goes away. Owner levels
(epochs) come first: a receiver with an epoch takes the partition from every
receiver with a lower epoch or none (detached with ``amqp:link:stolen``); a
receiver with a lower epoch than the current owner, or none while an owner
exists, is refused with the same condition. The count applies to what is left
after that.

The texts are the service's, as users of the SDKs have reported them (the
Python SDK prints the condition and the description):

* unknown consumer group, ``amqp:not-found``: ``The messaging entity
  'NS:eventhub:HUB~32766|GROUP' could not be found. To know more visit
  https://aka.ms/sbResourceMgrExceptions.``
* a sixth receiver, ``amqp:resource-limit-exceeded`` (the .NET SDK's
  ``QuotaExceeded``, the Python SDK's ``ResourceLimitExceeded``):
  ``Exceeded the maximum number of allowed receivers per partition in a
  consumer group which is 5. List of connected receivers - nil, nil, nil,
  nil, nil.`` Each entry is a receiver's ``com.microsoft:receiver-name``
  link property (the Java and .NET SDKs set one; the Python SDK does not,
  hence ``nil``).
* too many connections, ``amqp:resource-limit-exceeded``:
  ``ConnectionsQuotaExceeded for namespace NS.``

The service appends ``TrackingId:..., SystemTracker:..., Timestamp:...`` to
each; :func:`with_trailer` does the same.

>>> claims: Claims[str] = Claims(limit=2)
>>> claims.attach("0", "$Default", "a", epoch=None, identifier=None)
[]
>>> claims.attach("0", "$Default", "b", epoch=None, identifier="reader-b")
[]
>>> try:
...     claims.attach("0", "$Default", "c", epoch=None, identifier=None)
... except Refused as refused:
...     print(refused.condition, refused.description.split(". ")[1])
b'amqp:resource-limit-exceeded' List of connected receivers - nil, reader-b.
>>> claims.release("0", "$Default", "a")
True
>>> claims.attach("0", "$Default", "c", epoch=None, identifier=None)
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Generic, TypeVar

# The names and their parser are the pump's too (its pool of groups): one parser, in the core.
from statepump.core.consumergroups import DEFAULT_GROUP as DEFAULT_GROUP
from statepump.core.consumergroups import MAX_EXPANSION as MAX_EXPANSION
from statepump.core.consumergroups import RECEIVERS_PER_PARTITION as RECEIVERS_PER_PARTITION
from statepump.core.consumergroups import check_group_name as check_group_name
from statepump.core.consumergroups import expand as expand

NOT_FOUND: Final = b"amqp:not-found"
RESOURCE_LIMIT_EXCEEDED: Final = b"amqp:resource-limit-exceeded"
STOLEN: Final = b"amqp:link:stolen"
#: The link property in which the Java and .NET SDKs name a receiver.
RECEIVER_NAME: Final = b"com.microsoft:receiver-name"


class Refused(Exception):
    """A receiver or connection may not attach; ``condition`` is the AMQP error to answer with."""

    def __init__(self, condition: bytes, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


# -- consumer groups ----------------------------------------------------------------


def numbered(count: int) -> list[str]:
    """The groups ``--consumer-groups N`` creates besides ``$Default``: ``group-1`` ... ``group-N``.

    >>> numbered(3)
    ['group-1', 'group-2', 'group-3']
    """
    if count < 0:
        raise ValueError(f"--consumer-groups must be 0 or more, not {count}")
    return [f"group-{n}" for n in range(1, count + 1)]


class ConsumerGroups:
    """The consumer groups of an event hub: ``$Default`` and those configured, names compared case-insensitively.

    >>> groups = ConsumerGroups(["Audit"])
    >>> groups.find("$default"), groups.find("AUDIT"), groups.find("other")
    ('$Default', 'Audit', None)
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names: dict[str, str] = {DEFAULT_GROUP.lower(): DEFAULT_GROUP}
        for name in names:
            self.add(name)

    def add(self, name: str) -> str:
        """Create ``name`` (a no-op if it exists, in any case); return the spelling kept."""
        return self._names.setdefault(check_group_name(name).lower(), name)

    def find(self, name: str) -> str | None:
        """The configured spelling of ``name``, or None if there is no such group."""
        return self._names.get(name.lower())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._names)


# -- the service's texts --------------------------------------------------------------


def system_tracker(namespace: str, eventhub: str, group: str | None = None) -> str:
    """How the service names an event hub (and consumer group) in its errors.

    >>> system_tracker("ns", "hub", "$default")
    'ns:eventhub:hub~32766|$default'
    """
    entity = f"{namespace}:eventhub:{eventhub}~32766"
    return entity if group is None else f"{entity}|{group}"


def with_trailer(description: str, tracker: str, tracking_id: str, when: datetime) -> str:
    """``description`` followed by the service's tracking fields.

    >>> from datetime import UTC
    >>> with_trailer("Gone.", "ns:eventhub:hub~32766", "t1_G0", datetime(2024, 5, 1, 12, 0, 7, tzinfo=UTC))
    'Gone. TrackingId:t1_G0, SystemTracker:ns:eventhub:hub~32766, Timestamp:2024-05-01T12:00:07'
    """
    return f"{description} TrackingId:{tracking_id}, SystemTracker:{tracker}, Timestamp:{when:%Y-%m-%dT%H:%M:%S}"


def group_not_found(namespace: str, eventhub: str, group: str) -> Refused:
    """The refusal of a receiver on a consumer group that does not exist."""
    return Refused(
        NOT_FOUND,
        f"The messaging entity '{system_tracker(namespace, eventhub, group)}' could not be found. "
        "To know more visit https://aka.ms/sbResourceMgrExceptions.",
    )


def receivers_exceeded(limit: int, identifiers: Iterable[str | None]) -> Refused:
    """The refusal of a receiver beyond ``limit`` on a partition and consumer group."""
    listed = ", ".join(name or "nil" for name in identifiers)
    return Refused(
        RESOURCE_LIMIT_EXCEEDED,
        f"Exceeded the maximum number of allowed receivers per partition in a consumer group which is {limit}. "
        f"List of connected receivers - {listed}.",
    )


def connections_exceeded(namespace: str, open_connections: int, limit: int | None) -> Refused | None:
    """The refusal of one more connection when ``open_connections`` already reach ``limit``; None to admit it.

    >>> connections_exceeded("ns", 2, 3) is None, connections_exceeded("ns", 3, 3).description
    (True, 'ConnectionsQuotaExceeded for namespace ns.')
    """
    if limit is None or open_connections < limit:
        return None
    return Refused(RESOURCE_LIMIT_EXCEEDED, f"ConnectionsQuotaExceeded for namespace {namespace}.")


# -- receivers ---------------------------------------------------------------------------

R = TypeVar("R")


@dataclass(frozen=True, eq=False, slots=True)
class Claim(Generic[R]):
    """One attached receiver: whatever the caller uses for it, its owner level and its name."""

    receiver: R
    epoch: int | None
    identifier: str | None


def _shown(epoch: int | None) -> str:
    return "no epoch" if epoch is None else f"epoch '{epoch}'"


class Claims(Generic[R]):
    """Who receives each partition through each consumer group, and the rules for one more.

    ``limit`` None allows any number. Receivers are compared by identity.
    """

    def __init__(self, limit: int | None = RECEIVERS_PER_PARTITION) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"at least one receiver per partition must be allowed, not {limit}")
        self.limit = limit
        self._claims: dict[tuple[str, str], list[Claim[R]]] = {}

    def attach(
        self, partition: str, group: str, receiver: R, *, epoch: int | None, identifier: str | None
    ) -> list[Claim[R]]:
        """Register ``receiver``; return the claims it stole (already removed), or raise :class:`Refused`.

        Nothing changes when it is refused.
        """
        claims = self._claims.setdefault((partition, group), [])
        owner = max((c.epoch for c in claims if c.epoch is not None), default=None)
        if owner is not None and (epoch is None or epoch < owner):
            raise Refused(
                STOLEN,
                f"Receiver with a higher epoch '{owner}' already exists on partition '{partition}' of consumer "
                f"group '{group}'. A new receiver with {_shown(epoch)} cannot be created.",
            )
        victims = [c for c in claims if epoch is not None and (c.epoch is None or c.epoch < epoch)]
        staying = [c for c in claims if c not in victims]
        if self.limit is not None and len(staying) >= self.limit:
            raise receivers_exceeded(self.limit, [c.identifier for c in staying])
        claims[:] = [*staying, Claim(receiver, epoch, identifier)]
        return victims

    @staticmethod
    def stolen_description(victim: Claim[R], epoch: int, partition: str, group: str) -> str:
        """What a receiver stolen by ``epoch`` is told."""
        return (
            f"New receiver with higher epoch of '{epoch}' is created hence current receiver with "
            f"{_shown(victim.epoch)} is getting disconnected (partition '{partition}', consumer group '{group}')."
        )

    def release(self, partition: str, group: str, receiver: R) -> bool:
        """Forget ``receiver``; True if it held a slot."""
        claims = self._claims.get((partition, group), [])
        kept = [c for c in claims if c.receiver is not receiver]
        released = len(kept) != len(claims)
        if kept:
            self._claims[(partition, group)] = kept
        else:
            self._claims.pop((partition, group), None)
        return released

    def holders(self, partition: str, group: str) -> list[Claim[R]]:
        """The receivers of ``partition`` through ``group``, in the order they attached."""
        return list(self._claims.get((partition, group), []))

    def count(self, partition: str | None = None) -> int:
        """How many receivers are attached (to ``partition``, over every group; or to anything)."""
        return sum(len(c) for (p, _), c in self._claims.items() if partition is None or p == partition)
