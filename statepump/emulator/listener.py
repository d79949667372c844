"""The asyncio shell: sockets in, :mod:`protocol` events out, :class:`Hub` behind.

One :class:`AmqpClient` (an ``asyncio.Protocol``) per TCP connection. It is
callback-driven rather than a task per connection: bytes are handled in
``data_received``, and a publish on any connection wakes the receivers of
that partition with ``loop.call_soon``, so a live event reaches a tailing
receiver within one loop iteration. Everything a client does wrong ends at
most its own connection: handlers catch and log, never raise into the loop.

Limits: a connection past the namespace's ``max_connections`` is answered
with Open then Close (``amqp:resource-limit-exceeded``); receivers are
admitted by the hub (:mod:`.quotas`) and released when their link detaches,
their session ends or their connection closes or drops. With throughput
units, deliveries wait for the namespace's egress bucket (:mod:`.throttle`):
each pass of one receiver takes at most its share of a tick, and a receiver
that finds the bucket empty looks again when it has refilled; with ingress
throttling, a send that finds the ingress bucket empty is refused with
``com.microsoft:server-busy``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from statepump.emulator import addresses, hub, management, messages, positions, protocol, quotas, throttle, wire
from statepump.emulator.protocol import Link

log = logging.getLogger("statepump.emulator")

RUNTIME_METRIC: Final = b"com.microsoft:enable-receiver-runtime-metric"
EPOCH: Final = b"com.microsoft:epoch"
NOT_FOUND: Final = b"amqp:not-found"
UNAUTHORIZED: Final = b"amqp:unauthorized-access"
#: Deliveries sent per pass before yielding the loop to other connections.
_PASS: Final = 2048


@dataclass(eq=False)
class _Consumer:
    """A link on which a client receives one partition."""

    client: AmqpClient
    link: Link
    name: str
    peer: str
    partition: str
    consumer_group: str
    next_sequence: int
    runtime_metric: bool

    def steal(self, description: str) -> None:
        self.client.detach_consumer(self, hub.STOLEN, description)


@dataclass(frozen=True, slots=True)
class _Producer:
    partition: str | None


@dataclass(frozen=True, slots=True)
class _RequestNode:
    node: str  # "$cbs" or "$management"


class AmqpClient(asyncio.Protocol):
    """One client connection."""

    def __init__(self, hub_: hub.Hub, clients: set[AmqpClient], *, key_name: str = "", key: str | None = None) -> None:
        self.hub = hub_
        self.clients = clients
        self.key_name = key_name
        self.key = key
        #: Without a key every connection may attach; with one, after its first accepted put-token.
        self.authorized = key is None
        self.conn = protocol.ServerConnection()
        self.transport: asyncio.Transport | None = None
        self.consumers: list[_Consumer] = []
        self._reply_links: dict[tuple[int, str], Link] = {}
        self._pump_scheduled = False
        self._paused = False
        self._heartbeat: asyncio.TimerHandle | None = None
        self._throttled: asyncio.TimerHandle | None = None
        self._admitted = False
        self.peer = "?"

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = str(transport.get_extra_info("peername"))
        self.clients.add(self)
        refused = self.hub.admit_connection()
        if refused is None:
            self._admitted = True
        else:
            log.warning("emulator: refusing connection from %s: %s", self.peer, refused.description)
            self.conn.refuse_open(refused.condition, refused.description)

    def data_received(self, data: bytes) -> None:
        try:
            for event in self.conn.receive_data(data):
                self._handle(event)
            self._pump()
        except Exception as exc:  # one bad connection must never take the server down
            log.exception("emulator: closing connection from %s after an internal error", self.peer)
            self.conn.close(b"amqp:internal-error", f"emulator internal error: {type(exc).__name__}: {exc}")
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.clients.discard(self)
        if self._admitted:
            self._admitted = False
            self.hub.connection_closed()
        for timer in (self._heartbeat, self._throttled):
            if timer is not None:
                timer.cancel()
        for consumer in list(self.consumers):
            self._forget(consumer)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._schedule_pump()

    # -- plumbing -------------------------------------------------------------

    def _flush(self) -> None:
        if self.transport is None:
            return
        data = self.conn.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)
        if self.conn.closed and not self.transport.is_closing():
            self.transport.close()

    def close(self, description: str) -> None:
        """Close with ``amqp:connection:forced`` (the emulator is stopping)."""
        self.conn.close(b"amqp:connection:forced", description)
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        try:
            self._pump()
        except Exception:
            log.exception("emulator: delivery to %s failed", self.peer)
            self.conn.close(b"amqp:internal-error", "emulator internal error while delivering")
        self._flush()

    def _start_heartbeat(self) -> None:
        timeout = self.conn.remote_idle_timeout_ms
        if timeout and self._heartbeat is None:
            interval = max(timeout / 2000, 0.05)

            def beat() -> None:
                self.conn.heartbeat()
                self._flush()
                if not self.conn.closed:
                    self._heartbeat = asyncio.get_running_loop().call_later(interval, beat)

            self._heartbeat = asyncio.get_running_loop().call_later(interval, beat)

    # -- events ---------------------------------------------------------------

    def _handle(self, event: protocol.Event) -> None:
        if isinstance(event, protocol.LinkAttached):
            self._start_heartbeat()
            self._on_attach(event.link)
        elif isinstance(event, protocol.MessageReceived):
            self._on_message(event)
        elif isinstance(event, protocol.CreditChanged):
            pass  # _pump runs after every batch of events
        elif isinstance(event, protocol.LinkDetached):
            if isinstance(event.link.context, _Consumer):
                self._forget(event.link.context)
        elif isinstance(event, protocol.ConnectionClosed):
            if event.error:
                log.warning("emulator: closed connection from %s: %s", self.peer, event.error)
            for consumer in list(self.consumers):
                self._forget(consumer)

    def _on_attach(self, link: Link) -> None:
        address = link.source_address if not link.receiving else link.target_address
        if address is None:
            self.conn.refuse_link(link, b"amqp:invalid-field", "the link's source or target has no address")
            return
        try:
            node = addresses.parse_address(address, self.hub.eventhub)
        except addresses.UnknownAddress as exc:
            self.conn.refuse_link(link, NOT_FOUND, str(exc))
            return
        if not self.authorized and not isinstance(node, addresses.Cbs | addresses.Management):
            self.conn.refuse_link(link, UNAUTHORIZED, "Unauthorized access: no valid token was put on this connection.")
            return
        if isinstance(node, addresses.Cbs | addresses.Management):
            name = "$cbs" if isinstance(node, addresses.Cbs) else "$management"
            link.context = _RequestNode(name)
            if not link.receiving:
                self._reply_links[(link.channel, name)] = link
            self.conn.accept_link(link)
        elif isinstance(node, addresses.Producer):
            if not link.receiving:
                self.conn.refuse_link(link, b"amqp:not-allowed", f"{address!r} is a send target, not a source")
                return
            if node.partition is not None:
                try:
                    self.hub.log(node.partition)
                except hub.UnknownPartition as exc:
                    self.conn.refuse_link(link, NOT_FOUND, str(exc))
                    return
            link.context = _Producer(node.partition)
            self.conn.accept_link(link, max_message_size=messages.MAX_MESSAGE_SIZE)
        else:
            self._attach_consumer(link, address, node)

    def _attach_consumer(self, link: Link, address: str, node: addresses.Consumer) -> None:
        if link.receiving:
            self.conn.refuse_link(link, b"amqp:not-allowed", f"{address!r} is a receive source, not a target")
            return
        try:
            partition_log = self.hub.log(node.partition)
        except hub.UnknownPartition as exc:
            self.conn.refuse_link(link, NOT_FOUND, str(exc))
            return
        selector = link.filters.get(positions.SELECTOR_FILTER)
        try:
            position = positions.parse_selector(_text(selector)) if selector is not None else positions.LATEST
            start = partition_log.start_sequence(position)
        except positions.InvalidPosition as exc:
            self.conn.refuse_link(link, b"com.microsoft:argument-out-of-range", str(exc))
            return
        epoch_value = link.properties.get(EPOCH)
        epoch = int(epoch_value) if isinstance(epoch_value, int) else None
        identifier = link.properties.get(quotas.RECEIVER_NAME)
        consumer = _Consumer(
            self,
            link,
            link.name,
            self.peer,
            node.partition,
            node.consumer_group,
            start,
            RUNTIME_METRIC in link.desired_capabilities,
        )
        try:
            self.hub.claim(
                node.partition, node.consumer_group, consumer, epoch, None if identifier is None else _text(identifier)
            )
        except hub.Refused as exc:
            self.conn.refuse_link(link, exc.condition, exc.description)
            return
        link.context = consumer
        self.consumers.append(consumer)
        self.hub.listen(node.partition, self._schedule_pump)
        self.conn.accept_link(link, offered_capabilities=[RUNTIME_METRIC] if consumer.runtime_metric else None)

    def detach_consumer(self, consumer: _Consumer, condition: bytes, description: str) -> None:
        self.conn.detach(consumer.link, condition, description)
        self._forget(consumer)
        self._flush()

    def _forget(self, consumer: _Consumer) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
            self.hub.release(consumer.partition, consumer.consumer_group, consumer)
            if not any(c.partition == consumer.partition for c in self.consumers):
                self.hub.unlisten(consumer.partition, self._schedule_pump)

    def _on_message(self, event: protocol.MessageReceived) -> None:
        context = event.link.context
        if isinstance(context, _Producer):
            self._on_send(event, context)
        elif isinstance(context, _RequestNode):
            self._on_request(event, context)
        else:
            self.conn.settle(event.link, event.delivery_id, (b"amqp:not-allowed", "this link does not take messages"))

    def _on_send(self, event: protocol.MessageReceived, producer: _Producer) -> None:
        bucket = self.hub.ingress
        now = asyncio.get_running_loop().time()
        if bucket is not None and not bucket.ready(now):
            self.conn.settle(
                event.link, event.delivery_id, (throttle.SERVER_BUSY, self.hub.trailer(throttle.SERVER_BUSY_TEXT))
            )
            return
        if len(event.payload) > messages.MAX_MESSAGE_SIZE:
            self.conn.settle(
                event.link,
                event.delivery_id,
                (
                    b"amqp:link:message-size-exceeded",
                    f"The received message (delivery-id:{event.delivery_id}, size:{len(event.payload)} bytes) "
                    f"exceeds the limit ({messages.MAX_MESSAGE_SIZE} bytes) currently allowed on the link.",
                ),
            )
            return
        try:
            events = [messages.parse_event(raw) for raw in messages.unbatch(event.payload, event.message_format)]
        except (messages.MalformedMessage, ValueError, IndexError, TypeError) as exc:
            self.conn.settle(event.link, event.delivery_id, (b"amqp:decode-error", f"malformed event: {exc}"))
            return
        if bucket is not None:
            bucket.take(now, events=len(events), nbytes=len(event.payload))
        if producer.partition is not None:
            self.hub.publish(producer.partition, events)
        else:
            # A batch goes to one partition, chosen by its first event's key.
            self.hub.publish(self.hub.choose_partition(events[0].partition_key), events)
        self.conn.settle(event.link, event.delivery_id)

    def _on_request(self, event: protocol.MessageReceived, node: _RequestNode) -> None:
        try:
            request: Any = wire.decode_message(event.payload)
        except Exception as exc:
            self.conn.settle(event.link, event.delivery_id, (b"amqp:decode-error", f"malformed request: {exc}"))
            return
        self.conn.settle(event.link, event.delivery_id)
        if node.node == "$cbs":
            reply = management.cbs_reply(request, key_name=self.key_name, key=self.key, now=time.time())
            self.authorized = self.authorized or management.cbs_accepted(reply)
        elif not self.authorized:
            reply = management.unauthorized_reply(request)
        else:
            reply = management.management_reply(
                request,
                eventhub=self.hub.eventhub,
                created_at_ms=self.hub.created_at_ms,
                partition_ids=self.hub.partition_ids,
                partition_info=self.hub.info,
            )
        reply_link = self._reply_links.get((event.link.channel, node.node))
        if reply_link is None or reply_link.detached:
            log.warning("emulator: %s request from %s without a reply link; dropped", node.node, self.peer)
            return
        # Replies bypass credit accounting only if the client gave none yet;
        # the SDK always grants credit before it sends a request.
        self.conn.send_message(reply_link, reply)

    # -- delivery -------------------------------------------------------------

    def _pump(self) -> None:
        """Send every receiver what its credit (and the egress bucket) allows; reschedule if a pass was not enough."""
        if self._paused or self.conn.closed:
            return
        again = False
        bucket = self.hub.egress
        now = asyncio.get_running_loop().time()
        share = (_PASS, 2**62) if bucket is None else bucket.share(self.hub.claims.count())
        for consumer in list(self.consumers):
            allowed = self.conn.sendable(consumer.link)
            if allowed <= 0:
                continue
            if bucket is not None and not bucket.ready(now):
                self._wait_for_egress(bucket.wait(now))
                return
            partition_log = self.hub.log(consumer.partition)
            records = partition_log.read(consumer.next_sequence, min(allowed, _PASS, share[0]))
            if not records:
                continue
            metric = b""
            if consumer.runtime_metric:
                info = partition_log.info()
                metric = messages.runtime_metric_section(
                    info.last_sequence, info.last_offset, info.last_enqueued_ms, self.hub.clock()
                )
            sent_bytes = 0
            for record in records:
                payload = record.payload + metric if metric else record.payload
                self.conn.send_message(consumer.link, payload)
                consumer.next_sequence = record.sequence + 1
                sent_bytes += len(payload)
                if sent_bytes >= share[1]:
                    break
            delivered = consumer.next_sequence - records[0].sequence
            self.hub.delivered(consumer.partition, consumer.consumer_group, delivered, sent_bytes)
            if bucket is not None:
                bucket.take(now, events=delivered, nbytes=sent_bytes)
            if consumer.next_sequence <= records[-1].sequence or len(records) == min(_PASS, share[0]):
                again = True
        if again:
            self._schedule_pump()

    def _wait_for_egress(self, seconds: float) -> None:
        """Look again when the namespace's egress bucket has refilled (at least a tick from now)."""
        if self._throttled is None:

            def resume() -> None:
                self._throttled = None
                self._schedule_pump()

            self._throttled = asyncio.get_running_loop().call_later(max(seconds, throttle.TICK), resume)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
