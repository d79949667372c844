"""Sending events: :func:`send_events` returns the sequence numbers the hub gave them.

Each event is tagged with :data:`SEND_ID_PROPERTY`; when other writers
interleave, the numbers are found by reading the events back from the hub.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from azure.eventhub import EventData, EventDataBatch
from azure.eventhub.aio import EventHubProducerClient
from azure.eventhub.exceptions import EventHubError

from statepump.core.errors import ConfigError

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
from statepump.eventhubs.connection import HubEndpoint
from statepump.eventhubs.failures import EventTooLarge, HubError, first_line
from statepump.eventhubs.receiver import Broken, PartitionReceiver
from statepump.eventhubs.transport import ManagementLink

log = logging.getLogger("statepump.eventhubs")


#: The property :func:`send_events` tags each event with, to find it again.
SEND_ID_PROPERTY = "statepump-send-id"


async def send_events(
    *,
    bodies: Sequence[bytes],
    connection_string: str | None = None,
    fully_qualified_namespace: str | None = None,
    credential: AsyncTokenCredential | None = None,
    eventhub: str | None = None,
    partition: str | None = None,
    partition_key: str | None = None,
    properties: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> list[int]:
    """Send ``bodies`` in as few batches as fit and return the sequence numbers the hub gave them.

    Every event carries ``properties`` and a ``statepump-send-id`` tag; the
    numbers are read back from the hub's partitions, in the order of
    ``bodies``. With neither ``partition`` nor ``partition_key`` the hub
    picks the partitions, and the numbers are each in their own partition.
    An event too big for a batch raises :class:`EventTooLarge` before
    anything is sent.

    Example::

        numbers = await send_events(connection_string=cs, bodies=[b'{"op":"set","path":"a","value":1}'],
                                    partition="0")
    """
    if partition is not None and partition_key is not None:
        raise ConfigError("send: give partition or partition_key, not both")
    bad = [i for i, body in enumerate(bodies) if not isinstance(body, bytes | bytearray)]
    if bad:
        raise ConfigError(f"send: bodies must be bytes (item {bad[0]} is not)")
    if not bodies:
        return []
    endpoint = HubEndpoint(
        connection_string=connection_string,
        fully_qualified_namespace=fully_qualified_namespace,
        credential=credential,
        eventhub=eventhub,
    )
    producer = endpoint.producer(retry_total=3)
    try:
        async with producer:
            return await send_on(
                producer,
                endpoint,
                bodies,
                partition=partition,
                partition_key=partition_key,
                properties=properties,
                timeout=timeout,
            )
    finally:
        await endpoint.close()


async def send_on(
    producer: EventHubProducerClient,
    endpoint: HubEndpoint,
    bodies: Sequence[bytes],
    *,
    partition: str | None = None,
    partition_key: str | None = None,
    properties: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    management: ManagementLink | None = None,
) -> list[int]:
    """:func:`send_events` on an open ``producer`` of ``endpoint`` (``statepump.Publisher`` keeps one open).

    The partitions' counts before and after are read on ``management``, a
    management link of ``producer`` held open (``Publisher`` keeps one for
    its life); without it, one is opened for this send and closed after.
    """
    if not bodies:
        return []
    link = management if management is not None else ManagementLink(producer)
    try:
        return await _send_counted(
            producer, endpoint, link, bodies, partition, partition_key, properties or {}, timeout
        )
    finally:
        if management is None:
            await link.close()


async def _send_counted(
    producer: EventHubProducerClient,
    endpoint: HubEndpoint,
    management: ManagementLink,
    bodies: Sequence[bytes],
    partition: str | None,
    partition_key: str | None,
    properties: Mapping[str, str],
    timeout: float,
) -> list[int]:
    """:func:`send_on`'s work: the counts before, the batches, the counts after (or a read-back)."""
    tag = uuid.uuid4().hex
    try:
        async with asyncio.timeout(timeout):
            candidates = [partition] if partition is not None else await producer.get_partition_ids()
            batches, before = await asyncio.gather(
                _pack(producer, bodies, tag, partition, partition_key, properties),
                _last_sequences(management, candidates),
            )
            for batch in batches:
                await producer.send_batch(batch)
            after = await _last_sequences(management, candidates)
            found = sequence_numbers_by_count(len(bodies), before, after)
            if found is None:
                # Other producers wrote to the same partitions meanwhile: find ours by their tag.
                log.debug("send to %s: other writers interleaved; reading the events back", endpoint.describe())
                found = {}
                for p in candidates:
                    if after[p] > before[p]:
                        found.update(await _read_back(endpoint, p, before[p], after[p], tag))
                    if len(found) == len(bodies):
                        break
    except TimeoutError:
        raise HubError(f"send to {endpoint.describe()}: no answer within {timeout:g} s") from None
    except EventHubError as exc:
        raise HubError(f"send to {endpoint.describe()} failed: {endpoint.redact(first_line(exc))}") from None
    missing = [i for i in range(len(bodies)) if i not in found]
    if missing:
        raise HubError(
            f"send to {endpoint.describe()}: {len(missing)} of {len(bodies)} sent events were not found when "
            f"reading back (first missing: item {missing[0]}); retention may have dropped them"
        )
    return [found[i] for i in range(len(bodies))]


async def partition_ids(
    *,
    connection_string: str | None = None,
    fully_qualified_namespace: str | None = None,
    credential: AsyncTokenCredential | None = None,
    eventhub: str | None = None,
    timeout: float = 60.0,
) -> list[str]:
    """The hub's partition ids (``statepump send`` checks where a partition key may route)."""
    endpoint = HubEndpoint(
        connection_string=connection_string,
        fully_qualified_namespace=fully_qualified_namespace,
        credential=credential,
        eventhub=eventhub,
    )
    producer = endpoint.producer(retry_total=3)
    try:
        async with asyncio.timeout(timeout), producer:
            return [str(p) for p in await producer.get_partition_ids()]
    except TimeoutError:
        raise HubError(f"{endpoint.describe()}: no answer within {timeout:g} s") from None
    except EventHubError as exc:
        raise HubError(f"{endpoint.describe()}: {endpoint.redact(first_line(exc))}") from None
    finally:
        await endpoint.close()


async def _pack(
    producer: EventHubProducerClient,
    bodies: Sequence[bytes],
    tag: str,
    partition: str | None,
    partition_key: str | None,
    properties: Mapping[str, str],
) -> list[EventDataBatch]:
    """All the batches, built before any is sent, so an oversize event sends nothing."""
    batches: list[EventDataBatch] = []
    current: EventDataBatch | None = None
    for index, body in enumerate(bodies):
        event = EventData(bytes(body))
        tagged: dict[str | bytes, Any] = {k: v for k, v in properties.items()}
        tagged[SEND_ID_PROPERTY] = f"{tag}:{index}"
        event.properties = tagged
        for fresh in (False, True):
            if current is None or fresh:
                current = await producer.create_batch(partition_id=partition, partition_key=partition_key)
                batches.append(current)
            try:
                current.add(event)
                break
            except ValueError:
                if fresh or len(current) == 0:
                    limit = current.max_size_in_bytes
                    raise EventTooLarge(
                        f"send: event {index} ({len(body)} bytes of body) is larger than the hub's "
                        f"{limit} byte limit; nothing was sent"
                    ) from None
    return batches


async def _last_sequences(link: ManagementLink, partitions: Sequence[str]) -> dict[str, int]:
    numbers = [await link.last_enqueued_sequence_number(p) for p in partitions]  # one link: one request at a time
    return dict(zip(partitions, numbers, strict=True))


def sequence_numbers_by_count(count: int, before: Mapping[str, int], after: Mapping[str, int]) -> dict[int, int] | None:
    """Index -> sequence number when the hub's counts alone prove which numbers a send got, else ``None``.

    Sends are acknowledged only once stored, and batches are sent one after
    the other, so when exactly ``count`` events appeared in one partition
    between the two readings and none elsewhere, they are the sent ones, in order.

    >>> sequence_numbers_by_count(3, {"0": 9, "1": 4}, {"0": 12, "1": 4})
    {0: 10, 1: 11, 2: 12}
    >>> sequence_numbers_by_count(3, {"0": 9}, {"0": 13}) is None   # someone else wrote too
    True
    """
    grown = {p: after[p] - before[p] for p in before if after[p] != before[p]}
    if len(grown) != 1:
        return None
    ((partition, added),) = grown.items()
    if added != count:
        return None
    return {i: before[partition] + 1 + i for i in range(count)}


async def _read_back(endpoint: HubEndpoint, partition: str, after: int, through: int, tag: str) -> dict[int, int]:
    """Index in the send -> sequence number, for tagged events of ``partition`` in (after, through]."""
    found: dict[int, int] = {}
    receiver = PartitionReceiver(endpoint, partition=partition, after=after, track_last_enqueued=False)
    receiver.start()
    try:
        position = after
        while position < through:
            item = await receiver.get(timeout=30.0)
            if item is None:
                raise HubError(f"send: reading back partition {partition} of {endpoint.describe()} stalled")
            if isinstance(item, Broken):
                raise HubError(
                    f"send: reading back partition {partition} of {endpoint.describe()} failed: "
                    f"{endpoint.redact(first_line(item.error))}"
                )
            for event in item.events:
                position = max(position, event.sequence_number or 0)
                props = event.properties or {}
                value = props.get(SEND_ID_PROPERTY.encode(), props.get(SEND_ID_PROPERTY))
                text = value.decode() if isinstance(value, bytes) else str(value or "")
                owner, _, index = text.partition(":")
                if owner == tag and event.sequence_number is not None:
                    found[int(index)] = event.sequence_number
    finally:
        await receiver.close()
    return found
