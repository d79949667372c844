"""The connection string's key never reaches an error message or a log line, failing or working."""

from __future__ import annotations

import asyncio
import logging

import pytest

from devservices import free_port
from statepump.core.errors import ConfigError
from statepump.emulator import Emulator
from statepump.eventhubs.connection import HubEndpoint
from statepump.eventhubs.failures import Backoff, HubError, HubRejected
from statepump.eventhubs.send import send_events
from statepump.sources.eventhub import EventHubSource
from tests.eventhubs.hub import drain, read_until

pytestmark = pytest.mark.emulator

# The emulator accepts any key unless given one, so a distinctive one can be followed through a real session.
KEY = "S3cr3tK3yThatMustNeverBeLogged0123456789abc="


def with_key(connection_string: str) -> str:
    head, _, rest = connection_string.partition("SharedAccessKey=")
    return head + "SharedAccessKey=" + KEY + ";" + rest.partition(";")[2]


async def test_key_absent_from_logs_and_errors_of_a_working_session(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, the SDK's own debug output included
    cs = with_key(emulator.connection_string)
    assert KEY in cs
    numbers = await send_events(connection_string=cs, bodies=[b"one", b"two"], partition="0")
    assert numbers == [0, 1]
    source = EventHubSource(connection_string=cs, max_wait=0.3)
    try:
        events = await read_until(source, -1, 1)
        status = repr(source), str(source.endpoint.describe()), repr(await source.bounds())
    finally:
        await source.close()
    assert [e.body for e in events] == [b"one", b"two"]
    assert caplog.records, "the session logged nothing: the check would be empty"
    assert KEY not in caplog.text
    assert all(KEY not in text for text in status)


async def three_failures(
    source: EventHubSource, cs: str, expected: type[HubError], send_timeout: float
) -> list[BaseException]:
    """The errors of ``source.bounds()`` and ``source.read()`` (each an ``expected``), then of a send to
    ``cs`` (a :class:`HubError`); ``source`` is closed."""
    errors: list[BaseException] = []
    try:
        for attempt in (source.bounds(), drain(source.read(-1))):
            with pytest.raises(expected) as caught:
                async with asyncio.timeout(20):
                    await attempt
            errors.append(caught.value)
    finally:
        await source.close()
    with pytest.raises(HubError) as sent:
        await send_events(connection_string=cs, bodies=[b"x"], partition="0", timeout=send_timeout)
    errors.append(sent.value)
    return errors


async def test_key_absent_from_the_unreachable_error_and_its_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cs = f"Endpoint=sb://127.0.0.1:{free_port()}/;SharedAccessKeyName=r;SharedAccessKey={KEY};EntityPath=hub;UseDevelopmentEmulator=true"
    source = EventHubSource(
        connection_string=cs, max_wait=0.2, retry=Backoff(initial=0.05, maximum=0.1, max_seconds=0.5)
    )
    errors = await three_failures(source, cs, HubError, send_timeout=5)
    for error in errors:
        assert KEY not in str(error) and KEY not in repr(error)
        assert "127.0.0.1" in str(error)
    assert KEY not in caplog.text


async def test_a_wrong_key_is_one_clear_error_at_once_and_never_echoed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emulator = Emulator(port=0, partitions=1, key="the-namespace-key")  # checks SAS tokens as the service does
    await emulator.start()
    try:
        cs = with_key(emulator.connection_string)  # KEY, not the namespace's
        # A budget far longer than the test: a rejection must not be retried as an outage.
        source = EventHubSource(connection_string=cs, max_wait=0.2, retry=Backoff(max_seconds=600))
        errors = await three_failures(source, cs, HubRejected, send_timeout=20)
        right = await send_events(connection_string=emulator.connection_string, bodies=[b"y"], partition="0")
    finally:
        await emulator.stop()
    assert source.reconnects == 0
    for error in errors[:2]:
        assert f"partition 0 of 127.0.0.1:{emulator.port}/hub" in str(error)
        assert "not authorized (check the key" in str(error)
    assert "InvalidSignature" in str(errors[2])
    assert right == [0]  # nothing of the refused send was stored
    for error in errors:
        assert KEY not in str(error) and KEY not in repr(error)
        assert "the-namespace-key" not in str(error)
    assert KEY not in caplog.text


def test_key_absent_from_endpoint_and_config_errors() -> None:
    cs = f"Endpoint=sb://ns.example/;SharedAccessKeyName=k;SharedAccessKey={KEY}"
    endpoint = HubEndpoint(connection_string=cs, eventhub="h")
    assert endpoint.describe() == "ns.example/h"
    assert endpoint.redact(f"oops {KEY} leaked") == "oops *** leaked"
    with pytest.raises(ConfigError) as caught:
        HubEndpoint(connection_string=cs)  # no EntityPath and no eventhub
    assert KEY not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        HubEndpoint(connection_string=cs + ";EntityPath=a", eventhub="b")
    assert KEY not in str(caught.value)
