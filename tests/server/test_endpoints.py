"""Every endpoint and status code of the socket API, over a real Unix socket."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from statepump.client import AsyncClient
from statepump.pump import Pump
from statepump.serving.sidecar import Server
from statepump.sources.memory import MemorySource
from tests.server.conftest import body_of, header, make_server, publish, raw_exchange, status_of


def get(target: str, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


async def test_value_at_a_path_with_sequence_and_etag(server: Server, pump: Pump[Any]) -> None:
    assert server.socket_path is not None
    response = await raw_exchange(server.socket_path, get("/v1/state/some/key"))
    assert status_of(response) == 200
    assert json.loads(body_of(response)) == {"x": 1}
    assert header(response, "Statepump-Sequence") == str(pump.version.sequence) == "1"
    assert header(response, "ETag") == '"1"'
    assert header(response, "Content-Type") == "application/json"


async def test_vector_index_and_escaped_segments(server: Server, source: MemorySource, pump: Pump[Any]) -> None:
    assert server.socket_path is not None
    await publish(source, pump, {"op": "set", "path": ["a/b", "c d"], "value": "slashed"})
    response = await raw_exchange(server.socket_path, get("/v1/state/other/1"))
    assert json.loads(body_of(response)) == 20
    response = await raw_exchange(server.socket_path, get("/v1/state/a%2Fb/c%20d"))
    assert json.loads(body_of(response)) == "slashed"
    response = await raw_exchange(server.socket_path, get("/v1/state/other/7"))
    assert status_of(response) == 404


async def test_whole_state(server: Server) -> None:
    assert server.socket_path is not None
    response = await raw_exchange(server.socket_path, get("/v1/state"))
    assert json.loads(body_of(response)) == {"some": {"key": {"x": 1}}, "other": [10, 20, 30]}


async def test_head_has_headers_and_no_body(server: Server) -> None:
    assert server.socket_path is not None
    response = await raw_exchange(server.socket_path, b"HEAD /v1/state/some/key HTTP/1.1\r\n\r\n", head=True)
    assert status_of(response) == 200
    assert header(response, "Content-Length") == "7"
    assert body_of(response) == b""


async def test_missing_path_is_404_naming_it(server: Server) -> None:
    assert server.socket_path is not None
    response = await raw_exchange(server.socket_path, get("/v1/state/some/nope"))
    assert status_of(response) == 404
    error = json.loads(body_of(response))
    assert error["path"] == "some/nope"
    assert "some/nope" in error["error"]
    response = await raw_exchange(server.socket_path, get("/v2/nothing"))
    assert status_of(response) == 404
    assert "/v2/nothing" in json.loads(body_of(response))["error"]


async def test_if_none_match_gives_304_until_a_publish(server: Server, source: MemorySource, pump: Pump[Any]) -> None:
    assert server.socket_path is not None
    first = await raw_exchange(server.socket_path, get("/v1/state/some/key"))
    tag = header(first, "ETag")
    assert tag is not None
    unchanged = await raw_exchange(server.socket_path, get("/v1/state/some/key", f"If-None-Match: {tag}"))
    assert status_of(unchanged) == 304
    assert body_of(unchanged) == b""
    await publish(source, pump, {"op": "set", "path": "some/key", "value": 2})
    changed = await raw_exchange(server.socket_path, get("/v1/state/some/key", f"If-None-Match: {tag}"))
    assert status_of(changed) == 200
    assert json.loads(body_of(changed)) == 2
    assert header(changed, "ETag") != tag


async def test_cached_answer_follows_new_versions(server: Server, source: MemorySource, pump: Pump[Any]) -> None:
    assert server.socket_path is not None
    async with AsyncClient(server.socket_path) as client:
        assert await client.get("some/key") == {"x": 1}
        assert await client.get("some/key") == {"x": 1}
        sequence = await publish(source, pump, {"op": "set", "path": "some/key/x", "value": 5})
        assert await client.get_with_sequence("some/key") == ({"x": 5}, sequence)


async def test_min_sequence_waits_for_the_publish(server: Server, source: MemorySource, pump: Pump[Any]) -> None:
    assert server.socket_path is not None
    async with AsyncClient(server.socket_path) as client:
        waiting = asyncio.create_task(client.get_with_sequence("some/key", min_sequence=2, timeout=10))
        await _until(lambda: server.requests.waiting == 1)
        assert not waiting.done()
        source.append({"op": "set", "path": "some/key", "value": "new"})
        assert await asyncio.wait_for(waiting, 10) == ("new", 2)
        # Already reached: answered at once.
        assert await client.get("some/key", min_sequence=0) == "new"


async def test_min_sequence_timeout_is_504(server: Server) -> None:
    assert server.socket_path is not None
    started = time.monotonic()
    response = await raw_exchange(server.socket_path, get("/v1/state/some/key?min_sequence=99&timeout=0.2"))
    assert status_of(response) == 504
    assert time.monotonic() - started >= 0.2
    error = json.loads(body_of(response))
    assert error["min_sequence"] == 99
    assert error["sequence"] == 1


async def test_status_healthz_readyz_metrics(server: Server) -> None:
    assert server.socket_path is not None
    status = json.loads(body_of(await raw_exchange(server.socket_path, get("/v1/status"))))
    for field in (
        "partition",
        "sequence",
        "enqueued_time",
        "applied_at",
        "lag_events",
        "lag_seconds",
        "ready",
        "not_ready_reason",
        "snapshot_sequence",
        "events_from_capture",
        "events_from_hub",
        "duplicates_skipped",
        "poison_events",
        "reducer",
    ):
        assert field in status, field
    assert status["sequence"] == 1
    assert status["ready"] is True
    assert status_of(await raw_exchange(server.socket_path, get("/healthz"))) == 200
    ready = await raw_exchange(server.socket_path, get("/readyz"))
    assert status_of(ready) == 200
    assert json.loads(body_of(ready)) == {"ready": True, "sequence": 1}
    metrics = await raw_exchange(server.socket_path, get("/metrics"))
    assert status_of(metrics) == 200
    assert header(
        metrics,
        "Content-Type",
    ).startswith("text/plain")  # type: ignore[union-attr]
    text = body_of(metrics).decode()
    assert "statepump_sequence 1.0" in text
    assert 'statepump_events_applied_total{source="hub"} 2.0' in text
    assert 'statepump_http_requests_total{code="200",endpoint="readyz"} 1.0' in text
    assert 'statepump_http_request_duration_seconds_count{endpoint="status"} 1.0' in text


async def test_not_ready_before_anything_is_loaded(socket_dir: Path) -> None:
    # A pump that was never started has applied nothing and is not ready.
    pump: Pump[Any] = Pump(MemorySource())
    server = make_server(pump, socket_dir)
    await server.start()
    try:
        assert server.socket_path is not None
        ready = await raw_exchange(server.socket_path, get("/readyz"))
        assert status_of(ready) == 503
        reason = json.loads(body_of(ready))["reason"]
        assert reason == pump.not_ready_reason
        state = await raw_exchange(server.socket_path, get("/v1/state/a"))
        assert status_of(state) == 503
        assert json.loads(body_of(state))["reason"] == reason
        assert status_of(await raw_exchange(server.socket_path, get("/healthz"))) == 200
    finally:
        await server.stop(grace=1)


async def test_last_good_version_served_while_a_poison_event_stops_the_pump(
    server: Server, source: MemorySource, pump: Pump[Any]
) -> None:
    assert server.socket_path is not None
    source.append(b"this is not json")
    await _until(lambda: not pump.ready)
    ready = await raw_exchange(server.socket_path, get("/readyz"))
    assert status_of(ready) == 503
    assert "2" in json.loads(body_of(ready))["reason"]  # names the poison event's sequence number
    state = await raw_exchange(server.socket_path, get("/v1/state/some/key"))
    assert status_of(state) == 200
    assert header(state, "Statepump-Sequence") == "1"


async def test_an_event_and_its_outcome_while_it_is_in_the_ring(
    server: Server, source: MemorySource, pump: Pump[Any]
) -> None:
    assert server.socket_path is not None
    rejected = await publish(source, pump, {"op": "frobnicate", "path": "some/key"})
    binary = source.append(b"\xff\x00").sequence  # not UTF-8: poison, and the pump stops there
    await _until(lambda: not pump.ready)
    answer = json.loads(body_of(await raw_exchange(server.socket_path, get(f"/v1/events/{rejected}"))))
    assert answer["outcome"] == "rejected" and answer["sequence"] == rejected == 2
    assert answer["reason"] == "unknown op 'frobnicate' (expected 'set', 'delete', 'merge' or 'test')"
    assert json.loads(answer["body"]) == {"op": "frobnicate", "path": "some/key"} and answer["body_encoding"] == "utf-8"
    assert answer["enqueued_time"] and answer["properties"] == {}
    applied = json.loads(body_of(await raw_exchange(server.socket_path, get("/v1/events/1"))))
    assert (applied["outcome"], applied["reason"]) == ("applied", None)
    status = json.loads(body_of(await raw_exchange(server.socket_path, get("/v1/status"))))
    assert status["events_rejected"] == 1 and status["last_rejected_event"]["sequence"] == rejected
    metrics = body_of(await raw_exchange(server.socket_path, get("/metrics"))).decode()
    assert "statepump_events_rejected_total 1.0" in metrics
    # The poison event stopped the fold before it: not in the ring; 404 names what is kept.
    missing = await raw_exchange(server.socket_path, get(f"/v1/events/{binary}"))
    assert status_of(missing) == 404
    error = json.loads(body_of(missing))
    assert error["error"] == "event 3 is not among the recent events kept (it keeps 0..2)"
    assert (error["oldest"], error["newest"]) == (0, 2)
    bad = await raw_exchange(server.socket_path, get("/v1/events/-1"))
    assert status_of(bad) == 400 and "non-negative integer" in json.loads(body_of(bad))["error"]


async def test_methods_other_than_get_and_head_are_405(server: Server) -> None:
    assert server.socket_path is not None
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        request = f"{method} /v1/state/some/key HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}".encode()
        response = await raw_exchange(server.socket_path, request)
        assert status_of(response) == 405, method
        assert header(response, "Allow") == "GET, HEAD"
    assert (await raw_exchange(server.socket_path, get("/v1/state/some/key"))).startswith(b"HTTP/1.1 200")


async def test_big_value_is_streamed_chunked(server: Server, source: MemorySource, pump: Pump[Any]) -> None:
    assert server.socket_path is not None
    big = {f"k{i}": {"n": i} for i in range(20_000)}
    await publish(source, pump, {"op": "set", "path": "big", "value": big})
    async with AsyncClient(server.socket_path) as client:
        assert await client.get("big") == big
        assert await client.get("some/key") == {"x": 1}


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
