"""The event hub the emulator serves: partitions, who reads them, who gets woken.

Shared by every connection of one emulator and used from its event loop only
(so no locks). Connections publish into partition logs and register
*receivers*; the hub decides partition placement, enforces owner levels
(epochs) and calls back the receivers of a partition when it grows, which is
what makes live tailing prompt.

Owner level, as the service does it, per partition and consumer group: a
receiver with an epoch takes the partition from every receiver with a lower
epoch or none (they are detached with ``amqp:link:stolen``); a receiver with a
lower epoch than the current owner, or with none while an owner exists, is
refused with the same condition.

>>> hub = Hub("hub", partitions=2)
>>> hub.choose_partition("user-42") == hub.choose_partition("user-42")
True
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from statepump.emulator.log import PartitionInfo, PartitionLog, Record
from statepump.emulator.messages import IncomingEvent

STOLEN = b"amqp:link:stolen"


class UnknownPartition(LookupError):
    """A partition id this hub does not have."""


class Refused(Exception):
    """A receiver may not attach; ``condition`` is the AMQP error to detach it with."""

    def __init__(self, condition: bytes, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


class Receiver(Protocol):
    """What the hub needs of a connection's consumer link."""

    name: str

    def steal(self, description: str) -> None:
        """Detach with ``amqp:link:stolen`` and ``description``."""


@dataclass(eq=False)
class _Claim:
    receiver: Receiver
    epoch: int | None


def now_ms() -> int:
    return int(time.time() * 1000)


class Hub:
    """An event hub with ``partitions`` partitions named ``"0"``, ``"1"``, ..."""

    def __init__(
        self,
        eventhub: str,
        *,
        partitions: int,
        data_dir: Path | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"an event hub needs at least one partition, not {partitions}")
        self.eventhub = eventhub
        self.partition_ids = [str(i) for i in range(partitions)]
        self.clock = clock
        self.created_at_ms = clock()
        self._logs = {pid: PartitionLog(pid, data_dir) for pid in self.partition_ids}
        self._listeners: dict[str, set[Callable[[], None]]] = {pid: set() for pid in self.partition_ids}
        self._claims: dict[tuple[str, str], list[_Claim]] = {}
        self._round_robin = 0

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

    def claim(self, partition: str, consumer_group: str, receiver: Receiver, epoch: int | None) -> None:
        """Register ``receiver``; steal from lower epochs or raise :class:`Refused`."""
        claims = self._claims.setdefault((partition, consumer_group), [])
        owner = max((c.epoch for c in claims if c.epoch is not None), default=None)
        if owner is not None and (epoch is None or epoch < owner):
            shown = "no epoch" if epoch is None else f"epoch '{epoch}'"
            raise Refused(
                STOLEN,
                f"Receiver with a higher epoch '{owner}' already exists on partition '{partition}' of consumer "
                f"group '{consumer_group}'. A new receiver with {shown} cannot be created.",
            )
        if epoch is not None:
            for victim in [c for c in claims if c.epoch is None or c.epoch < epoch]:
                claims.remove(victim)
                was = "no epoch" if victim.epoch is None else f"epoch '{victim.epoch}'"
                victim.receiver.steal(
                    f"New receiver with higher epoch of '{epoch}' is created hence current receiver with "
                    f"{was} is getting disconnected (partition '{partition}', consumer group '{consumer_group}')."
                )
        claims.append(_Claim(receiver, epoch))

    def receivers(self, partition: str) -> int:
        """How many receivers are attached to ``partition``, over all consumer groups."""
        return sum(len(claims) for (p, _), claims in self._claims.items() if p == partition)

    def release(self, partition: str, consumer_group: str, receiver: Receiver) -> None:
        claims = self._claims.get((partition, consumer_group), [])
        for claim in [c for c in claims if c.receiver is receiver]:
            claims.remove(claim)

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
