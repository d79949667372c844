"""The connection string's key never reaches an error message or a log line, failing or working."""

from __future__ import annotations

import logging

import pytest

from statepump.emulator import Emulator
from statepump.errors import ConfigError
from statepump.eventhubs import Backoff, HubEndpoint, HubError, send_events
from statepump.sources.eventhubs import EventHubSource
from tests.eventhubs.hub import drain, read_until
from tests.fixtures.emulator import free_port

pytestmark = pytest.mark.emulator

# The emulator accepts any key, so a distinctive one can be followed through a real session.
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


async def test_key_absent_from_the_unreachable_error_and_its_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cs = f"Endpoint=sb://127.0.0.1:{free_port()}/;SharedAccessKeyName=r;SharedAccessKey={KEY};EntityPath=hub;UseDevelopmentEmulator=true"
    source = EventHubSource(
        connection_string=cs, max_wait=0.2, retry=Backoff(initial=0.05, maximum=0.1, max_seconds=0.5)
    )
    errors: list[BaseException] = []
    try:
        for attempt in (source.bounds(), drain(source.read(-1))):
            with pytest.raises(HubError) as caught:
                await attempt
            errors.append(caught.value)
    finally:
        await source.close()
    with pytest.raises(HubError) as sent:
        await send_events(connection_string=cs, bodies=[b"x"], partition="0", timeout=5)
    errors.append(sent.value)
    for error in errors:
        assert KEY not in str(error) and KEY not in repr(error)
        assert "127.0.0.1" in str(error)
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
