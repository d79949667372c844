"""The production source: one Azure Event Hubs partition, read with the official async SDK.

What it adds to the SDK is what a fold needs to stay exact:

* every read resumes right after the last sequence number it *delivered*
  (not after what the SDK had prefetched), so nothing is applied twice or
  skipped across reconnects; events at or below that number are dropped if
  the hub sends them again;
* lost connections (idle link closes, server restarts, refused connections)
  are retried with exponential backoff and jitter within a budget
  (:class:`~statepump.eventhubs.failures.Backoff`), each retry logged at WARNING and
  counted in :attr:`EventHubSource.reconnects`; after the budget, one
  :class:`~statepump.eventhubs.failures.HubUnreachable` naming host and hub;
* a first event after (re)connecting that is later than expected (retention
  moved the beginning) is delivered anyway and logged: the fold reports gaps;
* ``amqp:link:stolen`` (another reader with a higher owner level) is not
  fought over: the read raises :class:`~statepump.eventhubs.failures.PartitionStolen`;
* a pool of consumer groups (``consumer_group="web-{01..20}"``): the read starts
  at the group the node id picks and, when the hub refuses a sixth receiver on
  it (the receiver quota), moves on to the next; when every group refused it,
  :attr:`EventHubSource.reader_problem` says so in one line and the read tries
  them all again after a short backoff (:class:`~statepump.core.consumergroups.Pool`
  decides; this module only maps the SDK's error to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncGenerator, Coroutine, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient

from statepump.core.consumergroups import Pool, expand
from statepump.core.errors import ConfigError
from statepump.core.events import Event, PartitionBounds, canonical_properties, canonical_time
from statepump.eventhubs.connection import HubEndpoint
from statepump.eventhubs.failures import (
    Backoff,
    Failure,
    HubUnreachable,
    classify,
    first_line,
    receiver_limit,
    rejection,
)
from statepump.eventhubs.receiver import Broken, PartitionReceiver, Received

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

log = logging.getLogger("statepump.sources.eventhub")

#: The longest wait between two rounds over a pool whose groups are all full. A slot that a stopping
#: neighbour frees is then found within about this plus one round of tries (a refusal takes the SDK
#: about 1.5 s; a round tries every group at once), and a waiting node costs the hub one attach per
#: group this often.
FULL_POOL_RETRY_MAX = 2.0


def to_event(data: EventData, partition: str) -> Event:
    """Convert the SDK's event to the canonical form (see :class:`~statepump.core.events.Event`).

    Text property names; booleans as 0/1 and times as milliseconds, as Capture
    stores them; bytes that are UTF-8 as text (the SDK's decoder returns AMQP
    strings as bytes); the enqueued time aware, UTC, in milliseconds.

    >>> from datetime import datetime
    >>> e = to_event(EventData(b"{}"), "0")
    >>> (e.body, e.partition, e.enqueued_time.tzinfo is not None)
    (b'{}', '0', True)
    """
    properties = canonical_properties(data.properties)
    partition_key = data.partition_key
    enqueued = canonical_time(data.enqueued_time or datetime.fromtimestamp(0, UTC))
    return Event(
        partition=partition,
        sequence=data.sequence_number if data.sequence_number is not None else -1,
        offset=str(data.offset) if data.offset is not None else "",
        enqueued_time=enqueued,
        partition_key=partition_key.decode("utf-8", "replace") if isinstance(partition_key, bytes) else partition_key,
        properties=properties,
        body=_body(data),
    )


def _body(data: EventData) -> bytes:
    body: Any = data.body  # data sections (a generator of bytes), or an AMQP value from other producers
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    try:
        return b"".join(bytes(section) for section in body)
    except TypeError:
        return str(body).encode()


class EventHubSource:
    """One partition of an event hub, as a :class:`~statepump.sources.EventSource`.

    Connect with ``connection_string`` or with ``fully_qualified_namespace``
    (and ``credential``, default ``DefaultAzureCredential``). ``prefetch`` is
    the credit the SDK grants the hub (events in flight or buffered); reads
    go through :class:`~statepump.eventhubs.transport.PromptTransport`, so a live event
    is handed over as it arrives rather than at the SDK's next 50 ms poll.

    >>> src = EventHubSource(connection_string="Endpoint=sb://127.0.0.1:5672/;SharedAccessKeyName=k;"
    ...     "SharedAccessKey=v;EntityPath=hub;UseDevelopmentEmulator=true")
    >>> src.kind, src.reconnects, src.last_enqueued
    ('hub', 0, None)

    Reading::

        async for batch in src.read(after=-1):   # -1: from the start of the stream
            for event in batch:                  # [] after max_wait idle seconds, and once the hub kept the link
                ...
    """

    kind = "hub"

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        fully_qualified_namespace: str | None = None,
        credential: AsyncTokenCredential | None = None,
        eventhub: str | None = None,
        partition: str = "0",
        consumer_group: str | Sequence[str] = "$Default",
        node_id: str | None = None,
        owner_level: int | None = None,
        prefetch: int = 3000,
        max_batch_size: int = 1000,
        max_wait: float = 1.0,
        retry: Backoff | None = None,
        queue_batches: int = 4,
        recycle_after: int | None = 200_000,
    ) -> None:
        for name, value in (
            ("prefetch", prefetch),
            ("max_batch_size", max_batch_size),
            ("queue_batches", queue_batches),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be a positive integer, not {value!r}")
        if max_wait <= 0:
            raise ConfigError(f"max_wait: must be a positive number of seconds, not {max_wait!r}")
        if owner_level is not None and (not isinstance(owner_level, int) or owner_level < 0):
            raise ConfigError(f"owner_level: must be a non-negative integer, not {owner_level!r}")
        if not str(partition).strip():
            raise ConfigError("partition: empty")
        self.endpoint = HubEndpoint(
            connection_string=connection_string,
            fully_qualified_namespace=fully_qualified_namespace,
            credential=credential,
            eventhub=eventhub,
        )
        self.partition = str(partition).strip()
        groups = expand(consumer_group) if isinstance(consumer_group, str) else list(consumer_group)
        if not groups:
            raise ConfigError(f"consumer_group: names no consumer group ({consumer_group!r})")
        #: The stable name that picks this node's first group of the pool (default: the host name).
        self.node_id = node_id or socket.gethostname()
        #: The consumer groups this source may read through, and where it stands among them.
        self.pool = Pool.start(groups, self.node_id)
        #: The group a receiver holds now (``None`` while connecting or between sessions).
        self.holding: str | None = None
        #: Receivers the hub refused because their consumer group already had its readers on the partition.
        self.quota_refusals = 0
        #: Why the source cannot read now (every group of the pool full), or ``None``.
        self.reader_problem: str | None = None
        self.owner_level = owner_level
        self.prefetch = prefetch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.retry = retry or Backoff()
        self.queue_batches = queue_batches
        #: Events after which a receive session is closed and reopened at the same position. The SDK
        #: (azure-eventhub 5.15's pyamqp ReceiverLink) keeps the delivery tag of every event a link
        #: received in a set it never empties, about 75 bytes an event: at 1,000 events/s a sidecar
        #: grew 4.5 MB a minute (bench/soak.py). A fresh link starts with an empty set.
        if recycle_after is not None and recycle_after < 1:
            raise ValueError(f"recycle_after must be positive or None, not {recycle_after}")
        self.recycle_after = recycle_after
        #: Receive sessions replaced because of ``recycle_after``.
        self.recycles = 0
        #: Connections made again after a failure (by reads and by :meth:`bounds`).
        self.reconnects = 0
        #: Events the hub sent again at or below the last delivered number, and dropped.
        self.duplicates_dropped = 0
        self._last_enqueued: tuple[int, datetime | None] | None = None
        #: The hub's other partitions, which this source never reads (``None``: not asked yet).
        self.partitions_not_read: tuple[str, ...] | None = None
        self._management: EventHubConsumerClient | None = None
        self._receivers: set[PartitionReceiver] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"EventHubSource({self.endpoint.describe()!r}, partition={self.partition!r})"

    @property
    def consumer_group(self) -> str:
        """The consumer group held now, or the one tried next."""
        return self.holding or self.pool.current

    @property
    def receiving(self) -> bool:
        """Whether a receiver holds a slot now: until then a pump is not ready, even at the hub's last event."""
        return self.holding is not None

    @property
    def reader_status(self) -> dict[str, Any]:
        """The pool as ``Pump.status()`` shows it: the group held, the pool, the refusals."""
        return {
            "consumer_group": self.holding,
            "consumer_groups": len(self.pool.groups),
            "node_id": self.node_id,
            "quota_refusals": self.quota_refusals,
            "problem": self.reader_problem,
        }

    def _where(self) -> str:
        return f"partition {self.partition} of {self.endpoint.describe()}"

    # --- lag -----------------------------------------------------------------------------

    @property
    def last_enqueued(self) -> tuple[int, datetime | None] | None:
        return self._last_enqueued

    def _note_last(self, last: tuple[int, datetime | None]) -> None:
        if self._last_enqueued is None or last[0] >= self._last_enqueued[0]:
            self._last_enqueued = last

    # --- bounds --------------------------------------------------------------------------

    async def bounds(self) -> PartitionBounds:
        """The partition's beginning and last sequence numbers, from ``get_partition_properties``.

        Retried within the budget like a read; a never-written or fully
        expired partition comes back empty (``last == first - 1``).
        """
        self._check_open()
        failures = 0
        first_failure = 0.0
        while True:
            try:
                if self._management is None:
                    self._management = self.endpoint.consumer(self.consumer_group)
                props = await self._management.get_partition_properties(self.partition)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind = classify(exc)
                if kind is not Failure.TRANSIENT:
                    raise rejection(
                        self.endpoint, kind, exc, partition=self.partition, group=self.consumer_group
                    ) from None
                management, self._management = self._management, None
                if management is not None:
                    with contextlib.suppress(Exception):
                        await management.close()
                failures += 1
                if failures == 1:
                    first_failure = time.monotonic()
                delay = self._next_delay(failures, first_failure, exc)
                log.warning(
                    "%s: reading partition properties failed (%s); retry %d in %.2f s",
                    self._where(),
                    self.endpoint.redact(first_line(exc)),
                    failures,
                    delay,
                )
                await asyncio.sleep(delay)
                self.reconnects += 1
        if self.partitions_not_read is None:
            await self._check_partitions(self._management)
        last = int(props["last_enqueued_sequence_number"])
        first = int(props["beginning_sequence_number"])
        when = props.get("last_enqueued_time_utc")
        if props.get("is_empty"):
            # Fully expired or never written: nothing readable, the next event is last + 1.
            return PartitionBounds(max(last, -1) + 1, max(last, -1), None)
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self._note_last((last, when))
        return PartitionBounds(first, last, when)

    async def _check_partitions(self, management: EventHubConsumerClient) -> None:
        """Once: warn when the hub has partitions this source never reads (what is sent there is never applied).

        A configuration hub needs one partition, its one total order; with
        more, an event routed by partition key may land where no pump reads.
        """
        try:
            ids = [str(p) for p in await management.get_partition_ids()]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # only a warning is at stake: the next bounds() asks again
            log.debug("%s: partition ids not read: %s", self._where(), self.endpoint.redact(first_line(exc)))
            return
        self.partitions_not_read = tuple(p for p in ids if p != self.partition)
        if self.partitions_not_read:
            log.warning(
                "event hub %s has %d partitions; this pump reads only partition %s, so events sent to "
                "partition %s (by partition key, or by the hub's choice) are never applied",
                self.endpoint.eventhub,
                len(ids),
                self.partition,
                ", ".join(self.partitions_not_read),
            )

    def _next_delay(self, failures: int, first_failure: float, exc: BaseException) -> float:
        """The wait before the next retry, or :class:`HubUnreachable` when the budget is spent."""
        elapsed = time.monotonic() - first_failure
        if self.retry.exhausted(attempts=failures - 1, elapsed=elapsed):
            raise HubUnreachable(
                f"{self._where()} (consumer group {self.consumer_group}) is unreachable: "
                f"{failures} failed attempts in {elapsed:.1f} s (retry budget {self.retry.describe()}); "
                f"last error: {self.endpoint.redact(first_line(exc))}"
            ) from None
        delay = self.retry.delay(failures)
        if self.retry.max_seconds is not None:
            # The last retry happens at the end of the budget, not after it.
            delay = max(0.0, min(delay, self.retry.max_seconds - elapsed))
        return delay

    # --- reading -------------------------------------------------------------------------

    async def read(self, after: int) -> AsyncGenerator[Sequence[Event], None]:
        """Batches of events with sequence numbers greater than ``after`` (``-1``: from the start)."""
        self._check_open()
        position = after
        failures = 0
        first_failure = 0.0
        full_rounds = 0
        pending: tuple[PartitionReceiver, Received | Broken] | None = None
        while not self._closed:
            first: Received | Broken | None = None
            if pending is not None:
                (receiver, first), pending = pending, None
            else:
                receiver = self._receiver(self.pool.current, position)
                receiver.start()
            self._receivers.add(receiver)
            connected_at = time.monotonic()
            expect_first = True
            error: BaseException | None = None
            received = 0
            recycle = False
            try:
                while not self._closed:
                    item, first = (first, None) if first is not None else (await receiver.get(self.max_wait), None)
                    if self._closed:
                        return
                    if item is None:
                        if failures and time.monotonic() - connected_at >= self.retry.healthy_after:
                            failures = 0
                        yield []
                        continue
                    if isinstance(item, Broken):
                        error = item.error
                        break
                    if self.holding is None:
                        self._hold(receiver.consumer_group)
                        full_rounds = 0
                        if not item.events:
                            yield []  # held, at the hub's last event perhaps: the pump may be ready now
                            continue
                    if item.last_enqueued is not None:
                        self._note_last(item.last_enqueued)
                    events = self._fresh(item.events, position)
                    if not events:
                        continue
                    if events[0].sequence != position + 1:
                        log.warning(
                            "%s: expected event %d %s but the hub sent %d first; delivering it (the fold "
                            "reports the gap)",
                            self._where(),
                            position + 1,
                            "after connecting" if expect_first else "next",
                            events[0].sequence,
                        )
                    expect_first = False
                    position = events[-1].sequence
                    failures = 0
                    yield events
                    received += len(events)
                    if self.recycle_after is not None and received >= self.recycle_after:
                        recycle = True
                        break
            finally:
                self.holding = None
                self._receivers.discard(receiver)
                if recycle and self.owner_level is not None:
                    await receiver.close()  # the next session takes the same owner level: let this one go first
                elif error is None:
                    # A healthy SDK session takes about a second to stop: do not make the caller wait.
                    self._spawn(receiver.close())
                else:
                    await receiver.close()
            if recycle and not self._closed:
                self.recycles += 1
                log.debug(
                    "%s: new receive session after %d events, at sequence number %d", self._where(), received, position
                )
                continue
            if error is None or self._closed:
                return
            kind = classify(error)
            if kind is Failure.RECEIVER_QUOTA:
                self.quota_refusals += 1
                refused = receiver.consumer_group
                self.pool = self.pool.refused()
                limit = receiver_limit(error)
                if not self.pool.all_full:
                    log.info(
                        "%s: consumer group %s has %d readers; trying %s",
                        self._where(),
                        refused,
                        limit,
                        self.pool.current,
                    )
                    continue
                while not self._closed:
                    reason = self.pool.full_reason(self.partition, limit)
                    if self.reader_problem != reason:
                        # The pump says it, once, in the words of every line that ends readiness.
                        log.debug("%s: %s; trying again every %g s", self._where(), reason, FULL_POOL_RETRY_MAX)
                        self.reader_problem = reason
                        yield []  # the pump's readiness hears of it now
                    full_rounds += 1
                    async for beat in self._beats(min(self.retry.delay(full_rounds), FULL_POOL_RETRY_MAX)):
                        yield beat
                    probe = asyncio.get_running_loop().create_task(self._probe(position))
                    try:
                        while not probe.done():
                            await asyncio.wait({probe}, timeout=self.max_wait)
                            if not probe.done():
                                yield []
                    finally:
                        if not probe.done():  # the read was closed mid-round: no receiver of it may stay
                            probe.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await probe
                    pending = probe.result()
                    if pending is not None:
                        self.pool = self.pool.new_round()
                        break
                continue
            if kind is not Failure.TRANSIENT:
                raise rejection(self.endpoint, kind, error, partition=self.partition, group=self.consumer_group)
            if time.monotonic() - connected_at >= self.retry.healthy_after:
                failures = 0
            failures += 1
            if failures == 1:
                first_failure = time.monotonic()
            delay = self._next_delay(failures, first_failure, error)
            log.warning(
                "%s: connection lost (%s); reconnect attempt %d in %.2f s, resuming after sequence number %d",
                self._where(),
                self.endpoint.redact(first_line(error)),
                failures,
                delay,
                position,
            )
            async for beat in self._beats(delay):
                yield beat
            self.reconnects += 1

    async def _beats(self, delay: float) -> AsyncGenerator[Sequence[Event], None]:
        """Wait ``delay`` seconds, keeping the caller's idle beat (lag, readiness) going."""
        deadline = time.monotonic() + delay
        while (remaining := deadline - time.monotonic()) > 0 and not self._closed:
            await asyncio.sleep(min(remaining, self.max_wait))
            if remaining >= self.max_wait:
                yield []

    def _receiver(self, group: str, position: int) -> PartitionReceiver:
        return PartitionReceiver(
            self.endpoint,
            partition=self.partition,
            after=position,
            consumer_group=group,
            owner_level=self.owner_level,
            prefetch=self.prefetch,
            max_batch_size=self.max_batch_size,
            queue_batches=self.queue_batches,
        )

    def _hold(self, group: str) -> None:
        """A receiver on ``group`` was kept by the hub: it is the one this source reads through."""
        self.holding = group
        self.pool = self.pool.held(group)
        if self.reader_problem is not None:
            log.info("%s: reading through consumer group %s again", self._where(), group)
            self.reader_problem = None
        elif len(self.pool.groups) > 1:
            log.info("%s: reading through consumer group %s of %s", self._where(), group, self.pool.describe())

    async def _probe(self, position: int) -> tuple[PartitionReceiver, Received | Broken] | None:
        """One round over a full pool, every group at once: the first receiver the hub keeps (the
        others closed, so no slot stays taken), the first error other than the quota, or ``None``
        when every group refused again (each refusal counted)."""
        receivers = [self._receiver(group, position) for group in self.pool.round_order()]
        self._receivers.update(receivers)

        async def first_item(receiver: PartitionReceiver) -> Received | Broken:
            receiver.start()
            while (item := await receiver.get(self.max_wait)) is None and not self._closed:
                pass
            return item if item is not None else Broken(RuntimeError("closed"))

        tasks = {asyncio.get_running_loop().create_task(first_item(r)): r for r in receivers}
        winner: tuple[PartitionReceiver, Received | Broken] | None = None
        try:
            for done in asyncio.as_completed(tasks):
                item = await done
                receiver = next(r for t, r in tasks.items() if t.done() and t.result() is item)
                if isinstance(item, Broken) and classify(item.error) is Failure.RECEIVER_QUOTA:
                    self.quota_refusals += 1
                    continue
                winner = (receiver, item)
                break
        finally:
            for task in tasks:
                task.cancel()
            for loser in receivers:
                if winner is None or loser is not winner[0]:
                    self._receivers.discard(loser)
                    self._spawn(loser.close())  # about a second each: the winner reads meanwhile
        return winner

    def _fresh(self, batch: list[EventData], position: int) -> list[Event]:
        events = []
        for data in batch:
            sequence = data.sequence_number
            if sequence is not None and sequence <= position:
                self.duplicates_dropped += 1
                continue
            events.append(to_event(data, self.partition))
        if len(events) < len(batch):
            log.debug("%s: dropped %d events already delivered", self._where(), len(batch) - len(events))
        return events

    # --- lifecycle -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Stop every read, close the SDK clients; reads in progress end."""
        self._closed = True
        receivers = list(self._receivers)
        self._receivers.clear()
        await asyncio.gather(*(r.close() for r in receivers), return_exceptions=True)
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        if self._management is not None:
            with contextlib.suppress(Exception):
                await self._management.close()
            self._management = None
        await self.endpoint.close()
