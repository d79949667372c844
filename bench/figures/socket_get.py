"""Figure 5: one key over the socket API with ``statepump.client``, against Redis ``GET`` over a Unix socket.

Built on ``bench/socket_get.py`` (its sidecar process, its Redis on a
temporary Unix socket, its latency loop): one blocking client calls in a loop,
rounds alternating between the two servers so that the machine's background
load touches both alike. Per round p50 and p99; the figure is the median over
rounds. Floor, in the same rounds: a raw Unix-socket request/response round
trip in Python (``socket_get.serve_raw``: a blocking server in its own
process answering each ``recv`` with one ``sendall``; the client ``sendall`` +
``recv``), the least any Python client and server pay per call here.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench.figure import Figure, ServiceUnavailable, Size, spread
from bench.measure import Stats, percentile

GOAL_REDIS = 1.0
GOAL_FLOOR = 1.5


def run(size: Size) -> Figure:
    if shutil.which("redis-server") is None:
        raise ServiceUnavailable("figure 5 needs Redis: apt-get install redis-server")
    try:
        import redis  # noqa: F401
    except ImportError:
        raise ServiceUnavailable("figure 5 needs redis-py: pip install -e '.[bench]'") from None
    from bench import socket_get

    keys = min(size.keys, 100_000)
    ours_p50, ours_p99, theirs_p50, theirs_p99, raw_p50, raw_p99 = [], [], [], [], [], []
    loop_p50: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-get-") as tmp:
        directory = Path(tmp)
        try:
            sidecar, sidecar_socket = socket_get.start_statepump(directory, keys, None)
        except SystemExit as exc:
            raise RuntimeError(f"the statepump sidecar did not start: {exc}") from None
        try:
            try:
                redis_server = socket_get.start_redis(directory)
            except SystemExit as exc:
                raise ServiceUnavailable(f"figure 5: {exc} (apt-get install redis-server)") from None
            raw_server, raw_socket = socket_get.start_raw(directory)
            loop_server, loop_socket = socket_get.start_raw(directory, "serve-raw-asyncio")
            try:
                for _ in range(max(3, size.runs)):
                    mine = [ns / 1e3 for ns in socket_get.latencies("statepump", sidecar_socket, size.gets)]
                    theirs = [ns / 1e3 for ns in socket_get.latencies("redis", redis_server.socket_path, size.gets)]
                    bare = [ns / 1e3 for ns in socket_get.latencies("raw", raw_socket, size.gets)]
                    looped = [ns / 1e3 for ns in socket_get.latencies("raw", loop_socket, size.gets)]
                    loop_p50.append(percentile(looped, 0.5))
                    ours_p50.append(percentile(mine, 0.5))
                    ours_p99.append(percentile(mine, 0.99))
                    theirs_p50.append(percentile(theirs, 0.5))
                    theirs_p99.append(percentile(theirs, 0.99))
                    raw_p50.append(percentile(bare, 0.5))
                    raw_p99.append(percentile(bare, 0.99))
            finally:
                redis_server.stop()
                for floor_server in (raw_server, loop_server):
                    floor_server.terminate()
                    floor_server.wait(10)
        finally:
            sidecar.terminate()
            sidecar.wait(10)
    p50, p99 = Stats.of(ours_p50), Stats.of(ours_p99)
    r50, r99 = Stats.of(theirs_p50), Stats.of(theirs_p99)
    f50, f99 = Stats.of(raw_p50), Stats.of(raw_p99)
    ratio50, ratio99 = p50.median / r50.median, p99.median / r99.median
    floor50, floor99 = p50.median / f50.median, p99.median / f99.median
    us = "{:,.1f}"
    return Figure(
        "5",
        f"socket `GET` of one key, `statepump.client` ({keys:,}-key state)",
        f"p50 {spread(p50.median, p50.min, p50.max, us)} µs, p99 {spread(p99.median, p99.min, p99.max, us)} µs",
        f"Redis `GET` (redis-py, Unix socket): p50 {r50.median:,.1f} µs, p99 {r99.median:,.1f} µs",
        f"Redis: p50 {ratio50:.2f}×, p99 {ratio99:.2f}×; floor: p50 {floor50:.2f}×, p99 {floor99:.2f}×",
        f"p50 and p99 ≤ {GOAL_REDIS:g}× Redis and ≤ {GOAL_FLOOR:g}× the floor",
        max(ratio50, ratio99) <= GOAL_REDIS and max(floor50, floor99) <= GOAL_FLOOR,
        (
            f"{p50.runs} alternating rounds of {size.gets:,} calls each (after 500 warm-up calls per round), one "
            "client, keep-alive connection; the value is a small JSON object.",
            "The floor's server is Python too, blocking, in its own process: it answers each `recv` with a fixed "
            "`sendall` and parses nothing, so the gap to it is statepump's client and server code (request, lookup, "
            "encoding, asyncio's event loop in the sidecar).",
            f"The same fixed answer from an asyncio `Protocol` server (the sidecar's kind of server, nothing parsed): "
            f"p50 {Stats.of(loop_p50).median:,.1f} µs, {Stats.of(loop_p50).median / f50.median:.2f}× the blocking "
            "floor, in the same rounds: the part of the gap that is the event loop's own wake-up and write.",
        ),
        floor=f"raw Unix-socket round trip in Python: p50 {f50.median:,.1f} µs, p99 {f99.median:,.1f} µs",
    )
