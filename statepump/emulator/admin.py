"""The emulator's admin HTTP endpoint (loopback only), for tests and demos.

``GET /partitions/{id}`` returns the partition's numbers as JSON, under
``receivers`` how many receivers each consumer group has on it, and under
``egress`` the events and bytes the hub delivered to each group's receivers
since it started (the hub's egress, what throughput units bill for);
``POST /partitions/{id}/expire?before_sequence=N`` drops the events below N
exactly as retention would and returns the new numbers.
``GET /receivers`` lists every receiver by partition and consumer group (its
link name, ``com.microsoft:receiver-name``, owner level and peer address)
with the limits in force; ``GET /consumergroups`` lists the consumer groups
and ``PUT /consumergroups/{name}`` creates one (201; 200 if it existed), as
the management plane would. Anything else gets a 4xx JSON error naming what
was wrong. :func:`route` is the pure part; the server around it parses
HTTP/1.1 with ``h11``.

>>> from statepump.emulator.hub import Hub
>>> route(Hub("hub", partitions=1), "GET", "/partitions/0")[0]
200
>>> route(Hub("hub", partitions=1), "GET", "/partitions/9")
(404, {'error': "The partition '9' of event hub 'hub' does not exist; partitions are 0."})
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from statepump.emulator.hub import Hub, UnknownPartition

log = logging.getLogger("statepump.emulator.admin")

_PARTITION = re.compile(r"^/partitions/(?P<id>[^/]+)(?P<expire>/expire)?/?$")
_GROUPS = re.compile(r"^/consumergroups(?:/(?P<name>[^/]+))?/?$")
_USAGE = "try GET /partitions/ID, POST /partitions/ID/expire, GET /receivers, GET or PUT /consumergroups[/NAME]"
_MAX_BODY = 64 * 1024


def route(hub: Hub, method: str, target: str) -> tuple[int, dict[str, Any]]:
    """``(status, JSON body)`` for one request."""
    url = urlsplit(target)
    if url.path.rstrip("/") == "/receivers":
        if method != "GET":
            return 405, {"error": f"{method} is not allowed on /receivers; use GET"}
        return 200, hub.receiver_table()
    groups = _GROUPS.match(url.path)
    if groups is not None:
        return _consumer_groups(hub, method, unquote(groups["name"]) if groups["name"] else None)
    match = _PARTITION.match(url.path)
    if match is None:
        return 404, {"error": f"no such resource {url.path!r}; {_USAGE}"}
    partition = match["id"]
    try:
        partition_log = hub.log(partition)
    except UnknownPartition as exc:
        return 404, {"error": str(exc)}
    if match["expire"] is None:
        if method != "GET":
            return 405, {"error": f"{method} is not allowed on /partitions/{partition}; use GET"}
        return 200, {
            **partition_log.info().as_dict(),
            "receivers": hub.receiver_counts(partition),
            "egress": hub.egress_counts(partition),
        }
    if method != "POST":
        return 405, {"error": f"{method} is not allowed on /partitions/{partition}/expire; use POST"}
    values = parse_qs(url.query).get("before_sequence")
    if not values or len(values) != 1 or not re.fullmatch(r"-?\d+", values[0]):
        return 400, {"error": "POST /partitions/ID/expire needs one integer query parameter before_sequence"}
    try:
        dropped = hub.expire(partition, int(values[0]))
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, {"dropped": dropped, **partition_log.info().as_dict()}


def _consumer_groups(hub: Hub, method: str, name: str | None) -> tuple[int, dict[str, Any]]:
    if name is None:
        if method != "GET":
            return 405, {"error": f"{method} is not allowed on /consumergroups; use GET (or PUT /consumergroups/NAME)"}
        return 200, {"consumer_groups": list(hub.groups)}
    if method != "PUT":
        return 405, {"error": f"{method} is not allowed on /consumergroups/{name}; use PUT"}
    try:
        kept, created = hub.create_consumer_group(name)
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return (201 if created else 200), {"consumer_group": kept, "created": created}


async def _serve_connection(hub: Hub, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    connection = h11.Connection(h11.SERVER)

    async def send(status: int, body: dict[str, Any], keep_alive: bool = True) -> None:
        data = json.dumps(body).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
        if not keep_alive:
            headers.append(("connection", "close"))
        writer.write(connection.send(h11.Response(status_code=status, headers=headers)) or b"")
        writer.write(connection.send(h11.Data(data=data)) or b"")
        writer.write(connection.send(h11.EndOfMessage()) or b"")
        await writer.drain()

    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                connection.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                size = 0
                while True:
                    body_event = connection.next_event()
                    if body_event is h11.NEED_DATA:
                        connection.receive_data(await reader.read(65536))
                    elif isinstance(body_event, h11.Data):
                        size += len(body_event.data)
                        if size > _MAX_BODY:
                            await send(413, {"error": "request body too large"}, keep_alive=False)
                            return
                    elif isinstance(body_event, h11.EndOfMessage | h11.ConnectionClosed):
                        break
                status, body = route(hub, event.method.decode(), event.target.decode("ascii", "replace"))
                await send(status, body)
                if connection.our_state is h11.MUST_CLOSE:
                    return
                connection.start_next_cycle()
            else:
                return  # ConnectionClosed or PAUSED
    except h11.RemoteProtocolError as exc:
        if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
                await send(exc.error_status_hint, {"error": f"bad HTTP request: {exc}"}, keep_alive=False)
    except ConnectionError:
        pass
    finally:
        writer.close()


async def start_admin(hub: Hub, host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` (0 = a free port) and serve the admin endpoint."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _serve_connection(hub, reader, writer)
        except Exception:  # a bad request must not leave an unhandled task error
            log.exception("emulator admin: request failed")
            writer.close()

    return await asyncio.start_server(handle, host, port)
