"""The server side of one AMQP 1.0 connection, without I/O (in the style of h11).

Bytes go in with :meth:`ServerConnection.receive_data`, which returns the
*events* the emulator must act on; bytes to send accumulate and are taken
with :meth:`ServerConnection.data_to_send`. Nothing here knows about sockets,
partitions or Event Hubs: the server decides what a link means and answers
through the methods below (accept or refuse a link, settle a message, send a
message, detach, close).

State machine, per AMQP 1.0 part 2, reduced to what a server needs:

Connection
    ``HEADER`` (expect a protocol header) -> SASL header: answer it with the
    mechanisms (ANONYMOUS, PLAIN) -> ``SASL`` (expect sasl-init; answer with
    outcome ok) -> ``HEADER`` again (expect the AMQP header) -> ``OPEN``
    (expect Open; answer with our Open, every field present; after
    :meth:`ServerConnection.refuse_open`, with our Open and then a Close with
    the error, which is how AMQP refuses a connection) -> ``OPENED``
    (sessions) -> Close received or sent -> ``CLOSED``. A client may skip SASL
    and send the AMQP header first. Anything else closes the connection with
    a framing or decode error naming what was wrong.

Session (per channel)
    Begin received -> we answer Begin with ``remote-channel`` set and a large
    incoming window, on the same channel number (our channel numbers mirror
    the client's, so no mapping table). End received -> we answer End and
    forget the channel; later frames on it are ignored, because the SDK's
    management client sends Detach *after* End.
    Transfer ids: we count the client's transfers against our incoming window
    and re-open it with a session Flow when half is used; our own transfers
    stop when the client's incoming window (from its Begin and Flows) is used.

Link (per handle in a session; our handle mirrors the client's)
    Attach received -> event :class:`LinkAttached`; the server calls
    :meth:`accept_link` (our Attach, plus credit if we receive) or
    :meth:`refuse_link` (an Attach echoing the terminus then a Detach with
    the error, which is how AMQP refuses a link). A client Detach is answered
    and reported as :class:`LinkDetached`. :meth:`detach` is a server-side
    detach with an error (``amqp:link:stolen``...); the client's answering
    Detach is then ignored.
    When we receive (the client sends): transfers are reassembled (``more``)
    and reported as :class:`MessageReceived`; credit is topped up when half
    is used.
    When we send (the client receives): credit is ``delivery-count +
    link-credit`` from the client's last Flow minus our delivery count;
    :class:`CreditChanged` tells the server to look at :meth:`sendable`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from statepump.emulator import wire
from statepump.emulator.wire import performatives as p

OPEN: Final = 0x10
BEGIN: Final = 0x11
ATTACH: Final = 0x12
FLOW: Final = 0x13
TRANSFER: Final = 0x14
DISPOSITION: Final = 0x15
DETACH: Final = 0x16
END: Final = 0x17
CLOSE: Final = 0x18
SASL_INIT: Final = 0x41

#: Largest frame we accept and announce (the SDK's own default).
MAX_FRAME_SIZE: Final = 65536
#: Our session incoming window, in transfers.
INCOMING_WINDOW: Final = 65536
#: Largest delivery we reassemble before giving up on the connection: well
#: above the 1 MB event limit (which is answered per message, not by closing).
MAX_MESSAGE_BUFFER: Final = 4 * 1024 * 1024
#: Credit given to each link on which the client sends.
SENDER_CREDIT: Final = 1000
_MAX_DELIVERY_ID: Final = 2**32

_FRAME_HEADER: Final = struct.Struct(">IBBH")


class Phase(Enum):
    HEADER = "expecting a protocol header"
    SASL = "expecting sasl-init"
    OPEN = "expecting open"
    OPENED = "open"
    CLOSED = "closed"


class ProtocolError(Exception):
    """The peer broke the protocol; the connection is closed with ``condition``."""

    def __init__(self, condition: bytes, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


@dataclass(eq=False)
class Link:
    """One attached link. ``receiving`` is True when the client sends and we receive."""

    channel: int
    handle: int
    name: str
    receiving: bool
    source: list[Any] | None
    target: list[Any] | None
    properties: dict[Any, Any]
    desired_capabilities: list[bytes]
    source_address: str | None
    target_address: str | None
    attached: bool = False
    detached: bool = False
    # We send: the client's view of credit and our delivery count.
    delivery_count: int = 0
    credit: int = 0
    # We receive: credit left and a delivery being reassembled.
    credit_left: int = 0
    partial: bytearray | None = None
    partial_id: int | None = None
    partial_format: int = 0
    partial_settled: bool = False
    #: Free for the server's use (what the link is attached to).
    context: Any = None

    @property
    def filters(self) -> dict[Any, Any]:
        if self.source is None or len(self.source) < 8 or not isinstance(self.source[7], dict):
            return {}
        return self.source[7]


@dataclass(eq=False)
class Session:
    channel: int
    links: dict[int, Link] = field(default_factory=dict)
    next_outgoing_id: int = 0
    remote_incoming_window: int = 0
    next_incoming_id: int = 0
    incoming_left: int = INCOMING_WINDOW
    delivery_id: int = 0


# -- events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkAttached:
    link: Link


@dataclass(frozen=True, slots=True)
class LinkDetached:
    link: Link


@dataclass(frozen=True, slots=True)
class MessageReceived:
    link: Link
    delivery_id: int
    message_format: int
    payload: bytes
    settled: bool


@dataclass(frozen=True, slots=True)
class CreditChanged:
    link: Link


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The connection is over; ``error`` is set when it ended on a protocol error."""

    error: str | None


Event = LinkAttached | LinkDetached | MessageReceived | CreditChanged | ConnectionClosed


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _error(condition: bytes, description: str) -> Any:
    return wire.AMQPError(condition=condition, description=description, info=None)


class ServerConnection:
    """One client connection's protocol state (see the module docstring)."""

    def __init__(self, container_id: str = "statepump-emulator") -> None:
        self.container_id = container_id
        self.phase = Phase.HEADER
        self.remote_max_frame_size = 512
        self.remote_idle_timeout_ms: int | None = None
        self.sasl_mechanism: str | None = None
        self.sessions: dict[int, Session] = {}
        self._refusal: tuple[bytes, str] | None = None
        self._inbox = bytearray()
        self._outbox = bytearray()

    # -- I/O boundary ---------------------------------------------------------

    def data_to_send(self) -> bytes:
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return what happened."""
        if self.closed:
            return []
        self._inbox += data
        events: list[Event] = []
        try:
            while not self.closed:
                if not self._step(events):
                    break
        except ProtocolError as exc:
            self.close(exc.condition, exc.description)
            events.append(ConnectionClosed(exc.description))
        return events

    def _step(self, events: list[Event]) -> bool:
        if self.phase is Phase.HEADER:
            if len(self._inbox) < 8:
                if self._inbox and not wire.AMQP_HEADER.startswith(bytes(self._inbox[:4])):
                    self._refuse_header()
                return False
            header = bytes(self._inbox[:8])
            del self._inbox[:8]
            if header == wire.SASL_HEADER and self.sasl_mechanism is None:
                self._outbox += wire.SASL_HEADER
                self._outbox += wire.frame(p.SASLMechanism(sasl_server_mechanisms=[b"ANONYMOUS", b"PLAIN"]), sasl=True)
                self.phase = Phase.SASL
            elif header == wire.AMQP_HEADER:
                self._outbox += wire.AMQP_HEADER
                self.phase = Phase.OPEN
            else:
                self._refuse_header()
            return True
        if len(self._inbox) < 8:
            return False
        size, doff, frame_type, channel = _FRAME_HEADER.unpack_from(self._inbox)
        if size < 8 or doff < 2 or doff * 4 > size:
            raise ProtocolError(b"amqp:connection:framing-error", f"invalid frame header (size {size}, doff {doff})")
        if size > MAX_FRAME_SIZE:
            raise ProtocolError(
                b"amqp:connection:framing-error", f"frame of {size} bytes exceeds max-frame-size {MAX_FRAME_SIZE}"
            )
        if len(self._inbox) < size:
            return False
        body = bytes(self._inbox[doff * 4 : size])
        del self._inbox[:size]
        if not body:
            return True  # heartbeat
        try:
            code, fields = wire.decode_frame_body(memoryview(body))
        except (ValueError, IndexError, KeyError, TypeError, struct.error, UnicodeDecodeError) as exc:
            raise ProtocolError(b"amqp:decode-error", f"undecodable frame body on channel {channel}: {exc}") from exc
        try:
            if frame_type == 1:
                self._on_sasl(code, fields)
            else:
                self._on_frame(channel, code, fields, events)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            # A well-framed body whose fields have the wrong types or count.
            raise ProtocolError(
                b"amqp:decode-error", f"invalid performative 0x{code:02x} on channel {channel}: {exc}"
            ) from exc
        return True

    def _refuse_header(self) -> None:
        # Section 2.2: answer an unsupported header with the one we support, then close.
        self._outbox += wire.AMQP_HEADER
        self.phase = Phase.CLOSED
        raise ProtocolError(b"amqp:connection:framing-error", "not an AMQP 1.0 protocol header")

    # -- SASL -----------------------------------------------------------------

    def _on_sasl(self, code: int, fields: list[Any]) -> None:
        if self.phase is not Phase.SASL or code != SASL_INIT:
            raise ProtocolError(b"amqp:connection:framing-error", f"unexpected SASL frame 0x{code:02x}")
        mechanism = _text(fields[0]) if fields else None
        if mechanism not in ("ANONYMOUS", "PLAIN", "MSSBCBS"):
            self._outbox += wire.frame(p.SASLOutcome(code=1, additional_data=None), sasl=True)
            raise ProtocolError(b"amqp:unauthorized-access", f"unsupported SASL mechanism {mechanism!r}")
        self.sasl_mechanism = mechanism
        self._outbox += wire.frame(p.SASLOutcome(code=0, additional_data=None), sasl=True)
        self.phase = Phase.HEADER

    # -- frames ---------------------------------------------------------------

    def _send(self, channel: int, performative: Any) -> None:
        self._outbox += wire.frame(performative, channel)

    def _on_frame(self, channel: int, code: int, fields: list[Any], events: list[Event]) -> None:
        # Connection- and session-level frames first: a session may already be
        # gone when a late Detach arrives for it.
        if self.phase is Phase.OPEN:
            if code != OPEN:
                raise ProtocolError(b"amqp:connection:framing-error", f"expected Open, got performative 0x{code:02x}")
            self._on_open(fields)
            return
        if code == OPEN:
            raise ProtocolError(b"amqp:illegal-state", "Open received on an open connection")
        if code == CLOSE:
            self._send(0, p.CloseFrame(error=None))
            self.phase = Phase.CLOSED
            events.append(ConnectionClosed(None))
            return
        if code == BEGIN:
            self._on_begin(channel, fields)
            return
        session = self.sessions.get(channel)
        if session is None:
            return  # a frame for an ended session (see module docstring)
        if code == END:
            del self.sessions[channel]
            self._send(channel, p.EndFrame(error=None))
            for link in session.links.values():
                if not link.detached:
                    link.detached = True
                    events.append(LinkDetached(link))
            return
        if code == ATTACH:
            self._on_attach(session, fields, events)
        elif code == FLOW:
            self._on_flow(session, fields, events)
        elif code == TRANSFER:
            self._on_transfer(session, fields, events)
        elif code == DETACH:
            self._on_detach(session, fields, events)
        elif code == DISPOSITION:
            pass  # we send pre-settled deliveries; client dispositions need no answer
        else:
            raise ProtocolError(b"amqp:connection:framing-error", f"unknown performative 0x{code:02x}")

    def refuse_open(self, condition: bytes, description: str) -> None:
        """Answer the client's Open with ours and then a Close with this error (AMQP 1.0 section 2.4.1)."""
        self._refusal = (condition, description)

    def _on_open(self, fields: list[Any]) -> None:
        if len(fields) > 2 and fields[2] is not None:
            self.remote_max_frame_size = max(512, int(fields[2]))
        else:
            self.remote_max_frame_size = 2**32 - 1
        self.remote_idle_timeout_ms = int(fields[4]) if len(fields) > 4 and fields[4] else None
        self._send(
            0,
            p.OpenFrame(
                container_id=self.container_id,
                hostname=None,
                max_frame_size=MAX_FRAME_SIZE,
                channel_max=65535,
                idle_timeout=None,
                outgoing_locales=None,
                incoming_locales=None,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=None,
            ),
        )
        self.phase = Phase.OPENED
        if self._refusal is not None:
            self.close(*self._refusal)

    def _on_begin(self, channel: int, fields: list[Any]) -> None:
        if channel in self.sessions:
            raise ProtocolError(b"amqp:illegal-state", f"Begin on channel {channel}, which has a session")
        if len(fields) < 4 or fields[1] is None or fields[2] is None:
            raise ProtocolError(b"amqp:invalid-field", "Begin lacks next-outgoing-id or incoming-window")
        session = Session(channel, remote_incoming_window=int(fields[2]), next_incoming_id=int(fields[1]))
        self.sessions[channel] = session
        self._send(
            channel,
            p.BeginFrame(
                remote_channel=channel,
                next_outgoing_id=0,
                incoming_window=INCOMING_WINDOW,
                outgoing_window=INCOMING_WINDOW,
                handle_max=65535,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=None,
            ),
        )

    def _on_attach(self, session: Session, fields: list[Any], events: list[Event]) -> None:
        if len(fields) < 3 or fields[0] is None or fields[1] is None or fields[2] is None:
            raise ProtocolError(b"amqp:invalid-field", "Attach lacks name, handle or role")
        fields = fields + [None] * (14 - len(fields))
        handle = int(fields[1])
        existing = session.links.get(handle)
        if existing is not None and not existing.detached:
            raise ProtocolError(b"amqp:session:handle-in-use", f"handle {handle} is already attached")
        source = list(fields[5]) if isinstance(fields[5], list) else None
        target = list(fields[6]) if isinstance(fields[6], list) else None
        link = Link(
            channel=session.channel,
            handle=handle,
            name=_text(fields[0]) or "",
            receiving=not bool(fields[2]),  # the client's role: False = sender, so we receive
            source=source,
            target=target,
            properties=dict(fields[13]) if isinstance(fields[13], dict) else {},
            desired_capabilities=list(fields[12]) if isinstance(fields[12], list) else [],
            source_address=_text(source[0]) if source else None,
            target_address=_text(target[0]) if target else None,
            delivery_count=int(fields[9] or 0),
        )
        session.links[handle] = link
        events.append(LinkAttached(link))

    def _terminus(self, link: Link) -> tuple[Any, Any]:
        def source() -> Any:
            filters: dict[bytes, Any] | None = None
            if link.filters:
                # Decoding dropped the filter's descriptor: describe it again.
                filters = {
                    key: (key, _text(value)) if isinstance(value, bytes) else value
                    for key, value in link.filters.items()
                }
            return wire.Source(
                address=link.source_address,
                durable=None,
                expiry_policy=None,
                timeout=None,
                dynamic=None,
                dynamic_node_properties=None,
                distribution_mode=None,
                filters=filters,
                default_outcome=None,
                outcomes=None,
                capabilities=None,
            )

        target = wire.Target(
            address=link.target_address,
            durable=None,
            expiry_policy=None,
            timeout=None,
            dynamic=None,
            dynamic_node_properties=None,
            capabilities=None,
        )
        return source(), target

    def _attach_frame(self, link: Link, *, offered: list[bytes] | None, max_message_size: int | None) -> Any:
        source, target = self._terminus(link)
        return p.AttachFrame(
            name=link.name,
            handle=link.handle,
            role=link.receiving,  # our role: True = receiver
            send_settle_mode=1 if not link.receiving else 0,  # we send settled; we take mixed
            rcv_settle_mode=0,
            source=source,
            target=target,
            unsettled=None,
            incomplete_unsettled=False,
            initial_delivery_count=None if link.receiving else link.delivery_count,
            max_message_size=max_message_size,
            offered_capabilities=offered,
            desired_capabilities=None,
            properties=None,
        )

    def accept_link(
        self, link: Link, *, max_message_size: int | None = None, offered_capabilities: list[bytes] | None = None
    ) -> None:
        """Complete the attach of ``link``; a link we receive on gets credit at once."""
        self._send(
            link.channel, self._attach_frame(link, offered=offered_capabilities, max_message_size=max_message_size)
        )
        link.attached = True
        if link.receiving:
            link.credit_left = SENDER_CREDIT
            self._link_flow(link, credit=SENDER_CREDIT)

    def refuse_link(self, link: Link, condition: bytes, description: str) -> None:
        """Refuse an attach: echo it, then detach with the error (AMQP 1.0 section 2.6.3)."""
        self._send(link.channel, self._attach_frame(link, offered=None, max_message_size=None))
        self._send(link.channel, p.DetachFrame(handle=link.handle, closed=True, error=_error(condition, description)))
        link.detached = True

    def detach(self, link: Link, condition: bytes, description: str) -> None:
        """Detach an attached link with an error (for example ``amqp:link:stolen``)."""
        if link.detached or link.channel not in self.sessions or self.closed:
            return
        self._send(link.channel, p.DetachFrame(handle=link.handle, closed=True, error=_error(condition, description)))
        link.detached = True

    def close(self, condition: bytes | None = None, description: str = "") -> None:
        """Close the connection (with an error when ``condition`` is given)."""
        if self.closed or self.phase in (Phase.HEADER, Phase.SASL, Phase.OPEN):
            self.phase = Phase.CLOSED
            return
        error = _error(condition, description) if condition else None
        self._send(0, p.CloseFrame(error=error))
        self.phase = Phase.CLOSED

    def heartbeat(self) -> None:
        """Queue an empty frame, keeping the client's idle timeout from firing."""
        if self.phase is Phase.OPENED:
            self._outbox += wire.empty_frame()

    # -- flow -----------------------------------------------------------------

    def _flow_frame(self, session: Session, link: Link | None, credit: int | None = None) -> Any:
        return p.FlowFrame(
            next_incoming_id=session.next_incoming_id,
            incoming_window=session.incoming_left,
            next_outgoing_id=session.next_outgoing_id,
            outgoing_window=INCOMING_WINDOW,
            handle=None if link is None else link.handle,
            delivery_count=None if link is None else link.delivery_count,
            link_credit=credit,
            available=None,
            drain=None if link is None else False,
            echo=None if link is None else False,
            properties=None,
        )

    def _link_flow(self, link: Link, credit: int) -> None:
        session = self.sessions[link.channel]
        self._send(link.channel, self._flow_frame(session, link, credit))

    def _on_flow(self, session: Session, fields: list[Any], events: list[Event]) -> None:
        fields = fields + [None] * (11 - len(fields))
        if fields[1] is None or fields[2] is None:
            raise ProtocolError(b"amqp:invalid-field", "Flow lacks incoming-window or next-outgoing-id")
        next_incoming = fields[0] if fields[0] is not None else session.next_outgoing_id
        session.remote_incoming_window = int(next_incoming) + int(fields[1]) - session.next_outgoing_id
        handle = fields[4]
        if handle is None:
            for link in session.links.values():
                if not link.receiving and link.attached and not link.detached:
                    events.append(CreditChanged(link))
            return
        flowing = session.links.get(int(handle))
        if flowing is None or flowing.detached:
            return
        link = flowing
        if not link.receiving and fields[6] is not None:
            delivery_count = int(fields[5]) if fields[5] is not None else 0
            link.credit = delivery_count + int(fields[6]) - link.delivery_count
            events.append(CreditChanged(link))
        if fields[9]:  # echo
            self._link_flow(link, link.credit_left if link.receiving else link.credit)

    def _on_transfer(self, session: Session, fields: list[Any], events: list[Event]) -> None:
        payload = fields[-1]
        fields = fields[:-1] + [None] * (11 - len(fields[:-1]))
        session.next_incoming_id = (session.next_incoming_id + 1) % _MAX_DELIVERY_ID
        session.incoming_left -= 1
        if session.incoming_left <= INCOMING_WINDOW // 2:
            session.incoming_left = INCOMING_WINDOW
            self._send(session.channel, self._flow_frame(session, None))
        link = session.links.get(int(fields[0]))
        if link is None or link.detached:
            return  # a transfer racing our detach
        if not link.receiving:
            raise ProtocolError(b"amqp:not-allowed", f"transfer on link {link.name!r}, on which the client receives")
        if fields[9]:  # aborted
            link.partial = None
            return
        if link.partial is None:
            if fields[1] is None:
                raise ProtocolError(b"amqp:invalid-field", "first transfer of a delivery lacks a delivery-id")
            link.partial = bytearray()
            link.partial_id = int(fields[1])
            link.partial_format = int(fields[3] or 0)
            link.partial_settled = bool(fields[4])
        link.partial += payload
        if len(link.partial) > MAX_MESSAGE_BUFFER:
            raise ProtocolError(b"amqp:link:message-size-exceeded", f"a delivery exceeded {MAX_MESSAGE_BUFFER} bytes")
        if fields[5]:  # more
            return
        delivery_id = link.partial_id if link.partial_id is not None else 0
        events.append(
            MessageReceived(link, delivery_id, link.partial_format, bytes(link.partial), link.partial_settled)
        )
        link.partial = None
        link.delivery_count += 1
        link.credit_left -= 1
        if link.credit_left <= SENDER_CREDIT // 2:
            link.credit_left = SENDER_CREDIT
            self._link_flow(link, SENDER_CREDIT)

    def settle(self, link: Link, delivery_id: int, error: tuple[bytes, str] | None = None) -> None:
        """Settle a received delivery: accepted, or rejected with ``(condition, description)``."""
        if link.detached or link.channel not in self.sessions:
            return
        state = wire.Accepted() if error is None else wire.Rejected(error=_error(*error))
        self._send(
            link.channel,
            p.DispositionFrame(
                role=True, first=delivery_id, last=delivery_id, settled=True, state=state, batchable=None
            ),
        )

    def _on_detach(self, session: Session, fields: list[Any], events: list[Event]) -> None:
        handle = int(fields[0]) if fields and fields[0] is not None else -1
        link = session.links.pop(handle, None)
        if link is None:
            return
        if not link.detached:
            closed = bool(fields[1]) if len(fields) > 1 else True
            self._send(session.channel, p.DetachFrame(handle=handle, closed=closed, error=None))
            link.detached = True
            events.append(LinkDetached(link))

    # -- sending --------------------------------------------------------------

    def sendable(self, link: Link) -> int:
        """How many messages may be sent on ``link`` now (link credit and session window)."""
        session = self.sessions.get(link.channel)
        if session is None or link.detached or not link.attached or self.closed:
            return 0
        return max(0, min(link.credit, session.remote_incoming_window))

    def send_message(self, link: Link, payload: bytes) -> None:
        """Send one settled delivery on ``link`` (split into frames as the peer's frame size requires)."""
        session = self.sessions[link.channel]
        delivery_id = session.delivery_id
        session.delivery_id = (delivery_id + 1) % _MAX_DELIVERY_ID
        tag = struct.pack(">I", delivery_id)
        # Frame overhead: 8 header bytes plus at most ~40 for the performative.
        room = max(self.remote_max_frame_size - 64, 256)
        position = 0
        first = True
        while True:
            chunk = payload[position : position + room]
            position += len(chunk)
            more = position < len(payload)
            self._outbox += wire.transfer_frame(
                link.channel,
                link.handle,
                delivery_id if first else None,
                tag if first else None,
                True,
                more,
                chunk,
            )
            session.next_outgoing_id = (session.next_outgoing_id + 1) % _MAX_DELIVERY_ID
            session.remote_incoming_window -= 1
            first = False
            if not more:
                break
        link.delivery_count = (link.delivery_count + 1) % _MAX_DELIVERY_ID
        link.credit -= 1
