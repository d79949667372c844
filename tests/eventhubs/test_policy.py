"""The pure parts of the Event Hubs adapter: connection strings, redaction, retry policy, error sorting."""

from __future__ import annotations

import random

import pytest
from azure.eventhub.exceptions import AuthenticationError, ConnectError, ConnectionLostError

from statepump.core.errors import ConfigError
from statepump.eventhubs.connection import HubEndpoint, parse_connection_string, redact
from statepump.eventhubs.failures import Backoff, Failure, classify

KEY = "Zm9vYmFyLXNlY3JldC1rZXk9PQ=="
CS = f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={KEY};EntityPath=orders"


def test_connection_string_parts() -> None:
    cs = parse_connection_string(CS)
    assert (cs.host, cs.port, cs.eventhub, cs.key_name, cs.emulator) == (
        "ns.servicebus.windows.net",
        None,
        "orders",
        "listen",
        False,
    )
    assert cs.secret == KEY
    assert KEY not in repr(cs)


def test_emulator_connection_string_keeps_its_port() -> None:
    cs = parse_connection_string(
        "Endpoint=sb://127.0.0.1:5999/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub;UseDevelopmentEmulator=true"
    )
    assert (cs.host, cs.port, cs.emulator) == ("127.0.0.1", 5999, True)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "empty"),
        (f"SharedAccessKeyName=k;SharedAccessKey={KEY}", "Endpoint"),
        (f"Endpoint=http://x/;SharedAccessKeyName=k;SharedAccessKey={KEY}", "Endpoint must"),
        ("Endpoint=sb://x/;SharedAccessKeyName=k", "SharedAccessKey"),
        (f"Endpoint=sb://x/;SharedAccessKey={KEY}", "SharedAccessKeyName"),
        (f"Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey={KEY};stray", "Name=Value"),
        (f"Endpoint=sb://x/;SharedAccessKeyName=k;{KEY}", "SharedAccessKey"),
    ],
)
def test_bad_connection_strings_name_the_part_and_never_the_key(text: str, names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_connection_string(text)
    assert names in str(caught.value)
    assert KEY not in str(caught.value)
    assert "Zm9v" not in str(caught.value)


def test_redact_removes_keys_signatures_and_given_secrets() -> None:
    text = f"{CS} and SharedAccessSignature=SharedAccessSignature sr=x&sig=abc%2Bdef&se=1 and token=T0K"
    out = redact(text, "T0K")
    assert KEY not in out and "abc%2Bdef" not in out and "T0K" not in out
    assert "SharedAccessKey=***" in out and "ns.servicebus.windows.net" in out


def test_endpoint_needs_a_hub_and_one_way_to_connect() -> None:
    with pytest.raises(ConfigError, match="no event hub configured"):
        HubEndpoint()
    with pytest.raises(ConfigError, match="eventhub: not given"):
        HubEndpoint(connection_string=CS.replace(";EntityPath=orders", ""))
    with pytest.raises(ConfigError, match="differs"):
        HubEndpoint(connection_string=CS, eventhub="other")
    with pytest.raises(ConfigError, match="not both"):
        HubEndpoint(connection_string=CS, fully_qualified_namespace="ns.servicebus.windows.net")
    with pytest.raises(ConfigError, match="namespace"):
        HubEndpoint(fully_qualified_namespace="ns/with/path", eventhub="orders")
    assert HubEndpoint(fully_qualified_namespace="sb://ns.servicebus.windows.net/", eventhub="o").describe() == (
        "ns.servicebus.windows.net/o"
    )


def test_backoff_grows_exponentially_to_the_cap() -> None:
    policy = Backoff(initial=0.1, maximum=1.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.delay(10_000) == 1.0


def test_backoff_jitter_stays_within_its_fraction_and_varies() -> None:
    policy = Backoff(initial=1.0, maximum=1.0, jitter=0.5)
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 100


def test_backoff_budget_by_attempts_and_by_time() -> None:
    by_attempts = Backoff(max_attempts=3, max_seconds=None)
    assert [by_attempts.exhausted(attempts=n, elapsed=1e9) for n in range(5)] == [False, False, False, True, True]
    by_time = Backoff(max_attempts=None, max_seconds=5.0)
    assert not by_time.exhausted(attempts=10_000, elapsed=4.9)
    assert by_time.exhausted(attempts=1, elapsed=5.0)
    assert by_attempts.describe() == "3 attempts" and by_time.describe() == "5 s"


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"initial": 2, "maximum": 1}, {"jitter": 1.5}, {"max_attempts": -1}, {"max_seconds": -1}],
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="retry"):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_errors_sorted_into_retry_and_report() -> None:
    assert classify(ConnectError("Failed to initiate the connection: [Errno 111] Connect call failed")) is (
        Failure.TRANSIENT
    )
    assert classify(ConnectionLostError("connection reset")) is Failure.TRANSIENT
    assert classify(OSError("broken pipe")) is Failure.TRANSIENT
    assert classify(ConnectionLostError("New receiver with higher epoch\nError condition: amqp:link:stolen")) is (
        Failure.STOLEN
    )
    assert classify(ConnectError("invalid\nError condition: com.microsoft:argument-out-of-range")) is (
        Failure.POSITION_AHEAD
    )
    assert classify(ConnectError("Management connection failed. Status code: 404")) is Failure.NOT_FOUND
    assert classify(ValueError("Wrong partition id:7. The eventhub has partitions: ['0', '1'].")) is (Failure.NOT_FOUND)
    assert classify(AuthenticationError("bad token")) is Failure.AUTH


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"prefetch": 0}, "prefetch"),
        ({"max_batch_size": -1}, "max_batch_size"),
        ({"max_wait": 0}, "max_wait"),
        ({"owner_level": -2}, "owner_level"),
        ({"partition": " "}, "partition"),
    ],
)
def test_source_settings_are_checked(kwargs: dict[str, object], setting: str) -> None:
    from statepump.sources.eventhub import EventHubSource

    with pytest.raises(ConfigError, match=setting):
        EventHubSource(connection_string=CS, **kwargs)  # type: ignore[arg-type]
