"""Benchmark: ``Client.get(path)`` over the Unix socket against Redis ``GET`` with redis-py.

Both servers run in the same benchmark run on the same machine: statepump's
sidecar (a real ``Pump`` over a ``MemorySource`` with ``--keys`` entries,
plus ``Server``) in one process of its own, and Debian's ``redis-server`` on
a temporary Unix socket with ``--port 0``. Reported:

* latency: p50 / p90 / p99 of one blocking client calling in a loop
  (rounds alternate between the two servers, so background load hits both);
* throughput: requests/s from ``--procs`` concurrent client processes.

Run from the repository root::

    .venv/bin/python bench/socket_get.py                 # defaults: 20,000 calls, 4 client processes
    .venv/bin/python bench/socket_get.py --calls 50000 --procs 6 --seconds 5

Needs ``redis-server`` (``apt-get install -y redis-server``) and ``redis``
(``pip install 'statepump[bench]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: devservices is beside bench/

from devservices import Unavailable
from devservices.redis import RedisProcess

KEY_PATH = "some/key"
REDIS_KEY = "some:key"
VALUE = {"rate": 0.03, "enabled": True, "name": "tshirt"}


# ----------------------------------------------------------------- the statepump side


def serve(socket_path: str, keys: int, profile: str | None) -> None:
    """Run a pump and its socket server until SIGTERM (the "one server process")."""
    from statepump.pump import Pump
    from statepump.serving.sidecar import Server
    from statepump.sources.memory import MemorySource

    async def main() -> None:
        source = MemorySource()
        # One event with many keys, then the key the clients read.
        source.append({"op": "merge", "path": [], "value": {"bulk": {f"k{i}": {"n": i} for i in range(keys)}}})
        source.append({"op": "set", "path": KEY_PATH, "value": VALUE})
        pump: Pump[Any] = Pump(source)
        await pump.start()
        await pump.wait_ready(timeout=60)
        server = Server(pump, socket_path=Path(socket_path))
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        await server.stop(grace=1)
        await pump.stop()

    if profile:
        import cProfile

        cProfile.runctx("asyncio.run(main())", globals(), {"asyncio": asyncio, "main": main}, profile)
    else:
        asyncio.run(main())


def start_statepump(directory: Path, keys: int, profile: str | None) -> tuple[subprocess.Popen[str], Path]:
    socket_path = directory / "statepump.sock"
    command = [sys.executable, __file__, "serve", str(socket_path), str(keys)]
    if profile:
        command.append(profile)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        raise SystemExit(f"the statepump server did not start: {line!r}")
    return process, socket_path


def start_redis(directory: Path) -> RedisProcess:
    """``redis-server`` on ``directory/redis.sock`` (:mod:`devservices.redis`), holding the key the clients read."""
    server = RedisProcess(directory)
    try:
        socket_path = server.start()
    except (Unavailable, RuntimeError) as exc:
        raise SystemExit(str(exc)) from None
    import redis

    redis.Redis(unix_socket_path=str(socket_path)).set(REDIS_KEY, json.dumps(VALUE))
    return server


# ----------------------------------------------------------------- the floor: a raw socket round trip

RAW_REQUEST = f"GET {KEY_PATH}\n".encode()
RAW_RESPONSE = json.dumps(VALUE).encode() + b"\n"


def serve_raw(socket_path: str) -> None:
    """The least a Python server can do per request: one ``recv``, one ``sendall`` of a fixed answer, blocking.

    No parsing, no lookup, no event loop: the round trip through the kernel and two Python processes that
    every Unix-socket server here pays, statepump's and Redis's client alike.
    """
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(8)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            while conn.recv(65536):
                conn.sendall(RAW_RESPONSE)


def serve_raw_asyncio(socket_path: str) -> None:
    """The same fixed answer from an asyncio ``Protocol`` (as the sidecar's server runs): the event loop's own cost."""

    class Answer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            self.transport.write(RAW_RESPONSE)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_unix_server(Answer, socket_path)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        async with server:
            await stop.wait()

    asyncio.run(main())


def start_raw(directory: Path, kind: str = "serve-raw") -> tuple[subprocess.Popen[str], Path]:
    """A floor server (``serve-raw``: blocking; ``serve-raw-asyncio``: an asyncio Protocol) in its own process."""
    socket_path = directory / f"{kind}.sock"
    command = [sys.executable, __file__, kind, str(socket_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        raise SystemExit(f"the raw socket server did not start: {line!r}")
    return process, socket_path


# ----------------------------------------------------------------- clients


def statepump_call(socket_path: Path) -> tuple[Callable[[], Any], Callable[[], None]]:
    from statepump.client import Client

    client = Client(socket_path)
    return (lambda: client.get(KEY_PATH)), client.close


def redis_call(socket_path: Path) -> tuple[Callable[[], Any], Callable[[], None]]:
    import redis

    client = redis.Redis(unix_socket_path=str(socket_path))
    return (lambda: client.get(REDIS_KEY)), client.close


def raw_call(socket_path: Path) -> tuple[Callable[[], Any], Callable[[], None]]:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(socket_path))

    def call() -> bytes:
        sock.sendall(RAW_REQUEST)
        return sock.recv(65536)

    return call, sock.close


CALLS = {"statepump": statepump_call, "redis": redis_call, "raw": raw_call}


def latencies(kind: str, socket_path: Path, calls: int) -> list[int]:
    call, close = CALLS[kind](socket_path)
    for _ in range(500):
        call()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        started = clock()
        call()
        samples.append(clock() - started)
    close()
    return samples


def percentile(sorted_samples: list[int], q: float) -> float:
    return sorted_samples[min(len(sorted_samples) - 1, int(q * len(sorted_samples)))] / 1000


def _worker(kind: str, socket_path: str, seconds: float, start_at: float, results: Any) -> None:
    call, close = CALLS[kind](Path(socket_path))
    call()
    while time.time() < start_at:
        time.sleep(0.001)
    count = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            call()
        count += 100
    close()
    results.put(count)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(kind: str, socket_path: Path, procs: int, seconds: float) -> float:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 0.5
    workers = [
        context.Process(target=_worker, args=(kind, str(socket_path), seconds, start_at, results)) for _ in range(procs)
    ]
    for worker in workers:
        worker.start()
    total: int = sum(results.get(timeout=seconds + 60) for _ in workers)
    for worker in workers:
        worker.join()
    return total / seconds


# ----------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="latency samples per server")
    parser.add_argument("--rounds", type=int, default=4, help="alternating latency rounds")
    parser.add_argument("--procs", type=int, default=4, help="client processes for the throughput run")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each throughput run")
    parser.add_argument("--keys", type=int, default=100_000, help="entries in the served state")
    parser.add_argument("--profile", help="write a cProfile of the statepump server process here")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="spbench-", dir="/tmp"))
    statepump_process, statepump_socket = start_statepump(directory, args.keys, args.profile)
    redis_server = start_redis(directory)
    sockets = {"statepump": statepump_socket, "redis": redis_server.socket_path}
    try:
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
            f"state of {args.keys:,} keys; value {json.dumps(VALUE)}"
        )
        samples: dict[str, list[int]] = {"statepump": [], "redis": []}
        per_round = max(1, args.calls // args.rounds)
        for _ in range(args.rounds):
            for kind in ("redis", "statepump"):
                samples[kind] += latencies(kind, sockets[kind], per_round)
        print(f"\nlatency, one client, {per_round * args.rounds:,} calls each (µs)")
        print(f"{'':>10} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8}")
        summary: dict[str, tuple[float, float]] = {}
        for kind in ("redis", "statepump"):
            ordered = sorted(samples[kind])
            p50, p90, p99 = (percentile(ordered, q) for q in (0.5, 0.9, 0.99))
            mean = sum(ordered) / len(ordered) / 1000
            summary[kind] = (p50, p99)
            print(f"{kind:>10} {p50:8.1f} {p90:8.1f} {p99:8.1f} {mean:8.1f}")
        (r50, r99), (s50, s99) = summary["redis"], summary["statepump"]
        print(f"statepump/redis: p50 {s50 / r50:.2f}x, p99 {s99 / r99:.2f}x")

        print(f"\nthroughput, {args.procs} client processes, {args.seconds:g} s each")
        pids = {"statepump": statepump_process.pid, "redis": redis_server.pid}
        for kind in ("redis", "statepump"):
            cpu_before, wall_before = cpu_seconds(pids[kind]), time.monotonic()
            rate = throughput(kind, sockets[kind], args.procs, args.seconds)
            # The run includes the workers' start-up; the server is idle then.
            busy = (cpu_seconds(pids[kind]) - cpu_before) / (time.monotonic() - wall_before)
            served = rate * args.seconds
            per_request = (cpu_seconds(pids[kind]) - cpu_before) / served * 1e6
            print(
                f"{kind:>10} {rate:10,.0f} requests/s; server process busy {busy:.0%} of one CPU, "
                f"{per_request:.1f} µs CPU per request"
            )
    finally:
        statepump_process.terminate()
        redis_server.stop()
        statepump_process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    elif len(sys.argv) > 1 and sys.argv[1] == "serve-raw":
        serve_raw(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "serve-raw-asyncio":
        serve_raw_asyncio(sys.argv[2])
    else:
        main()
