"""Request/reply nodes ``$cbs`` and ``$management`` (pure: message in, reply out).

Both nodes answer on the sender link of the same session whose source is the
node (the SDK sends no ``reply-to``), with the request's ``message-id`` echoed
unchanged as ``correlation-id`` and the outcome in the application properties
``status-code`` / ``status-description``.

The emulator accepts any token: ``put-token`` only checks the request's shape.

>>> from statepump.emulator import wire
>>> request = wire.Message(
...     properties=wire.Properties(message_id=7),
...     application_properties={"operation": "put-token", "type": "jwt", "name": "sb://h/hub"},
...     value="token",
... )
>>> reply = wire.decode_message(cbs_reply(wire.decode_message(wire.encode_message(request))))
>>> reply.application_properties[b"status-code"], reply.properties.correlation_id
(202, 7)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from statepump.emulator import wire
from statepump.emulator.log import PartitionInfo

EVENTHUB_TYPE = b"com.microsoft:eventhub"
PARTITION_TYPE = b"com.microsoft:partition"


def _long(value: int) -> dict[str, Any]:
    return {wire.TYPE: wire.AMQPTypes.long, wire.VALUE: value}


def _timestamp(ms: int) -> dict[str, Any]:
    return {wire.TYPE: wire.AMQPTypes.timestamp, wire.VALUE: ms}


def _reply(request: Any, status: int, description: str, body: Any = None) -> bytes:
    message_id = request.properties.message_id if request.properties is not None else None
    properties = wire.Properties(correlation_id=message_id) if message_id is not None else None
    message = wire.Message(
        properties=properties,
        application_properties={
            "status-code": {wire.TYPE: wire.AMQPTypes.int, wire.VALUE: status},
            "status-description": description,
            # The SDK's management link reads this spelling (it ignores the
            # field name the Event Hubs layer asks for), so send both.
            "statusDescription": description,
        },
        value=body,
    )
    return wire.encode_message(message)


def _prop(request: Any, key: bytes) -> str | None:
    value = (request.application_properties or {}).get(key)
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def cbs_reply(request: Any) -> bytes:
    """The answer to a ``$cbs`` request (``put-token`` is accepted with 202)."""
    operation = _prop(request, b"operation")
    if operation != "put-token":
        return _reply(request, 400, f"unsupported $cbs operation {operation!r} (only put-token)")
    if _prop(request, b"name") is None:
        return _reply(request, 400, "put-token lacks the 'name' (audience) property")
    return _reply(request, 202, "Accepted")


def management_reply(
    request: Any,
    *,
    eventhub: str,
    created_at_ms: int,
    partition_ids: Sequence[str],
    partition_info: Callable[[str], PartitionInfo],
) -> bytes:
    """The answer to a ``$management`` request: ``READ`` of the hub or of a partition."""
    operation = _prop(request, b"operation")
    kind = (request.application_properties or {}).get(b"type")
    name = _prop(request, b"name")
    if operation != "READ":
        return _reply(request, 400, f"unsupported $management operation {operation!r} (only READ)")
    if name is None or name.lower() != eventhub.lower():
        return _reply(request, 404, f"The messaging entity '{name}' could not be found.")
    body: dict[str, Any]
    if kind == EVENTHUB_TYPE:
        body = {
            "name": eventhub,
            "type": "com.microsoft:eventhub",
            "created_at": _timestamp(created_at_ms),
            "partition_count": {wire.TYPE: wire.AMQPTypes.int, wire.VALUE: len(partition_ids)},
            "partition_ids": {
                wire.TYPE: wire.AMQPTypes.array,
                wire.VALUE: [{wire.TYPE: wire.AMQPTypes.string, wire.VALUE: p} for p in partition_ids],
            },
        }
        return _reply(request, 200, "OK", body)
    if kind == PARTITION_TYPE:
        partition = _prop(request, b"partition")
        if partition is None or partition not in partition_ids:
            return _reply(
                request,
                404,
                f"The partition '{partition}' of '{eventhub}' could not be found; "
                f"partitions are {', '.join(partition_ids)}.",
            )
        info = partition_info(partition)
        body = {
            "name": eventhub,
            "type": "com.microsoft:partition",
            "partition": partition,
            "begin_sequence_number": _long(info.begin_sequence),
            "last_enqueued_sequence_number": _long(info.last_sequence),
            "last_enqueued_offset": info.last_offset,
            "last_enqueued_time_utc": _timestamp(info.last_enqueued_ms),
            "is_partition_empty": info.empty,
        }
        return _reply(request, 200, "OK", body)
    shown = kind.decode("utf-8", "replace") if isinstance(kind, bytes) else kind
    return _reply(request, 400, f"unsupported $management type {shown!r}")
