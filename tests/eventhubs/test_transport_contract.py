"""The private parts of azure-eventhub that :class:`~statepump.eventhubs.transport.PromptTransport` relies on.

``PromptTransport`` replaces the SDK's receive loops (``_callback_task``,
``_receive_task``, ``receive_messages_async``) and its buffer append
(``message_received_async``), and reads the consumer's private attributes.
If one of these tests fails after an SDK upgrade, the prompt receive path is
broken in the way the test names: re-read the SDK's
``aio/_transport/_pyamqp_transport_async.py``, bring ``PromptTransport`` in
line (or drop it if the SDK stopped polling), then update the pins here.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections import deque
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, cast

import pytest
from azure.eventhub import EventData
from azure.eventhub._pyamqp.aio import AMQPClientAsync, ReceiveClientAsync, SendClientAsync
from azure.eventhub._pyamqp.error import AMQPLinkError, ErrorCondition
from azure.eventhub.aio._consumer_async import EventHubConsumer
from azure.eventhub.aio._transport._pyamqp_transport_async import PyamqpTransportAsync
from azure.eventhub.exceptions import EventHubError

from statepump.emulator import Emulator
from statepump.eventhubs.connection import HubEndpoint
from statepump.eventhubs.transport import (
    ManagementLink,
    PromptTransport,
    QuickOpenTransport,
    arrivals,
    prompt_receive,
    quick_open,
)
from tests.eventhubs.hub import numbered, put, stop_receiving

#: sha256 of the SDK methods PromptTransport replaces, as read for azure-eventhub 5.15.1.
REPLACED = {
    "_callback_task": "00dfc2aba986c37e030a6a4f45cd7657103fb3f763e5ccc1673c5b06d77bc32d",
    "_receive_task": "0d019bb37123497527e98efbf64258fcecbb1668d6b259157f57f982fc2313a5",
    "message_received_async": "e1064c82120119d428e91f82c5a6bea9ebf432d0498f685c2d36532860d2a5f8",
    "receive_messages_async": "a69df81b5e173ad12ac86136c0d1a97afaf0e3a482a63c4cd64828b53ea3a7b7",
}


def _digest(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def test_sdk_version_is_in_the_tested_range() -> None:
    major, minor, *_ = (int(x) for x in version("azure-eventhub").split(".")[:3])
    assert (major, minor) == (5, 15), "re-run this suite and widen the pin in pyproject.toml"


@pytest.mark.parametrize("name", sorted(REPLACED))
def test_the_replaced_sdk_methods_are_the_ones_we_read(name: str) -> None:
    # A change here means the SDK's loop changed: its fix or feature may be missing from ours.
    assert _digest(getattr(PyamqpTransportAsync, name)) == REPLACED[name]


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("_callback_task", ["consumer", "batch", "max_batch_size", "max_wait_time"]),
        ("_receive_task", ["consumer", "max_batch_size"]),
        ("message_received_async", ["consumer", "message"]),
        ("receive_messages_async", ["consumer", "batch", "max_batch_size", "max_wait_time"]),
    ],
)
def test_replaced_methods_are_static_with_the_same_parameters(name: str, parameters: list[str]) -> None:
    for cls in (PyamqpTransportAsync, PromptTransport):
        assert isinstance(inspect.getattr_static(cls, name), staticmethod), f"{cls.__name__}.{name}"
        assert list(inspect.signature(getattr(cls, name)).parameters) == parameters, f"{cls.__name__}.{name}"


def test_the_consumer_calls_its_transport_for_receiving_and_for_each_message() -> None:
    # The hooks: receive() hands the loop to the transport, the handler's callback is the transport's append.
    assert "self._amqp_transport.receive_messages_async(" in inspect.getsource(EventHubConsumer.receive)
    assert "partial(self._amqp_transport.message_received_async, self)" in inspect.getsource(
        EventHubConsumer._create_handler
    )
    assert list(inspect.signature(ReceiveClientAsync.do_work_async).parameters) == ["self", "kwargs"]
    assert ErrorCondition.LinkStolen.value == b"amqp:link:stolen"
    assert issubclass(AMQPLinkError, Exception)


async def test_a_consumer_of_a_prompt_client_has_what_the_transport_uses() -> None:
    cs = "Endpoint=sb://127.0.0.1:9/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub;UseDevelopmentEmulator=true"
    client = prompt_receive(HubEndpoint(connection_string=cs).consumer())
    try:

        async def ignore(events: Any) -> None:
            return None

        consumer = client._create_consumer("$Default", "0", "-1", on_event_received=cast(Any, ignore), prefetch=7)
        assert consumer._amqp_transport is PromptTransport
        assert isinstance(consumer._message_buffer, deque)
        assert isinstance(consumer._message_buffer_lock, asyncio.Lock)
        assert consumer._on_event_received is ignore
        assert consumer._prefetch == 7
        for name in ("_callback_task_run", "_last_callback_called_time", "_last_received_event", "_offset"):
            assert hasattr(consumer, name), name
        assert consumer._handler is None and consumer.running is False and consumer.closed is False
        assert isinstance(consumer._client._config.max_retries, int)
        for method in ("_open", "_next_message_in_buffer", "_handle_exception"):
            assert callable(getattr(consumer, method)), method
        assert inspect.iscoroutinefunction(consumer._open)
        assert inspect.iscoroutinefunction(consumer._handle_exception)
    finally:
        await client.close()


def test_prompt_receive_refuses_a_transport_it_does_not_know() -> None:
    cs = "Endpoint=sb://127.0.0.1:9/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub;UseDevelopmentEmulator=true"
    client = HubEndpoint(connection_string=cs).consumer()
    assert client._amqp_transport is PyamqpTransportAsync
    assert prompt_receive(prompt_receive(client))._amqp_transport is PromptTransport
    client._amqp_transport = object
    with pytest.raises(TypeError, match="unexpected SDK transport"):
        prompt_receive(client)


@pytest.mark.emulator
async def test_a_real_receive_runs_through_the_prompt_transport(emulator: Emulator) -> None:
    """Against the emulator: every message passes our append, and the batches are exact and in order."""
    bodies = numbered(500)
    await put(emulator.connection_string, bodies)
    client = prompt_receive(HubEndpoint(connection_string=emulator.connection_string).consumer())
    received: list[EventData] = []
    all_in = asyncio.Event()

    async def on_events(events: list[EventData]) -> None:
        received.extend(events)
        if len(received) >= len(bodies):
            all_in.set()

    consumer = client._create_consumer("$Default", "0", "-1", on_event_received=cast(Any, on_events), prefetch=100)
    receiving = asyncio.create_task(consumer.receive(batch=True, max_batch_size=64, max_wait_time=None))
    try:
        async with asyncio.timeout(30):
            await all_in.wait()
        assert [e.sequence_number for e in received] == list(range(len(bodies)))
        assert [e.body_as_str().encode() for e in received] == bodies
        assert arrivals(consumer).count == len(bodies)
    finally:
        await stop_receiving(receiving, consumer, client)


# --- QuickOpenTransport and ManagementLink (the send path) --------------------------------------


def test_the_sdk_opens_links_through_the_transport_and_asks_whether_they_are_ready() -> None:
    """The hooks quick_open relies on: where the SDK makes its clients, and the readiness loop it runs."""
    from azure.eventhub.aio._client_base_async import ClientBaseAsync, ConsumerProducerMixin
    from azure.eventhub.aio._producer_async import EventHubProducer

    assert "self._amqp_transport.create_send_client(" in inspect.getsource(EventHubProducer._create_handler)
    assert "while not await self._handler.client_ready_async():" in inspect.getsource(ConsumerProducerMixin._open)
    management = inspect.getsource(ClientBaseAsync._management_request_async)
    assert "self._amqp_transport.create_mgmt_client(" in management
    assert "while not await mgmt_client.client_ready_async():" in management
    for cls in (SendClientAsync, AMQPClientAsync):
        assert list(inspect.signature(cls.client_ready_async).parameters) == ["self"]
    assert list(inspect.signature(PyamqpTransportAsync.create_mgmt_client).parameters) == [
        "address",
        "mgmt_auth",
        "config",
    ]
    assert list(inspect.signature(AMQPClientAsync.mgmt_request_async).parameters)[:2] == ["self", "message"]


def test_quick_open_reaches_the_producer_link_made_in_the_constructor() -> None:
    cs = "Endpoint=sb://127.0.0.1:9/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub;UseDevelopmentEmulator=true"
    client = HubEndpoint(connection_string=cs).producer()  # HubEndpoint.producer installs it
    assert client._amqp_transport is QuickOpenTransport
    assert list(client._producers) == ["all-partitions"]
    assert all(p is not None and p._amqp_transport is QuickOpenTransport for p in client._producers.values())
    for name in ("_create_auth_async", "_address", "_config", "eventhub_name"):
        assert hasattr(client, name), name
    client._amqp_transport = object
    with pytest.raises(TypeError, match="unexpected SDK transport"):
        quick_open(client)


@pytest.mark.emulator
async def test_a_quick_link_is_ready_after_one_call_and_the_held_link_agrees_with_the_sdk(emulator: Emulator) -> None:
    await put(emulator.connection_string, numbered(3))
    producer = HubEndpoint(connection_string=emulator.connection_string).producer()
    link = ManagementLink(producer)
    try:
        auth = await producer._create_auth_async()
        mgmt: Any = QuickOpenTransport.create_mgmt_client(producer._address, auth, producer._config)
        assert AMQPClientAsync in type(mgmt).__mro__  # the SDK's client, one method changed
        await mgmt.open_async()
        try:
            # The SDK's own client answers False for each handshake frame; the SDK then pauses 50 ms.
            assert await mgmt.client_ready_async() is True
        finally:
            await mgmt.close_async()
        sdk = await producer.get_partition_properties("0")
        assert await link.last_enqueued_sequence_number("0") == sdk["last_enqueued_sequence_number"] == 2
        await put(emulator.connection_string, numbered(2))
        assert await link.last_enqueued_sequence_number("0") == 4  # asked again on the same link
        assert await link.last_enqueued_sequence_number("1") == -1
        with pytest.raises(EventHubError):
            await link.last_enqueued_sequence_number("7")  # the service's answer, as the SDK raises it
    finally:
        await link.close()
        await producer.close()
