"""Talking to Azure Event Hubs: where the hub is, how to retry, one receive session, and sending.

Shared by :class:`statepump.sources.eventhubs.EventHubSource` (the pump's
production source) and the ``statepump send`` command:

* :func:`parse_connection_string` checks a connection string and never puts
  its key in an error; :func:`redact` scrubs keys and SAS signatures from any
  text that may reach a log line.
* :class:`HubEndpoint` builds the SDK's async clients from a connection
  string, or from a fully qualified namespace and an Azure credential
  (``DefaultAzureCredential`` when none is given: managed identity in
  production).
* :class:`Backoff` is the retry policy (pure); :func:`classify` sorts SDK
  errors into "retry" and "report".
* :class:`PartitionReceiver` is one receive session on one partition: the
  SDK's callback feeds a bounded queue, so a slow reader stops the SDK from
  fetching more (backpressure) instead of buffering without limit.
* :func:`send_events` sends bodies and returns the sequence numbers the hub
  gave them, read back from the hub.

Every client is built with the SDK's own retries off (``retry_total=0``):
retrying is done here, where it can be counted, logged and bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azure.eventhub import EventData, EventDataBatch
from azure.eventhub._pyamqp.error import AMQPLinkError, ErrorCondition
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient, PartitionContext
from azure.eventhub.aio._transport._pyamqp_transport_async import PyamqpTransportAsync
from azure.eventhub.exceptions import AuthenticationError, EventHubError

from statepump.errors import ConfigError, ServiceUnavailable, StatepumpError

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

log = logging.getLogger("statepump.eventhubs")

#: The property :func:`send_events` tags each event with, to find it again.
SEND_ID_PROPERTY = "statepump-send-id"


# --- errors ----------------------------------------------------------------------------


class HubError(StatepumpError):
    """Event Hubs refused or failed an operation; the message names host and hub, never a key."""


class HubUnreachable(HubError, ServiceUnavailable):
    """The hub could not be reached within the retry budget."""


class PartitionStolen(HubError):
    """Another reader with a higher owner level (epoch) took the partition (``amqp:link:stolen``)."""


class HubRejected(HubError):
    """The hub answered, but no: unknown hub or partition, a position past the end, bad credentials."""


class EventTooLarge(HubError, ValueError):
    """An event does not fit in one batch (the service's 1 MB limit); nothing was sent."""


# --- secrets ---------------------------------------------------------------------------

_SECRET_PATTERNS = (
    re.compile(r"(?i)(SharedAccessKey\s*=\s*)[^;\s'\"]+"),
    re.compile(r"(?i)(SharedAccessSignature\s*=\s*)[^;'\"]+"),
    re.compile(r"(?i)(sig=)[^&\s;'\"]+"),
    re.compile(r"(?i)(AccountKey\s*=\s*)[^;\s'\"]+"),
)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with connection-string keys, SAS signatures and the given ``secrets`` replaced by ``***``.

    >>> redact("Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=abc123=;EntityPath=h")
    'Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=***;EntityPath=h'
    >>> redact("failed with token xyz", "xyz")
    'failed with token ***'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


@dataclass(frozen=True, slots=True)
class ConnectionString:
    """The parts of an Event Hubs connection string; the key stays out of ``repr``.

    >>> cs = parse_connection_string("Endpoint=sb://ns.servicebus.windows.net/;"
    ...     "SharedAccessKeyName=listen;SharedAccessKey=s3cret;EntityPath=orders")
    >>> cs.host, cs.eventhub, cs.emulator
    ('ns.servicebus.windows.net', 'orders', False)
    >>> "s3cret" in repr(cs)
    False
    """

    host: str
    port: int | None
    eventhub: str | None
    key_name: str | None
    emulator: bool
    secret: str = field(repr=False)


def parse_connection_string(text: str) -> ConnectionString:
    """Check and split a connection string; a :class:`ConfigError` names the missing part, never the key.

    >>> parse_connection_string("Endpoint=sb://h/;SharedAccessKey=x")
    Traceback (most recent call last):
    ...
    statepump.errors.ConfigError: connection_string: SharedAccessKey needs SharedAccessKeyName
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("connection_string: empty")
    parts: dict[str, str] = {}
    for item in text.strip().split(";"):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            # Only the name: the item may be (part of) a key pasted without its name.
            raise ConfigError("connection_string: every part must be Name=Value (one part has no '=')")
        parts[name.strip().lower()] = value.strip()
    endpoint = parts.get("endpoint")
    if not endpoint:
        raise ConfigError("connection_string: Endpoint=sb://<namespace>/ is missing")
    url = urlsplit(endpoint)
    if url.scheme.lower() not in ("sb", "amqps", "amqp") or not url.hostname:
        raise ConfigError("connection_string: Endpoint must look like sb://<namespace host>/")
    try:
        port = url.port
    except ValueError:
        raise ConfigError("connection_string: Endpoint has an invalid port") from None
    key_name = parts.get("sharedaccesskeyname")
    key = parts.get("sharedaccesskey")
    sas = parts.get("sharedaccesssignature")
    if sas is None and key is None:
        raise ConfigError("connection_string: SharedAccessKeyName/SharedAccessKey or SharedAccessSignature is missing")
    if key is not None and not key_name:
        raise ConfigError("connection_string: SharedAccessKey needs SharedAccessKeyName")
    if key is not None and not key:
        raise ConfigError("connection_string: SharedAccessKey is empty")
    emulator = parts.get("usedevelopmentemulator", "").lower() == "true"
    return ConnectionString(
        host=url.hostname,
        port=port,
        eventhub=parts.get("entitypath") or None,
        key_name=key_name,
        emulator=emulator,
        secret=key if key is not None else (sas or ""),
    )


# --- where the hub is --------------------------------------------------------------------


class HubEndpoint:
    """One event hub and how to authenticate to it; builds the SDK's async clients.

    Give ``connection_string`` (its ``EntityPath`` or ``eventhub`` names the
    hub), or ``fully_qualified_namespace`` and ``eventhub`` with an optional
    ``credential`` (default: ``azure.identity.aio.DefaultAzureCredential``,
    created on first use and closed by :meth:`close`).

    >>> hub = HubEndpoint(connection_string="Endpoint=sb://ns.servicebus.windows.net/;"
    ...     "SharedAccessKeyName=k;SharedAccessKey=v", eventhub="orders")
    >>> hub.describe()
    'ns.servicebus.windows.net/orders'
    """

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        fully_qualified_namespace: str | None = None,
        credential: AsyncTokenCredential | None = None,
        eventhub: str | None = None,
    ) -> None:
        if connection_string and fully_qualified_namespace:
            raise ConfigError("give connection_string or namespace (with a credential), not both")
        self._connection_string = connection_string
        self._credential = credential
        self._owns_credential = False
        if connection_string:
            parsed = parse_connection_string(connection_string)
            if parsed.eventhub and eventhub and parsed.eventhub != eventhub:
                raise ConfigError(
                    f"eventhub: {eventhub!r} differs from the connection string's EntityPath {parsed.eventhub!r}"
                )
            name = eventhub or parsed.eventhub
            self.host = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
            self._secret: str | None = parsed.secret
        elif fully_qualified_namespace:
            namespace = fully_qualified_namespace.strip()
            host = urlsplit(namespace).hostname if "://" in namespace else namespace.rstrip("/")
            if not host or "/" in host or ";" in host:
                raise ConfigError("namespace: expected a fully qualified host name such as ns.servicebus.windows.net")
            self.host = host
            name = eventhub
            self._secret = None
        else:
            raise ConfigError("no event hub configured: give connection_string, or namespace with eventhub")
        if not name:
            raise ConfigError("eventhub: not given, and the connection string has no EntityPath")
        self.eventhub: str = name

    def describe(self) -> str:
        """``host/hub``, safe to log."""
        return f"{self.host}/{self.eventhub}"

    def redact(self, text: str) -> str:
        """:func:`redact` with this endpoint's own key as well."""
        return redact(text, self._secret)

    def _token_credential(self) -> AsyncTokenCredential:
        if self._credential is None:
            from azure.identity.aio import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
            self._owns_credential = True
        return self._credential

    def consumer(self, consumer_group: str = "$Default", **kwargs: Any) -> EventHubConsumerClient:
        """A new async consumer client (SDK retries off unless ``retry_total`` is given)."""
        kwargs.setdefault("retry_total", 0)
        if self._connection_string:
            return EventHubConsumerClient.from_connection_string(
                self._connection_string, consumer_group=consumer_group, eventhub_name=self.eventhub, **kwargs
            )
        return EventHubConsumerClient(self.host, self.eventhub, consumer_group, self._token_credential(), **kwargs)

    def producer(self, **kwargs: Any) -> EventHubProducerClient:
        """A new async producer client."""
        if self._connection_string:
            return EventHubProducerClient.from_connection_string(
                self._connection_string, eventhub_name=self.eventhub, **kwargs
            )
        return EventHubProducerClient(self.host, self.eventhub, self._token_credential(), **kwargs)

    async def close(self) -> None:
        """Close the credential if this endpoint created it."""
        if self._owns_credential and self._credential is not None:
            close = getattr(self._credential, "close", None)
            if close is not None:
                await close()
            self._credential = None
            self._owns_credential = False


# --- retrying ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """How to retry a lost connection: exponential delays with jitter, within a budget.

    The delay before retry ``n`` (1, 2, ...) is ``initial * 2**(n-1)`` capped
    at ``maximum``, minus up to ``jitter`` of itself at random (so readers
    that lost the same hub do not come back in step). The budget is spent
    when ``max_attempts`` retries failed in a row or ``max_seconds`` passed
    since the first failure of the row; ``None`` means no limit of that kind.

    >>> policy = Backoff(initial=1.0, maximum=8.0, jitter=0.0)
    >>> [policy.delay(n) for n in (1, 2, 3, 4, 5)]
    [1.0, 2.0, 4.0, 8.0, 8.0]
    >>> Backoff(max_attempts=3).exhausted(attempts=3, elapsed=0.0)
    True
    """

    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5
    max_attempts: int | None = None
    max_seconds: float | None = 300.0
    #: A connection that stayed up this long (or delivered an event) ends a row of failures.
    healthy_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ConfigError(f"retry: need 0 < initial <= maximum, got {self.initial} and {self.maximum}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigError(f"retry: jitter is a fraction between 0 and 1, got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ConfigError(f"retry: max_attempts must be >= 0, got {self.max_attempts}")
        if self.max_seconds is not None and self.max_seconds < 0:
            raise ConfigError(f"retry: max_seconds must be >= 0, got {self.max_seconds}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (from 1)."""
        base: float = min(self.maximum, self.initial * 2.0 ** min(max(attempt - 1, 0), 62))
        if self.jitter:
            base -= base * self.jitter * (rng or _RNG).random()
        return base

    def exhausted(self, *, attempts: int, elapsed: float) -> bool:
        """Whether no retry may follow ``attempts`` failures in a row spanning ``elapsed`` seconds."""
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        return self.max_seconds is not None and elapsed >= self.max_seconds

    def describe(self) -> str:
        limits = []
        if self.max_attempts is not None:
            limits.append(f"{self.max_attempts} attempts")
        if self.max_seconds is not None:
            limits.append(f"{self.max_seconds:g} s")
        return " or ".join(limits) or "no limit"


_RNG = random.Random()  # noqa: S311 - jitter, not cryptography


class Failure(enum.Enum):
    """What an SDK error means for a reader."""

    TRANSIENT = "transient"  # connection refused or lost, timeout, idle close: retry
    STOLEN = "stolen"  # a higher owner level took the partition: report
    NOT_FOUND = "not found"  # unknown hub, partition or consumer group: report
    POSITION_AHEAD = "position ahead"  # a start past the partition's last event: report
    AUTH = "unauthorized"  # bad key or token, missing role: report


def classify(exc: BaseException) -> Failure:
    """Sort an error from the SDK.

    >>> classify(ConnectionResetError())
    <Failure.TRANSIENT: 'transient'>
    >>> classify(EventHubError("New receiver with higher epoch... Error condition: amqp:link:stolen"))
    <Failure.STOLEN: 'stolen'>
    """
    if isinstance(exc, AuthenticationError):
        return Failure.AUTH
    text = str(exc)
    condition = getattr(exc, "error", None) or ""
    if "link:stolen" in condition or "amqp:link:stolen" in text:
        return Failure.STOLEN
    if "argument-out-of-range" in condition or "argument-out-of-range" in text:
        return Failure.POSITION_AHEAD
    if "unauthorized-access" in text or "Status code: 401" in text:
        return Failure.AUTH
    if isinstance(exc, ValueError) and "partition id" in text:
        return Failure.NOT_FOUND  # the SDK's own check against the hub's partition ids
    if "NotFound" in text or "amqp:not-found" in text or "Status code: 404" in text:
        return Failure.NOT_FOUND
    return Failure.TRANSIENT


def first_line(exc: BaseException) -> str:
    """The first line of an SDK error (its later lines mostly repeat it), type included, and the
    service's reason where the SDK puts it on a line of its own (a refused token says why there).

    >>> first_line(ConnectionResetError("peer reset\\nError condition: socket"))
    'ConnectionResetError: peer reset'
    >>> first_line(ValueError("CBS Token authentication failed.\\nStatus code: 401\\nDescription: InvalidSignature"))
    'ValueError: CBS Token authentication failed. InvalidSignature'
    """
    lines = [line.strip() for line in str(exc).strip().splitlines()]
    text = lines[0] if lines else ""
    reason = next((line.removeprefix("Description: ") for line in lines[1:] if line.startswith("Description: ")), "")
    if reason and reason not in text:
        text = f"{text} {reason}"
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def rejection(endpoint: HubEndpoint, kind: Failure, exc: BaseException, *, partition: str, group: str) -> HubError:
    """The error to report for a non-transient failure."""
    where = f"partition {partition} of {endpoint.describe()} (consumer group {group})"
    detail = endpoint.redact(first_line(exc))
    if kind is Failure.STOLEN:
        return PartitionStolen(
            f"another reader with a higher owner level took {where}; this reader stops rather than "
            f"fight for it ({detail})"
        )
    messages = {
        Failure.NOT_FOUND: f"{where}: the hub, partition or consumer group does not exist",
        Failure.POSITION_AHEAD: f"{where}: the start position is past the partition's last event",
        Failure.AUTH: f"{where}: not authorized (check the key or the identity's Event Hubs role)",
    }
    return HubRejected(f"{messages.get(kind, where)} ({detail})")


# --- prompt receiving ------------------------------------------------------------------------

#: A receive pass that read nothing and returned sooner than this did not wait on the socket (the link
#: is still attaching, or the connection is closing): pause before the next one instead of spinning.
_PASS_WAITED = 0.02
#: That pause, and the longest wait for the callback to make room in a full buffer (the SDK's own interval).
_RECEIVE_PAUSE = 0.05
#: Without ``max_wait_time``, the callback task still wakes this often to see whether the receive stopped.
_STOP_CHECK = 1.0
#: Loop turns without a new message after which the messages at hand are a batch. Reading one frame the
#: socket already holds takes the SDK about three turns.
_QUIET_TURNS = 4


def batch_complete(*, quiet_turns: int, buffered: int, max_batch_size: int) -> bool:
    """Whether the callback task should take the buffer now rather than give the reader another turn.

    Woken by the first message of a burst, the callback task yields the event
    loop while the receive task keeps adding messages the socket already
    holds: a catch-up then comes in batches of ``max_batch_size`` (not one
    callback per event), and a live event waits a few loop turns, not 50 ms.

    >>> batch_complete(quiet_turns=1, buffered=10, max_batch_size=1000)
    False
    >>> batch_complete(quiet_turns=4, buffered=10, max_batch_size=1000)
    True
    >>> batch_complete(quiet_turns=0, buffered=1000, max_batch_size=1000)
    True
    """
    return quiet_turns >= _QUIET_TURNS or buffered >= max_batch_size


def receive_pause(*, arrived: bool, waited: float) -> float:
    """Seconds to pause after one receive pass: none if it read events or waited on the socket.

    The SDK pauses 50 ms after every pass, so an event reaching the socket
    during the pause waits for it; a pass only needs a pause when it neither
    read nor blocked, which would otherwise make the receive loop spin.

    >>> receive_pause(arrived=True, waited=0.0), receive_pause(arrived=False, waited=0.2)
    (0.0, 0.0)
    >>> receive_pause(arrived=False, waited=0.001)
    0.05
    """
    return 0.0 if arrived or waited >= _PASS_WAITED else _RECEIVE_PAUSE


class Arrivals:
    """The receive side of one SDK consumer: a count of received messages and two wake-ups."""

    __slots__ = ("count", "drained", "event", "full")

    def __init__(self) -> None:
        self.count = 0
        #: Times the receive task found the buffer full and waited for room instead of reading.
        self.full = 0
        #: Set when a message lands in the consumer's buffer (or the receive stops): wakes the callback task.
        self.event = asyncio.Event()
        #: Set when the callback task took messages out of the buffer: wakes a receive task waiting for room.
        self.drained = asyncio.Event()


def arrivals(consumer: Any) -> Arrivals:
    """The :class:`Arrivals` of an SDK ``EventHubConsumer``, created on first use.

    >>> class Consumer: ...
    >>> consumer = Consumer()
    >>> arrivals(consumer) is arrivals(consumer), arrivals(consumer).count
    (True, 0)
    """
    found: Arrivals | None = getattr(consumer, "_statepump_arrivals", None)
    if found is None:
        found = Arrivals()
        consumer._statepump_arrivals = found
    return found


class PromptTransport(PyamqpTransportAsync):
    """The SDK's async pyamqp transport, with a receive path driven by arrivals instead of 50 ms polls.

    The SDK (azure-eventhub 5.15) runs two tasks per receive: one reads
    frames into the consumer's buffer and pauses 50 ms after each pass; the
    other hands the buffer to the callback and, whenever it finds it empty,
    sleeps 50 ms. A live event waited 0-50 ms in the buffer (about 28 ms at
    the median at 1,000 events/s), and another 50 ms when it reached the
    socket during a pause. Here the buffer's append wakes the callback task,
    and the receive task pauses only when a pass neither read nor waited on
    the socket (:func:`receive_pause`) or the buffer is full (it waits for
    the callback to take a batch, at most the SDK's 50 ms). What the tasks
    do with the buffer, credit, errors and retries is the SDK's, but for one
    thing: a consumer whose connection fails to open raises, where the SDK
    ends its receive quietly and its event processor at once starts another
    (so every reconnect goes through the reader's own budget and count).

    Install it on a consumer client with :func:`prompt_receive`;
    ``tests/eventhubs/test_transport_contract.py`` pins the SDK internals it
    relies on.

    >>> issubclass(PromptTransport, PyamqpTransportAsync)
    True
    """

    @staticmethod
    async def message_received_async(consumer: Any, message: Any) -> None:
        await PyamqpTransportAsync.message_received_async(consumer, message)
        signals = arrivals(consumer)
        signals.count += 1
        signals.event.set()

    @staticmethod
    async def _callback_task(consumer: Any, batch: bool, max_batch_size: int, max_wait_time: float | None) -> None:
        signals = arrivals(consumer)
        while consumer._callback_task_run:
            # Cleared before the buffer is read, so an append after the read is never missed.
            signals.event.clear()
            if consumer._message_buffer:
                await PromptTransport._gather(consumer, signals, max_batch_size)
            async with consumer._message_buffer_lock:
                count = min(max_batch_size, len(consumer._message_buffer))
                events = [consumer._next_message_in_buffer() for _ in range(count)]
            now = time.time()
            if events:
                signals.drained.set()
                await consumer._on_event_received(events if batch else events[0])
                consumer._last_callback_called_time = now
                continue
            wait = _STOP_CHECK
            if max_wait_time:
                idle = now - consumer._last_callback_called_time
                if idle > max_wait_time:
                    await consumer._on_event_received([] if batch else None)
                    consumer._last_callback_called_time = now
                    idle = 0.0
                wait = max_wait_time - idle
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signals.event.wait(), max(wait, 0.001))

    @staticmethod
    async def _gather(consumer: Any, signals: Arrivals, max_batch_size: int) -> None:
        quiet, seen = 0, signals.count
        while not batch_complete(
            quiet_turns=quiet, buffered=len(consumer._message_buffer), max_batch_size=max_batch_size
        ):
            await asyncio.sleep(0)
            quiet = quiet + 1 if signals.count == seen else 0
            seen = signals.count

    @staticmethod
    async def _receive_task(consumer: Any, max_batch_size: int) -> None:
        signals = arrivals(consumer)
        max_retries = consumer._client._config.max_retries
        retries = 0
        running = True
        try:
            while retries <= max_retries and running and consumer._callback_task_run:
                if consumer.closed:
                    # Closed by its owner while the callback still holds messages: _open() would
                    # connect it again, on every pass, for as long as the callback stays blocked.
                    return
                try:
                    opening = not consumer.running
                    await consumer._open()
                    opening = False
                    async with consumer._message_buffer_lock:
                        buffered = len(consumer._message_buffer)
                    if buffered > max_batch_size:
                        # The callback is behind (backpressure): no more reading until it takes a batch.
                        signals.full += 1
                        signals.drained.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(signals.drained.wait(), _RECEIVE_PAUSE)
                        continue
                    before, started = signals.count, time.monotonic()
                    running = await consumer._handler.do_work_async(batch=consumer._prefetch)
                    pause = receive_pause(arrived=signals.count != before, waited=time.monotonic() - started)
                    # Even with no pause, yield: the callback task takes what this pass read.
                    await asyncio.sleep(pause)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # The SDK's own handling: no retry without the optional dependency, a stolen link is
                    # final, a closed consumer ends quietly, else retry from the last event. One change:
                    # the SDK takes "not running" for "closed by its owner", but a consumer whose
                    # connection failed to open is not running either. Ending quietly then made the
                    # SDK's event processor call receive() again at once: a hub that went away while a
                    # session opened was retried every few milliseconds, silently, outside any budget.
                    if isinstance(exc, ImportError):
                        raise
                    if isinstance(exc, AMQPLinkError) and exc.condition == ErrorCondition.LinkStolen:
                        raise await consumer._handle_exception(exc) from None
                    if consumer.closed or (not consumer.running and not opening):
                        return
                    if consumer._last_received_event:
                        consumer._offset = consumer._last_received_event.offset
                    last_exception = await consumer._handle_exception(exc)
                    retries += 1
                    if retries > max_retries:
                        log.debug("%r: retries exhausted (%r)", consumer._name, last_exception)
                        raise last_exception from None
        finally:
            consumer._callback_task_run = False
            signals.event.set()  # the callback task sees the stop now, not at its next timeout

    @staticmethod
    async def receive_messages_async(
        consumer: Any, batch: bool, max_batch_size: int, max_wait_time: float | None
    ) -> None:
        consumer._callback_task_run = True
        consumer._last_callback_called_time = time.time()
        tasks = [
            asyncio.create_task(PromptTransport._callback_task(consumer, batch, max_batch_size, max_wait_time)),
            asyncio.create_task(PromptTransport._receive_task(consumer, max_batch_size)),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            consumer._callback_task_run = False
            arrivals(consumer).event.set()
            for task in tasks:
                if not task.done():
                    await asyncio.wait([task], timeout=1)


def prompt_receive(client: EventHubConsumerClient) -> EventHubConsumerClient:
    """Make ``client``'s receives use :class:`PromptTransport`; returns ``client``.

    Only the SDK's pyamqp transport is replaced (the optional uamqp one has
    its own receive loop); anything else is a :class:`TypeError` naming it.

    Example::

        client = prompt_receive(endpoint.consumer())
    """
    current = client._amqp_transport
    if current is not PyamqpTransportAsync and current is not PromptTransport:
        raise TypeError(f"prompt_receive: unexpected SDK transport {current!r} (azure-eventhub changed?)")
    client._amqp_transport = PromptTransport
    return client


# --- one receive session -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """SDK events delivered by one callback, and the partition's newest event as the hub reported it."""

    events: list[EventData]
    last_enqueued: tuple[int, datetime | None] | None


class ReceiverClosed(Exception):
    """The session was closed by its owner (the item a waiting reader wakes up with)."""


class _QuietOwnClose(logging.Filter):
    """Drop the SDK's WARNING about the error :meth:`PartitionReceiver.close` raises on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, ReceiverClosed) for arg in args)


logging.getLogger("azure.eventhub.aio._eventprocessor.event_processor").addFilter(_QuietOwnClose())


@dataclass(frozen=True, slots=True)
class Broken:
    """The session ended with ``error``; no more items follow."""

    error: BaseException


class PartitionReceiver:
    """One ``receive_batch`` session on one partition, read as an async queue.

    The SDK calls back with lists of up to ``max_batch_size`` events; the
    callback waits while ``queue_batches`` lists are unread, which stops the
    SDK from granting the hub more credit: memory stays within about
    ``prefetch + (queue_batches + 1) * max_batch_size`` events. An error ends
    the session with a :class:`Broken` item after the events received before it.

    >>> PartitionReceiver.__name__
    'PartitionReceiver'
    """

    def __init__(
        self,
        endpoint: HubEndpoint,
        *,
        partition: str,
        after: int,
        consumer_group: str = "$Default",
        owner_level: int | None = None,
        prefetch: int = 3000,
        max_batch_size: int = 1000,
        queue_batches: int = 4,
        track_last_enqueued: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.partition = partition
        self.after = after
        self.consumer_group = consumer_group
        self._queue: asyncio.Queue[Received | Broken] = asyncio.Queue(maxsize=queue_batches)
        self._client = prompt_receive(endpoint.consumer(consumer_group))
        self._options: dict[str, Any] = {
            "partition_id": partition,
            # An int is a sequence number to the SDK; the string "-1" is its documented "start of stream".
            "starting_position": after if after >= 0 else "-1",
            "starting_position_inclusive": False,
            "owner_level": owner_level,
            "prefetch": prefetch,
            "max_batch_size": max_batch_size,
            "track_last_enqueued_event_properties": track_last_enqueued,
            # Idle callbacks are ignored, but they let close() end the SDK's task promptly.
            "max_wait_time": 0.1,
        }
        self._task: asyncio.Task[None] | None = None
        self._broken = False
        self._closing = False
        self._started = False  # the SDK got as far as a partition task (whose end close() awaits)
        self._ended = asyncio.Event()

    def start(self) -> None:
        """Start receiving in the background."""
        self._task = asyncio.create_task(self._run(), name=f"eventhubs-receive-{self.partition}")

    async def _run(self) -> None:
        try:
            await self._client.receive_batch(
                self._on_batch,
                on_error=self._on_error,
                on_partition_initialize=self._on_initialize,
                on_partition_close=self._on_close,
                **self._options,
            )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the reader, who decides
            await self._break(exc)

    async def _on_batch(self, context: PartitionContext, events: list[EventData]) -> None:
        if self._closing:
            # Ending the SDK's partition task from inside is what lets its processor stop at
            # once; stopped from outside, it polls its tasks once a second.
            raise ReceiverClosed("the receive session was closed")
        if not events or self._broken:
            return
        props = context.last_enqueued_event_properties
        last = None
        if props and props.get("sequence_number") is not None:
            last = (int(props["sequence_number"]), props.get("enqueued_time"))
        await self._queue.put(Received(events, last))

    async def _on_initialize(self, context: PartitionContext) -> None:
        self._started = True

    async def _on_close(self, context: PartitionContext, reason: object) -> None:
        self._ended.set()

    async def _on_error(self, context: PartitionContext | None, error: Exception) -> None:
        await self._break(error)

    async def _break(self, error: BaseException) -> None:
        if self._broken:
            return
        self._broken = True
        await self._queue.put(Broken(error))

    async def get(self, timeout: float) -> Received | Broken | None:
        """The next item, or ``None`` after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def close(self) -> None:
        """Stop the SDK's receive and close its connection."""
        self._broken = True
        # Unblock a callback waiting for room, or it would hold the SDK's task; and wake a reader.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(Broken(ReceiverClosed("the receive session was closed")))
        self._closing = True
        if self._task is not None:
            # Give the next callback the chance to end the partition task, then cancel: the
            # SDK's close() alone would wait out a 30 s load-balancing sleep.
            if self._started:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ended.wait(), 0.5)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._client.close()


# --- sending ---------------------------------------------------------------------------------


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
    tag = uuid.uuid4().hex
    producer = endpoint.producer(retry_total=3)
    try:
        async with asyncio.timeout(timeout):
            async with producer:
                candidates = [partition] if partition is not None else await producer.get_partition_ids()
                batches, before = await asyncio.gather(
                    _pack(producer, bodies, tag, partition, partition_key, properties or {}),
                    _last_sequences(producer, candidates),
                )
                for batch in batches:
                    await producer.send_batch(batch)
                after = await _last_sequences(producer, candidates)
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
    finally:
        await endpoint.close()
    missing = [i for i in range(len(bodies)) if i not in found]
    if missing:
        raise HubError(
            f"send to {endpoint.describe()}: {len(missing)} of {len(bodies)} sent events were not found when "
            f"reading back (first missing: item {missing[0]}); retention may have dropped them"
        )
    return [found[i] for i in range(len(bodies))]


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


async def _last_sequences(client: EventHubProducerClient, partitions: Sequence[str]) -> dict[str, int]:
    props = await asyncio.gather(*(client.get_partition_properties(p) for p in partitions))
    return {p: int(one["last_enqueued_sequence_number"]) for p, one in zip(partitions, props, strict=True)}


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
