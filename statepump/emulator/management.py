"""Request/reply nodes ``$cbs`` and ``$management`` (pure: message in, reply out).

Both nodes answer on the sender link of the same session whose source is the
node (the SDK sends no ``reply-to``), with the request's ``message-id`` echoed
unchanged as ``correlation-id`` and the outcome in the application properties
``status-code`` / ``status-description``.

By default the emulator accepts any token, as the official one does:
``put-token`` only checks the request's shape. Given a key, it checks SAS
tokens as the service does (:func:`sas_token_problem`) and answers 401 to a
bad one, so a wrong key can be tested against the real SDK.

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

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, quote_plus

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


SAS_TOKEN_TYPE = "servicebus.windows.net:sastoken"  # noqa: S105 (a token type, not a secret)
_SAS_PREFIX = "SharedAccessSignature "


def sas_token_problem(token: object, audience: str, *, key_name: str, key: str, now: float) -> str | None:
    r"""Why ``token`` does not grant ``audience``, in the service's words; ``None`` if it does.

    A SAS token is ``SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>&skn=<key name>``
    (URL-encoded), the signature being base64 of HMAC-SHA256 with the key over
    the URL-encoded resource, a newline and the expiry (Unix seconds). The
    resource must be the audience or a path above it (case aside).

    >>> import time, urllib.parse
    >>> def sign(sr, se, key):
    ...     mac = hmac.new(key.encode(), f"{urllib.parse.quote_plus(sr)}\n{se}".encode(), hashlib.sha256)
    ...     sig = base64.b64encode(mac.digest()).decode()
    ...     return _SAS_PREFIX + urllib.parse.urlencode({"sr": sr, "sig": sig, "se": se, "skn": "root"})
    >>> good = sign("sb://h/hub", 2000, "k")
    >>> sas_token_problem(good, "sb://h/hub", key_name="root", key="k", now=1000) is None
    True
    >>> sas_token_problem(sign("sb://h/hub", 2000, "other"), "sb://h/hub", key_name="root", key="k", now=1000)
    'InvalidSignature: The token has an invalid signature.'
    >>> sas_token_problem(good, "sb://h/hub", key_name="root", key="k", now=3000)
    'ExpiredToken: The token is expired. Expiration time: 2000.'
    """
    if isinstance(token, bytes):
        token = token.decode("utf-8", "replace")
    if not isinstance(token, str) or not token.startswith(_SAS_PREFIX):
        return "InvalidToken: not a shared access signature."
    fields = parse_qs(token[len(_SAS_PREFIX) :], keep_blank_values=True)
    try:
        ((resource,), (signature,), (expiry,), (name,)) = (fields[f] for f in ("sr", "sig", "se", "skn"))
        expires = int(expiry)
    except (KeyError, ValueError):
        return "InvalidToken: a shared access signature needs one each of sr, sig, se and skn."
    if name != key_name:
        return f"InvalidSignature: the key name {name!r} is not known."
    mac = hmac.new(key.encode(), f"{quote_plus(resource)}\n{expiry}".encode(), hashlib.sha256)
    if not hmac.compare_digest(base64.b64encode(mac.digest()).decode(), signature):
        return "InvalidSignature: The token has an invalid signature."
    if expires <= now:
        return f"ExpiredToken: The token is expired. Expiration time: {expires}."
    granted, wanted = resource.lower().rstrip("/"), audience.lower().rstrip("/")
    if wanted != granted and not wanted.startswith(granted + "/"):
        return f"InvalidAudience: the token is for {resource!r}, not {audience!r}."
    return None


def cbs_reply(request: Any, *, key_name: str = "", key: str | None = None, now: float = 0.0) -> bytes:
    """The answer to a ``$cbs`` request: ``put-token`` is accepted with 202.

    With a ``key``, only a SAS token signed with it (as ``key_name``) and
    valid at ``now`` is accepted; any other token gets 401 and the reason.
    """
    operation = _prop(request, b"operation")
    if operation != "put-token":
        return _reply(request, 400, f"unsupported $cbs operation {operation!r} (only put-token)")
    audience = _prop(request, b"name")
    if audience is None:
        return _reply(request, 400, "put-token lacks the 'name' (audience) property")
    if key is not None:
        if _prop(request, b"type") != SAS_TOKEN_TYPE:
            return _reply(request, 401, f"Unauthorized: this namespace accepts only {SAS_TOKEN_TYPE} tokens.")
        problem = sas_token_problem(request.value, audience, key_name=key_name, key=key, now=now)
        if problem is not None:
            return _reply(request, 401, problem)
    return _reply(request, 202, "Accepted")


def unauthorized_reply(request: Any) -> bytes:
    """The answer to a ``$management`` request on a connection that put no valid token."""
    return _reply(request, 401, "Unauthorized: no valid token was put on this connection.")


def cbs_accepted(reply: bytes) -> bool:
    """Whether a :func:`cbs_reply` accepted the token (the connection may then attach links)."""
    status = wire.decode_message(reply).application_properties[b"status-code"]
    return bool(status == 202)


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
