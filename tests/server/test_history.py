"""``/v1/history``, ``/v1/diff`` and ``/v1/children`` over a real socket, from a real pump's ring."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from statepump.core import statejson
from statepump.core.changes import diff
from statepump.core.configops import config
from statepump.core.events import Version
from statepump.core.fold import fold
from statepump.core.history import History
from statepump.pump import Pump
from statepump.sources.memory import MemorySource
from tests.server.conftest import body_of, make_server, raw_exchange, status_of

PATHS = ["markup/tshirt", "markup/hat", "limits", "limits/rps", "flags/dark", "other"]


def body_for(rng: random.Random, n: int) -> dict[str, Any]:
    path = rng.choice(PATHS)
    kind = rng.random()
    if kind < 0.15:
        return {"op": "delete", "path": path}
    if kind < 0.3:
        return {"op": "merge", "path": path.split("/")[0], "value": {"rps": n, "burst": n * 2}}
    if kind < 0.35:
        return {"ops": [{"op": "set", "path": path, "value": n}, {"op": "set", "path": "other", "value": n}]}
    if kind < 0.37:
        return {"op": "explode", "path": path}  # rejected: changes nothing
    return {"op": "set", "path": path, "value": n}


def touches(body: dict[str, Any], prefix: tuple[str, ...]) -> bool:
    """The expectation, written apart from the code under test."""
    ops = body.get("ops", [body])
    for op in ops:
        path = tuple(op["path"].split("/"))
        paths = [(*path, k) for k in op["value"]] if op["op"] == "merge" else [path]
        for p in paths:
            n = min(len(p), len(prefix))
            if p[:n] == prefix[:n]:
                return True
    return False


async def get_json(socket: Path, target: str) -> tuple[int, Any]:
    response = await raw_exchange(socket, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return status_of(response), json.loads(body_of(response))


def replay(bodies: list[bytes], through: int) -> Any:
    from datetime import UTC, datetime

    from tests.core.strategies import events_from

    start = Version(config.initial, -1, None, "0")
    events = events_from(bodies[: through + 1])
    return fold(start, events, config, applied_at=datetime.now(UTC), policy="skip").version.state


async def test_history_lists_exactly_the_changes_to_a_path_among_5000_events(socket_dir: Path) -> None:
    rng = random.Random(17)
    source = MemorySource(max_wait=0.05)
    bodies = [body_for(rng, n) for n in range(5000)]
    pump: Pump[Any] = Pump(source)
    await pump.start()
    server = make_server(pump, socket_dir)
    await server.start()
    assert server.socket_path is not None
    try:
        await pump.wait_ready(timeout=10)
        for n, body in enumerate(bodies):
            source.append(body, properties={"statepump-author": f"writer-{n % 3}"})
        await pump.wait_for(4999, timeout=30)
        for prefix in (("markup", "tshirt"), ("limits",), ("limits", "rps", "deeper"), ("nothing",)):
            want = [n for n in range(4999, -1, -1) if touches(bodies[n], prefix)]
            got: list[int] = []
            before = None
            while True:
                target = f"/v1/history?path={'/'.join(prefix)}&limit=1000" + (f"&before={before}" if before else "")
                status, page = await get_json(server.socket_path, target)
                assert status == 200
                got += [e["sequence"] for e in page["entries"]]
                if not page["more"]:
                    break
                before = page["next_before"]
            assert got == want, prefix
        status, page = await get_json(server.socket_path, "/v1/history?path=markup/tshirt&limit=1")
        [entry] = page["entries"]
        n = entry["sequence"]
        assert entry["author"] == f"writer-{n % 3}"
        assert entry["properties"] == {"statepump-author": f"writer-{n % 3}"}
        assert entry["operations"] == bodies[n].get("ops", [bodies[n]])
        assert (page["oldest"], page["newest"]) == (0, 4999)
        rejected = next(n for n, b in enumerate(bodies) if b.get("op") == "explode")
        status, page = await get_json(server.socket_path, f"/v1/history?limit=1&before={rejected + 1}")
        assert page["entries"][0]["outcome"] == "rejected"
        assert "explode" in page["entries"][0]["reason"]

        # Diffs between any two versions the ring covers equal the difference of two replays.
        encoded = [json.dumps(b).encode() for b in bodies]
        for start, end in ((-1, 4999), (100, 101), (2500, 4000), (4000, 2500), (4999, 4999)):
            status, doc = await get_json(server.socket_path, f"/v1/diff?from={start}&to={end}")
            assert status == 200, doc
            expected = [c.as_json() for c in diff(replay(encoded, start), replay(encoded, end))]
            assert doc["changes"] == json.loads(statejson.encode(expected)), (start, end)
        status, doc = await get_json(server.socket_path, "/v1/diff?from=10&to=4000&path=markup/tshirt")
        assert [c["path"] for c in doc["changes"]] in ([], ["markup/tshirt"], ["markup"])
    finally:
        await server.stop(grace=1.0)
        await pump.stop()


async def test_diff_outside_the_ring_is_410_naming_the_kept_range(socket_dir: Path) -> None:
    source = MemorySource(max_wait=0.05)
    pump: Pump[Any] = Pump(source, history=History(max_events=50))
    await pump.start()
    server = make_server(pump, socket_dir)
    await server.start()
    assert server.socket_path is not None
    try:
        await pump.wait_ready(timeout=10)
        for n in range(300):
            source.append({"op": "set", "path": f"k{n % 7}", "value": n})
            if n % 10 == 9:
                await pump.wait_for(n, timeout=10)  # several batches, so several checkpoints
        status, doc = await get_json(server.socket_path, "/v1/diff?from=3&to=299")
        assert status == 410
        oldest, newest = doc["oldest"], doc["newest"]
        assert newest == 299
        assert 299 - 60 <= oldest <= 299
        assert f"{oldest}..{newest}" in doc["error"]
        status, doc = await get_json(server.socket_path, f"/v1/diff?from={oldest}&to=299")
        assert status == 200
        # The ring's bound holds, and with it what the checkpoints keep alive.
        assert len(pump.history) <= 50
        assert len(server.explorer.checkpoints) <= 51
    finally:
        await server.stop(grace=1.0)
        await pump.stop()


async def test_children_are_paged_and_bad_parameters_are_400(socket_dir: Path) -> None:
    source = MemorySource(max_wait=0.05)
    source.append({"op": "set", "path": "big", "value": {f"key{i:05}": {"n": i} for i in range(20_000)}})
    source.append({"op": "set", "path": "small", "value": {"b": 2, "a": {"x": 1}}})
    pump: Pump[Any] = Pump(source)
    await pump.start()
    server = make_server(pump, socket_dir)
    await server.start()
    assert server.socket_path is not None
    try:
        await pump.wait_for(1, timeout=10)
        status, doc = await get_json(server.socket_path, "/v1/children?path=small")
        assert status == 200
        assert doc["children"] == [{"key": "a", "kind": "map", "size": 1}, {"key": "b", "kind": "value", "value": 2}]
        # A map this large is paged by cursor, in its own order: every key once.
        keys: list[str] = []
        target = "/v1/children?path=big&limit=1000"
        while target:
            status, doc = await get_json(server.socket_path, target)
            assert doc["sorted"] is False
            keys += [c["key"] for c in doc["children"]]
            target = f"/v1/children?path=big&limit=1000&cursor={doc['next_cursor']}" if doc["next_cursor"] else ""
        assert sorted(keys) == [f"key{i:05}" for i in range(20_000)]
        status, doc = await get_json(server.socket_path, "/v1/children?path=big&limit=10&offset=19995")
        assert len(doc["children"]) == 5  # an offset still works, at the cost of its depth
        status, doc = await get_json(server.socket_path, "/v1/children?path=big&prefix=key1999")
        assert [c["key"] for c in doc["children"]] == [f"key1999{i}" for i in range(10)]
        for target in ("/v1/children?path=nope", "/v1/history?limit=0", "/v1/diff?from=1", "/v1/history?x=1"):
            status, doc = await get_json(server.socket_path, target)
            assert status in (400, 404), target
            assert "\n" not in doc["error"]
    finally:
        await server.stop(grace=1.0)
        await pump.stop()


async def test_memory_follows_the_rings_bound_not_the_number_of_events() -> None:
    import gc
    import tracemalloc

    from statepump.serving.explore import Explorer

    source = MemorySource(max_wait=0.05)
    pump: Pump[Any] = Pump(source, history=History(max_events=500))
    await pump.start()
    explorer = Explorer(pump)
    try:
        await pump.wait_ready(timeout=10)
        explorer.start()

        async def feed(start: int, count: int) -> None:
            for n in range(start, start + count):
                source.append({"op": "set", "path": f"k{n % 50}", "value": "x" * 100 + str(n)})
                if n % 100 == 99:
                    await pump.wait_for(n, timeout=10)
                    source.expire(n - 200)  # the source forgets, as a hub's retention does

        tracemalloc.start()
        try:
            await feed(0, 3000)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            await feed(3000, 20_000)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(pump.history) <= 500
        assert len(explorer.checkpoints) <= 501
        assert after - before < 1_000_000, (before, after)  # 20,000 more events of ~130 bytes: 2.6 MB if kept
        kept = explorer.diff(pump.history.oldest or 0, pump.version.sequence)
        assert kept  # the kept range still answers
    finally:
        explorer.stop()
        await pump.stop()
