"""The event hub the emulator serves: partitions, who reads them, who gets woken.

Shared by every connection of one emulator and used from its event loop only
(so no locks). Connections publish into partition logs and register
*receivers*; the hub decides partition placement, enforces owner levels
(epochs) and calls back the receivers of a partition when it grows, which is
what makes live tailing prompt.

Who may receive is decided by :mod:`.quotas` (consumer groups that exist,
owner levels, at most five receivers per partition and group, connections
per namespace); the hub adds the service's tracking fields to its refusals.
With ``throughput_units``, :mod:`.throttle` buckets pace deliveries (and,
with ``throttle_ingress``, refuse sends) for the whole namespace.

>>> hub = Hub("hub", partitions=2)
>>> hub.choose_partition("user-42") == hub.choose_partition("user-42")
True
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from statepump.emulator import quotas, throttle
from statepump.emulator.log import PartitionInfo, PartitionLog, Record
from statepump.emulator.messages import IncomingEvent
from statepump.emulator.quotas import STOLEN, Refused

__all__ = ["STOLEN", "Hub", "Receiver", "Refused", "UnknownPartition", "now_ms"]


class UnknownPartition(LookupError):
    """A partition id this hub does not have."""


class Receiver(Protocol):
    """What the hub needs of a connection's consumer link."""

    name: str
    #: Where it is connected from, for the admin endpoint.
    peer: str

    def steal(self, description: str) -> None:
        """Detach with ``amqp:link:stolen`` and ``description``."""


def now_ms() -> int:
    return int(time.time() * 1000)


class Hub:
    """An event hub with ``partitions`` partitions named ``"0"``, ``"1"``, ..., in namespace ``namespace``.

    ``consumer_groups`` exist besides ``$Default``; ``receivers_per_partition``
    None lifts the limit of receivers; ``max_connections`` None allows any
    number; ``throughput_units`` None does not throttle.
    """

    def __init__(
        self,
        eventhub: str,
        *,
        partitions: int,
        data_dir: Path | None = None,
        clock: Callable[[], int] = now_ms,
        namespace: str = "emulator",
        consumer_groups: Iterable[str] = (),
        receivers_per_partition: int | None = quotas.RECEIVERS_PER_PARTITION,
        max_connections: int | None = None,
        throughput_units: int | None = None,
        throttle_ingress: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"an event hub needs at least one partition, not {partitions}")
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        if throughput_units is not None and throughput_units < 1:
            raise ValueError(f"throughput_units must be at least 1, not {throughput_units}")
        if throttle_ingress and throughput_units is None:
            raise ValueError("throttle_ingress needs throughput_units")
        self.eventhub = eventhub
        self.namespace = namespace
        self.groups = quotas.ConsumerGroups(consumer_groups)
        self.claims: quotas.Claims[Receiver] = quotas.Claims(receivers_per_partition)
        self.max_connections = max_connections
        self.connections = 0
        self.throughput_units = throughput_units
        self.egress = None if throughput_units is None else throttle.egress(throughput_units, monotonic())
        self.ingress = (
            None
            if not throttle_ingress or throughput_units is None
            else throttle.ingress(throughput_units, monotonic())
        )
        self.partition_ids = [str(i) for i in range(partitions)]
        self.clock = clock
        self.created_at_ms = clock()
        self._logs = {pid: PartitionLog(pid, data_dir) for pid in self.partition_ids}
        self._listeners: dict[str, set[Callable[[], None]]] = {pid: set() for pid in self.partition_ids}
        self._round_robin = 0
        # (partition, consumer group) -> [events, bytes] delivered to its receivers since the start.
        self._delivered: dict[tuple[str, str], list[int]] = {}

    def log(self, partition: str) -> PartitionLog:
        try:
            return self._logs[partition]
        except KeyError:
            raise UnknownPartition(
                f"The partition '{partition}' of event hub '{self.eventhub}' does not exist; "
                f"partitions are {', '.join(self.partition_ids)}."
            ) from None

    def info(self, partition: str) -> PartitionInfo:
        return self.log(partition).info()

    def choose_partition(self, partition_key: str | None) -> str:
        """Where an event without an explicit partition goes: a stable hash of its key, else round robin."""
        if partition_key is not None:
            return self.partition_ids[zlib.crc32(partition_key.encode("utf-8")) % len(self.partition_ids)]
        self._round_robin = (self._round_robin + 1) % len(self.partition_ids)
        return self.partition_ids[self._round_robin]

    def publish(self, partition: str, events: Sequence[IncomingEvent]) -> list[Record]:
        """Append ``events`` to ``partition`` and wake its receivers."""
        records = self.log(partition).append(events, self.clock())
        for wake in list(self._listeners[partition]):
            wake()
        return records

    def listen(self, partition: str, wake: Callable[[], None]) -> None:
        self._listeners[partition].add(wake)

    def unlisten(self, partition: str, wake: Callable[[], None]) -> None:
        self._listeners[partition].discard(wake)

    def trailer(self, description: str, group: str | None = None) -> str:
        """``description`` with the service's tracking fields for this hub (and ``group``)."""
        tracking = f"{uuid.uuid4()}_G0"
        when = datetime.fromtimestamp(self.clock() / 1000, UTC)
        return quotas.with_trailer(
            description, quotas.system_tracker(self.namespace, self.eventhub, group), tracking, when
        )

    def claim(
        self, partition: str, consumer_group: str, receiver: Receiver, epoch: int | None, identifier: str | None = None
    ) -> None:
        """Register ``receiver`` on ``consumer_group`` (any case); steal from lower epochs or raise :class:`Refused`."""
        group = self.groups.find(consumer_group)
        if group is None:
            refused = quotas.group_not_found(self.namespace, self.eventhub, consumer_group.lower())
            raise Refused(refused.condition, self.trailer(refused.description, consumer_group.lower()))
        try:
            victims = self.claims.attach(partition, group, receiver, epoch=epoch, identifier=identifier)
        except Refused as exc:
            if exc.condition == STOLEN:
                raise
            raise Refused(exc.condition, self.trailer(exc.description, consumer_group.lower())) from None
        for victim in victims:
            assert epoch is not None  # only an owner level steals
            victim.receiver.steal(quotas.Claims.stolen_description(victim, epoch, partition, consumer_group.lower()))

    def delivered(self, partition: str, consumer_group: str, events: int, nbytes: int) -> None:
        """Count ``events`` (``nbytes`` of AMQP messages) delivered to a receiver on ``consumer_group`` (any case).

        This is the hub's egress, what throughput units bill for, whichever receiver took it.
        """
        group = self.groups.find(consumer_group) or consumer_group.lower()
        counts = self._delivered.setdefault((partition, group), [0, 0])
        counts[0] += events
        counts[1] += nbytes

    def egress_counts(self, partition: str) -> dict[str, dict[str, int]]:
        """Events and bytes delivered on ``partition`` since the start, by consumer group (groups never read left out).

        >>> hub = Hub("hub", partitions=1)
        >>> hub.delivered("0", "$DEFAULT", 3, 300)
        >>> hub.delivered("0", "$Default", 1, 100)
        >>> hub.egress_counts("0")
        {'$Default': {'events': 4, 'bytes': 400}}
        """
        self.log(partition)  # an unknown partition raises
        return {
            group: {"events": counts[0], "bytes": counts[1]}
            for (pid, group), counts in sorted(self._delivered.items())
            if pid == partition
        }

    def receivers(self, partition: str) -> int:
        """How many receivers are attached to ``partition``, over all consumer groups."""
        return self.claims.count(partition)

    def release(self, partition: str, consumer_group: str, receiver: Receiver) -> None:
        group = self.groups.find(consumer_group)
        if group is not None:
            self.claims.release(partition, group, receiver)

    def create_consumer_group(self, name: str) -> tuple[str, bool]:
        """Create a consumer group (as the management plane does); return its name and whether it is new."""
        existed = self.groups.find(name) is not None
        return self.groups.add(name), not existed

    def admit_connection(self) -> Refused | None:
        """Count one more connection, or the refusal if the namespace has ``max_connections`` already."""
        refused = quotas.connections_exceeded(self.namespace, self.connections, self.max_connections)
        if refused is not None:
            return Refused(refused.condition, self.trailer(refused.description))
        self.connections += 1
        return None

    def connection_closed(self) -> None:
        """An admitted connection is gone."""
        self.connections = max(0, self.connections - 1)

    def receiver_table(self) -> dict[str, Any]:
        """Every partition's receivers by consumer group, and the limits (the admin endpoint's ``GET /receivers``)."""
        return {
            "receivers_per_partition": self.claims.limit,
            "consumer_groups": list(self.groups),
            "connections": self.connections,
            "max_connections": self.max_connections,
            "throughput_units": self.throughput_units,
            "egress": {pid: self.egress_counts(pid) for pid in self.partition_ids},
            "partitions": {
                pid: {
                    group: [
                        {"link": c.receiver.name, "identifier": c.identifier, "epoch": c.epoch, "peer": c.receiver.peer}
                        for c in self.claims.holders(pid, group)
                    ]
                    for group in self.groups
                }
                for pid in self.partition_ids
            },
        }

    def receiver_counts(self, partition: str) -> dict[str, int]:
        """How many receivers each consumer group has on ``partition``."""
        self.log(partition)  # an unknown partition raises
        return {group: len(self.claims.holders(partition, group)) for group in self.groups}

    def expire(self, partition: str, before_sequence: int) -> int:
        """Drop events of ``partition`` below ``before_sequence``, as retention would."""
        return self.log(partition).expire(before_sequence)

    def apply_retention(self, retention_seconds: float) -> int:
        """Drop events older than ``retention_seconds``; return how many went."""
        cutoff = self.clock() - int(retention_seconds * 1000)
        return sum(log.expire_before_time(cutoff) for log in self._logs.values())

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
