"""Prompt receiving and quick sends: the one module that relies on ``azure-eventhub``'s private API.

The async SDK hands received events to its callback from a task that polls
the consumer's buffer every 50 ms. :class:`PromptTransport` is the SDK's
pyamqp transport with that task woken by each arrival instead, installed on
the pump's consumers only (:func:`prompt_receive`).

The SDK also pauses 50 ms after each frame of a link's handshake (450 ms a
link), and opens a connection for each ``get_partition_properties``.
:class:`QuickOpenTransport` (:func:`quick_open`, on every producer client
``HubEndpoint`` makes) opens links without those pauses, and
:class:`ManagementLink` keeps one management link open, so a send learns its
sequence numbers in two round trips instead of two connections.

What it relies on is private to the SDK, so ``azure-eventhub`` is pinned to
5.15.x: ``PyamqpTransportAsync`` and the receive loop it runs, the consumer's
buffer, callback task and bookkeeping attributes (``_message_buffer``,
``_callback_task_run``, ``_last_received_event``, ...), the client's
``_amqp_transport``, ``AMQPLinkError``, and the event processor's logger name;
for sends, the pyamqp clients' ``client_ready_async``, the producer client's
``_producers``, ``_create_auth_async``, ``_address`` and ``_config``, and the
management request's constants.
``tests/eventhubs/test_transport_contract.py`` fails on any change to them:
when a new SDK release comes out, this file and that test are the ones to
open. No other module outside the emulator imports ``azure.eventhub._*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from azure.eventhub._constants import MGMT_PARTITION_OPERATION, MGMT_STATUS_CODE, MGMT_STATUS_DESC, READ_OPERATION
from azure.eventhub._pyamqp.aio import AMQPClientAsync, SendClientAsync
from azure.eventhub._pyamqp.error import AMQPLinkError, ErrorCondition
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient
from azure.eventhub.aio._transport._pyamqp_transport_async import PyamqpTransportAsync
from azure.eventhub.exceptions import EventHubError

log = logging.getLogger("statepump.eventhubs")


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

    __slots__ = ("count", "drained", "event", "full", "held")

    def __init__(self) -> None:
        self.count = 0
        #: The link is attached and a receive pass after that raised nothing: the service kept it (a
        #: refused receiver, e.g. the sixth of a consumer group, is attached and at once detached).
        #: ``None`` until a receive task tracks it (then idle callbacks are not held back).
        self.held: bool | None = None
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
            # The first idle callback says "attached and kept" (PartitionReceiver.held): none before.
            if max_wait_time and signals.held is not False:
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
                    arrived, waited = signals.count != before, time.monotonic() - started
                    if running and not signals.held and (arrived or waited >= _PASS_WAITED):
                        # Events came, or a pass blocked on an empty socket: whatever the service sent
                        # after the attach (a refusal's detach follows it at once) has been read.
                        signals.held = True
                        signals.event.set()  # the callback task tells the reader now, not at its next timeout
                    pause = receive_pause(arrived=arrived, waited=waited)
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
        arrivals(consumer).held = False  # no idle callback before the link is kept (PartitionReceiver.held)
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


#: The SDK's event processor logs each error that ends a receive at WARNING under this (private) name.
_PROCESSOR_LOGGER = "azure.eventhub.aio._eventprocessor.event_processor"


class _QuietAbout(logging.Filter):
    """Drops the processor's records that carry an error of one type (and with ``text``) among their arguments."""

    def __init__(self, error: type[BaseException], text: str | None = None) -> None:
        super().__init__()
        self.error = error
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, self.error) and (self.text is None or self.text in str(arg)) for arg in args)


def quiet_processor_warnings_about(text: str) -> None:
    """Keep the SDK's event processor from logging a WARNING for an error whose text has ``text``: an
    answer the reader handles and logs in its own words (the receiver quota of a consumer group)."""
    logging.getLogger(_PROCESSOR_LOGGER).addFilter(_QuietAbout(Exception, text))


def quiet_processor_warnings(error: type[BaseException]) -> None:
    """Keep the SDK's event processor from logging a WARNING for ``error``, an error raised on purpose.

    :class:`~statepump.eventhubs.receiver.PartitionReceiver` ends its session by
    raising :class:`~statepump.eventhubs.receiver.ReceiverClosed` in the SDK's
    callback; the processor would log that as a failure.
    """
    logging.getLogger(_PROCESSOR_LOGGER).addFilter(_QuietAbout(error))


# --- quick opens and one held management link (the send path) --------------------------------


class _ReadyWithoutPauses:
    """A pyamqp client whose readiness check runs the handshake to its end instead of one frame per call.

    The SDK's callers loop ``while not await client.client_ready_async():
    await asyncio.sleep(0.05)``, and each call handles one frame of the
    handshake (open, begin, the CBS link's attach, the token's put and its
    answer, the link's attach): about nine frames, so 450 ms before the
    first message on any network, where the frames themselves take a few
    round trips. Each pass here waits on the socket (``listen`` blocks for
    the socket's read timeout), so the loop never spins.
    """

    async def client_ready_async(self) -> bool:
        ready: bool = await super().client_ready_async()  # type: ignore[misc]
        while not ready:
            await asyncio.sleep(0)
            ready = await super().client_ready_async()  # type: ignore[misc]
        return True


class _QuickSendClient(_ReadyWithoutPauses, SendClientAsync):
    pass


class _QuickManagementClient(_ReadyWithoutPauses, AMQPClientAsync):
    pass


#: The SDK's transport, for its helpers that have no type hints.
_SDK: Any = PyamqpTransportAsync


class QuickOpenTransport(PyamqpTransportAsync):
    """The SDK's async pyamqp transport, with producer and management links that open without 50 ms pauses.

    Only the clients it creates differ (:class:`_ReadyWithoutPauses`); what
    they send, and the SDK's retries, are the SDK's. Install it on a producer
    client with :func:`quick_open`.

    >>> issubclass(QuickOpenTransport, PyamqpTransportAsync)
    True
    """

    @staticmethod
    def create_send_client(**kwargs: Any) -> Any:
        client = PyamqpTransportAsync.create_send_client(**kwargs)
        client.__class__ = _QuickSendClient  # the SDK's client as it made it, with the one method above
        return client

    @staticmethod
    def create_mgmt_client(address: Any, mgmt_auth: Any, config: Any) -> Any:
        client = _SDK.create_mgmt_client(address, mgmt_auth, config)
        client.__class__ = _QuickManagementClient
        return client


def quick_open(client: EventHubProducerClient) -> EventHubProducerClient:
    """Make ``client``'s links open without the SDK's 50 ms pause per handshake frame; returns ``client``.

    Call it before the client's first operation: the producer link the
    client made in its constructor gets the transport too. Anything but the
    SDK's pyamqp transport is a :class:`TypeError` naming it.

    Example::

        producer = quick_open(endpoint.producer())
    """
    current = client._amqp_transport
    if current is not PyamqpTransportAsync and current is not QuickOpenTransport:
        raise TypeError(f"quick_open: unexpected SDK transport {current!r} (azure-eventhub changed?)")
    client._amqp_transport = QuickOpenTransport
    for producer in client._producers.values():
        if producer is not None:
            producer._amqp_transport = QuickOpenTransport
    return client


class ManagementLink:
    """One management link of a producer client, held open: a partition's properties cost a round trip.

    The SDK's ``get_partition_properties`` opens a connection, authenticates
    and attaches a management link for every call, and closes it after.
    This one opens them once (with the producer client's credential and
    settings) and asks on the same link again; when the link fails (the
    service closes idle connections, a token expires), it is opened afresh
    and the request made once more, and a second failure is the SDK's
    ``EventHubError`` for it.

    Example::

        link = ManagementLink(producer)
        last = await link.last_enqueued_sequence_number("0")
        await link.close()
    """

    def __init__(self, client: EventHubProducerClient) -> None:
        self._client = client
        self._auth: Any = None
        self._mgmt: Any = None
        self._lock = asyncio.Lock()

    async def _open(self) -> Any:
        client = self._client
        auth = await client._create_auth_async()
        mgmt = QuickOpenTransport.create_mgmt_client(client._address, mgmt_auth=auth, config=client._config)
        try:
            await mgmt.open_async()
            await mgmt.client_ready_async()
        except BaseException:
            await mgmt.close_async()
            raise
        self._auth, self._mgmt = auth, mgmt
        return mgmt

    async def _ask(self, partition: str) -> dict[bytes, Any]:
        mgmt = self._mgmt if self._mgmt is not None else await self._open()
        message = _SDK.build_message(
            application_properties={
                "name": self._client.eventhub_name,
                "partition": partition,
                # Put on each request, as the SDK does: the service checks it against the entity.
                "security_token": await _SDK.get_updated_token_async(self._auth),
            }
        )
        status, description, response = await QuickOpenTransport.mgmt_client_request_async(
            mgmt,
            message,
            operation=READ_OPERATION,
            operation_type=MGMT_PARTITION_OPERATION,
            status_code_field=MGMT_STATUS_CODE,
            description_fields=MGMT_STATUS_DESC,
        )
        if int(status) >= 400:
            text = description.decode("utf-8") if isinstance(description, bytes) else description
            raise _SDK.get_error(int(status), text)
        value: dict[bytes, Any] = response.value
        return value

    async def last_enqueued_sequence_number(self, partition: str) -> int:
        """The partition's last enqueued sequence number (-1 when it is empty), as ``get_partition_properties``."""
        async with self._lock:
            for attempt in (1, 2):
                try:
                    info = await self._ask(partition)
                    break
                except EventHubError:
                    raise  # the service answered: asking again gets the same answer
                except Exception as exc:
                    await self.close()
                    if attempt == 2:
                        raise await _SDK._handle_exception_async(exc, self._client, is_consumer=True) from None
        return int(info[b"last_enqueued_sequence_number"])

    async def close(self) -> None:
        mgmt, self._mgmt, self._auth = self._mgmt, None, None
        if mgmt is not None:
            with contextlib.suppress(Exception):
                await mgmt.close_async()
