"""Pure Event Hubs rules: message surgery, addresses, management replies."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.eventhub import EventHubSharedKeyCredential

from statepump.emulator import addresses, management, messages, wire
from statepump.emulator.log import PartitionInfo


def encoded(**sections: object) -> bytes:
    return wire.encode_message(wire.Message(**sections))  # type: ignore[arg-type]


def test_stored_payload_keeps_the_bare_message_byte_for_byte() -> None:
    raw = encoded(
        properties=wire.Properties(
            message_id="m-1",
            correlation_id=uuid.UUID(int=3),  # type: ignore[arg-type]  # the SDK sends UUIDs too
            content_type="text/plain",
        ),
        application_properties={"k": "v", "n": 1},
        message_annotations={b"x-opt-partition-key": "pk", b"x-custom": 5, b"x-opt-sequence-number": 99},
        delivery_annotations={b"x-hop": 1},
        data=[b"one", b"two"],
    )
    incoming = messages.parse_event(raw)
    assert incoming.partition_key == "pk"
    stored = messages.stored_payload(incoming, sequence=7, offset=42, enqueued_ms=1234)
    decoded = wire.decode_message(stored)
    assert decoded.message_annotations == {
        b"x-opt-sequence-number": 7,  # the producer's value does not survive
        b"x-opt-offset": b"42",
        b"x-opt-enqueued-time": 1234,
        b"x-opt-partition-key": b"pk",
        b"x-custom": 5,
    }
    assert decoded.delivery_annotations is None
    assert decoded.properties.message_id == b"m-1"
    assert decoded.properties.correlation_id == uuid.UUID(int=3)
    assert decoded.data == [b"one", b"two"]
    # The bare sections are the producer's bytes, unchanged (so ids keep their AMQP types).
    bare = b"".join(bytes(s) for code, s in messages.split_sections(raw) if code >= messages.PROPERTIES)
    assert stored.endswith(bare)


def test_batches_are_split_into_their_events() -> None:
    inner = [encoded(data=[b"a"]), encoded(data=[b"b"], message_annotations={b"x-opt-partition-key": "k"})]
    outer = wire.encode_message(wire.Message(data=inner))
    assert messages.unbatch(outer, messages.BATCH_FORMAT) == inner
    assert messages.unbatch(outer, 0) == [outer]
    with pytest.raises(messages.MalformedMessage, match="at least one data section"):
        messages.unbatch(encoded(value="x"), messages.BATCH_FORMAT)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty message"),
        (b"\x01\x02\x03\x04", "expected a message section"),
        (b"\x00\x53\x99\x40", "unknown message section"),
        (b"\x00\x53\x75\xa0\x09ab", "undecodable section"),
        (b"\x00\x53\x72\xa1\x01x", "annotations must be a map"),
    ],
)
def test_malformed_messages_are_named(payload: bytes, reason: str) -> None:
    with pytest.raises(messages.MalformedMessage, match=reason):
        messages.parse_event(payload)


def test_view_keeps_strings_apart_from_bytes() -> None:
    raw = encoded(application_properties={"s": "text", "b": b"\x00", "n": 3, "f": 0.5}, data=[b"body"])
    stored = messages.stored_payload(messages.parse_event(raw), sequence=0, offset=0, enqueued_ms=0)
    view = messages.view_event(stored)
    assert view.properties == {"s": "text", "b": b"\x00", "n": 3, "f": 0.5}
    assert view.body == b"body"
    assert view.partition_key is None


@pytest.mark.parametrize(
    ("address", "node"),
    [
        ("$cbs", addresses.Cbs()),
        ("$management", addresses.Management()),
        ("amqps://127.0.0.1:5671/hub", addresses.Producer(None)),
        ("amqps://127.0.0.1/HUB/partitions/1", addresses.Producer("1")),
        ("amqps://h/hub/ConsumerGroups/$Default/Partitions/0", addresses.Consumer("$default", "0")),
        ("sb://h/hub/consumergroups/Audit/partitions/0", addresses.Consumer("audit", "0")),
    ],
)
def test_addresses(address: str, node: addresses.Node) -> None:
    assert addresses.parse_address(address, "hub") == node


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("amqps://h/other", "'other' could not be found"),
        ("amqps://h/hub/x/y/z", "not a hub"),
        ("amqps://h/", "no entity"),
    ],
)
def test_unknown_addresses_are_named(address: str, reason: str) -> None:
    with pytest.raises(addresses.UnknownAddress, match=reason):
        addresses.parse_address(address, "hub")


def request(**props: Any) -> Any:
    message = wire.Message(properties=wire.Properties(message_id=uuid.UUID(int=9)), application_properties={**props})  # type: ignore[dict-item]
    return wire.decode_message(wire.encode_message(message))


def reply(req: Any) -> Any:
    info = PartitionInfo("0", 3, 7, "512", 1_700_000_000_000, False)
    payload = management.management_reply(
        req, eventhub="hub", created_at_ms=5, partition_ids=["0", "1"], partition_info=lambda _: info
    )
    return wire.decode_message(payload)


def test_management_reads() -> None:
    hub = reply(request(operation="READ", type="com.microsoft:eventhub", name="hub"))
    assert hub.application_properties[b"status-code"] == 200
    assert hub.properties.correlation_id == uuid.UUID(int=9)
    assert hub.value[b"partition_ids"] == [b"0", b"1"]
    part = reply(request(operation="READ", type="com.microsoft:partition", name="hub", partition="0"))
    value = part.value
    assert value[b"begin_sequence_number"] == 3
    assert value[b"last_enqueued_sequence_number"] == 7
    assert value[b"last_enqueued_offset"] == b"512"
    assert value[b"last_enqueued_time_utc"] == 1_700_000_000_000
    assert value[b"is_partition_empty"] is False


@pytest.mark.parametrize(
    ("props", "status", "text"),
    [
        ({"operation": "READ", "type": "com.microsoft:partition", "name": "hub", "partition": "5"}, 404, "'5'"),
        ({"operation": "READ", "type": "com.microsoft:eventhub", "name": "other"}, 404, "'other'"),
        ({"operation": "DELETE", "type": "com.microsoft:eventhub", "name": "hub"}, 400, "'DELETE'"),
        ({"operation": "READ", "type": "com.microsoft:queue", "name": "hub"}, 400, "queue"),
    ],
)
def test_management_errors(props: dict[str, object], status: int, text: str) -> None:
    answer = reply(request(**props))
    assert answer.application_properties[b"status-code"] == status
    assert text.encode() in answer.application_properties[b"status-description"]


def test_cbs_accepts_put_token_only() -> None:
    ok = wire.decode_message(management.cbs_reply(request(operation="put-token", type="jwt", name="sb://h/hub")))
    assert ok.application_properties[b"status-code"] == 202
    bad = wire.decode_message(management.cbs_reply(request(operation="delete-token", name="x")))
    assert bad.application_properties[b"status-code"] == 400


AUDIENCE = "sb://127.0.0.1:5671/hub"


def put_token(token: str, *, token_type: str = "servicebus.windows.net:sastoken", name: str = AUDIENCE) -> Any:
    message = wire.Message(
        properties=wire.Properties(message_id=uuid.UUID(int=9)),
        application_properties={"operation": "put-token", "type": token_type, "name": name},
        value=token,
    )
    return wire.decode_message(wire.encode_message(message))


def keyed_answer(req: Any, *, now: float | None = None) -> tuple[int, str]:
    when = time.time() if now is None else now
    answer = wire.decode_message(management.cbs_reply(req, key_name="RootManageSharedAccessKey", key="right", now=when))
    status = answer.application_properties[b"status-code"]
    return status, answer.application_properties[b"status-description"].decode()


def sas(key: str, audience: str = AUDIENCE, key_name: str = "RootManageSharedAccessKey") -> AccessToken:
    # The SDK's own credential signs the tokens: the check must accept exactly what the SDK sends.
    return EventHubSharedKeyCredential(key_name, key).get_token(audience)


def test_cbs_with_a_key_accepts_the_sdks_token_for_the_hub_or_its_namespace() -> None:
    assert keyed_answer(put_token(sas("right").token)) == (202, "Accepted")
    assert keyed_answer(put_token(sas("right", "sb://127.0.0.1:5671/").token))[0] == 202


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: sas("wrong").token, "InvalidSignature: The token has an invalid signature."),
        (lambda: sas("right", key_name="reader").token, "InvalidSignature: the key name 'reader' is not known."),
        (lambda: sas("right", "sb://127.0.0.1:5671/other").token, "InvalidAudience"),
        (lambda: sas("right", "sb://127.0.0.1:5671/hu").token, "InvalidAudience"),
        (lambda: "a-bare-string", "InvalidToken: not a shared access signature."),
        (lambda: sas("right").token.replace("&se=", "&xx="), "InvalidToken"),
    ],
)
def test_cbs_with_a_key_refuses_other_tokens_with_401_and_why(token: Callable[[], str], reason: str) -> None:
    status, description = keyed_answer(put_token(token()))
    assert status == 401
    assert description.startswith(reason)
    assert "right" not in description  # the key itself is never echoed


def test_cbs_with_a_key_refuses_an_expired_token_and_a_jwt() -> None:
    token = sas("right")
    status, description = keyed_answer(put_token(token.token), now=token.expires_on + 1)
    assert (status, description) == (401, f"ExpiredToken: The token is expired. Expiration time: {token.expires_on}.")
    status, description = keyed_answer(put_token("eyJ0eXAi.jwt", token_type="jwt"))
    assert status == 401 and "sastoken" in description


def test_cbs_without_a_key_accepts_any_token_as_the_official_emulator() -> None:
    answer = wire.decode_message(management.cbs_reply(put_token("anything", token_type="jwt")))
    assert answer.application_properties[b"status-code"] == 202
    assert management.cbs_accepted(management.cbs_reply(put_token("anything")))
    assert not management.cbs_accepted(management.unauthorized_reply(put_token("anything")))
