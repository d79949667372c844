"""Figure 4: propagation, ``send`` -> visible through the socket API, at a sustained rate.

The bundled emulator runs in its own process (``bench/hub_throughput.py``'s
``emulator()``); the real sidecar, ``python -m statepump run`` against it,
serves its Unix socket in another. A producer thread (the SDK's sync
producer) sends ``propagation_rate`` events/s in batches of 10 every 10 ms;
each event sets ``probe`` to ``{"i": i}``. A watcher thread follows ``probe``
with :meth:`statepump.client.Client.watch`. Event ``i`` is visible when the
watcher first sees a value with an index ``>= i``; its latency is that moment
minus the moment its batch was handed to ``send_batch``.

Floor, on the same emulator right after: the bare SDK round trip, the same
producer and pacing, and the SDK's own async consumer
(``EventHubConsumerClient.receive`` on a loop in a thread, a callback that only
takes the time): the latency of an event through the emulator and the SDK with no pump,
no fold and no socket API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from azure.eventhub import EventData, EventHubProducerClient

from bench.figure import Figure, Size, spread
from bench.measure import Stats, percentile
from bench.services import ROOT, wait_until
from statepump.client import Client, SidecarError

GOAL_P50 = 3.0  # x the bare SDK round trip's p50
GOAL_P99 = 5.0  # x its p99
PER_BATCH = 10
FLOOR_SECONDS = 20.0  # of the floor's run at the same rate: enough events for a p99


def bare_round_trip(cs: str, producer: EventHubProducerClient, rate: int, duration: float) -> list[float]:
    """Latencies in ms from ``send_batch`` to the SDK's own consumer callback, no statepump in between.

    The consumer is the async ``EventHubConsumerClient.receive`` (the SDK's default transport) on an event
    loop in a thread of its own; the SDK's synchronous consumer measured about 850 ms at the median here,
    so the async one is the cheaper of the two and the floor.
    """
    from azure.eventhub.aio import EventHubConsumerClient

    total = int(rate * duration)
    sent: dict[int, float] = {}
    latencies: list[float] = []
    opened = threading.Event()
    finished = threading.Event()
    loop = asyncio.new_event_loop()

    async def on_event(_context: object, event: EventData | None) -> None:
        now = time.perf_counter()
        if event is None:
            return
        body = event.body_as_str()
        if body == "open":
            opened.set()
            return
        i = int(body)
        if i in sent:
            latencies.append((now - sent[i]) * 1e3)
        if len(latencies) >= total:
            finished.set()

    consumer = EventHubConsumerClient.from_connection_string(cs, consumer_group="$Default")

    receiving = loop.create_task(consumer.receive(on_event, partition_id="0", starting_position="@latest"))

    def consume() -> None:
        asyncio.set_event_loop(loop)
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(receiving)

    async def stop() -> None:
        # The SDK's receive does not return promptly on close (it waited out a 30 s join here): cancel it,
        # after the close, so that the loop still runs this coroutine to its end.
        await consumer.close()
        receiving.cancel()

    thread = threading.Thread(target=consume, name="bench-bare-consumer", daemon=True)
    thread.start()
    try:
        # The consumer's link is open once it sees an event sent after it started (the set-up is not latency).
        deadline = time.monotonic() + 60
        while not opened.is_set():
            if time.monotonic() > deadline:
                raise RuntimeError("the bare SDK consumer saw nothing within 60 s")
            batch = producer.create_batch(partition_id="0")
            batch.add(EventData("open"))
            producer.send_batch(batch)
            opened.wait(0.5)
        began = time.perf_counter()
        for first in range(0, total, PER_BATCH):
            batch = producer.create_batch(partition_id="0")
            indexes = range(first, min(first + PER_BATCH, total))
            for i in indexes:
                batch.add(EventData(str(i)))
            at = time.perf_counter()
            for i in indexes:
                sent[i] = at
            producer.send_batch(batch)
            time.sleep(max(0.0, began + (first + PER_BATCH) / rate - time.perf_counter()))  # pacing, as above
        if not finished.wait(60):
            raise RuntimeError(f"the bare SDK consumer saw {len(latencies)} of {total} events within 60 s")
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        thread.join(30)
        if not thread.is_alive():
            loop.close()
    return latencies


def _sidecar(connection_string: str, directory: Path) -> tuple[subprocess.Popen[bytes], Path]:
    socket_path = directory / "statepump.sock"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "statepump", "run", "--connection-string", connection_string),
            *("--socket", str(socket_path), "--data-dir", str(directory / "data"), "--log-level", "WARNING"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def ready() -> bool:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"the sidecar exited: {err.strip().splitlines()[-1:]}")
        try:
            with Client(socket_path, timeout=2) as client:
                return client.ready()
        except SidecarError:
            return False

    wait_until(ready, 60, "the sidecar becoming ready")
    return process, socket_path


def _one_run(
    producer: EventHubProducerClient,
    socket_path: Path,
    rate: int,
    duration: float,
    start: int,
    round_trips: list[float] | None = None,
) -> list[float]:
    """Latencies in ms of the events sent during one run; indexes start at ``start``.

    ``round_trips`` gets each ``send_batch`` round trip in ms (the emulator's acknowledged write included).
    """
    sent: dict[int, float] = {}
    latencies: list[float] = []
    total = int(rate * duration)
    last_index = start + total - 1
    done = threading.Event()
    failure: list[BaseException] = []

    def watcher() -> None:
        seen = start - 1
        try:
            with Client(socket_path, timeout=10) as client:
                for _sequence, value in client.watch("probe", idle_timeout=30):
                    now = time.perf_counter()
                    index = value["i"] if isinstance(value, dict) else -1
                    for j in range(max(seen + 1, start), index + 1):
                        latencies.append((now - sent[j]) * 1e3)
                    seen = max(seen, index)
                    if seen >= last_index:
                        return
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            done.set()

    watch = threading.Thread(target=watcher, name="bench-watch")
    watch.start()
    began = time.perf_counter()
    for first in range(start, start + total, PER_BATCH):
        batch = producer.create_batch(partition_id="0")
        for i in range(first, min(first + PER_BATCH, start + total)):
            batch.add(EventData(json.dumps({"op": "set", "path": "probe", "value": {"i": i}})))
        at = time.perf_counter()
        for i in range(first, min(first + PER_BATCH, start + total)):
            sent[i] = at
        producer.send_batch(batch)
        if round_trips is not None:
            round_trips.append((time.perf_counter() - at) * 1e3)
        # Pacing to the target rate (a schedule, not a wait for a condition).
        time.sleep(max(0.0, began + (first + PER_BATCH - start) / rate - time.perf_counter()))
    if not done.wait(60):
        raise RuntimeError("the watcher did not see the last event within 60 s")
    watch.join()
    if failure:
        raise failure[0]
    return latencies


def run(size: Size) -> Figure:
    from bench.hub_throughput import emulator

    rate, duration = size.propagation_rate, size.propagation_seconds
    with tempfile.TemporaryDirectory(prefix="bench-propagation-") as tmp, emulator() as cs:
        sidecar, socket_path = _sidecar(cs, Path(tmp))
        try:
            with EventHubProducerClient.from_connection_string(cs) as producer:
                # Warm-up: opens the producer's link (about a second, not delivery latency) and the watch path.
                _one_run(producer, socket_path, rate, min(2.0, duration), 0)
                runs = []
                round_trips: list[float] = []
                start = 1_000_000
                for _ in range(1):  # one sustained run: the goal is about 60 s at the rate
                    runs.append(_one_run(producer, socket_path, rate, duration, start, round_trips))
                    start += 1_000_000
        finally:
            sidecar.terminate()
            sidecar.wait(15)
        # The floor after the sidecar stopped: the same machine without the sidecar's reading beside it.
        with EventHubProducerClient.from_connection_string(cs) as producer:
            bare = bare_round_trip(cs, producer, rate, min(duration, FLOOR_SECONDS))
    p50 = Stats.of([percentile(r, 0.5) for r in runs])
    p99 = Stats.of([percentile(r, 0.99) for r in runs])
    worst = max(max(r) for r in runs)
    bare50, bare99 = percentile(bare, 0.5), percentile(bare, 0.99)
    ratio50, ratio99 = p50.median / bare50, p99.median / bare99
    ms = "{:,.1f}"
    return Figure(
        "4",
        f"propagation: `send` → visible through the socket API, {rate:,} events/s for {duration:g} s",
        f"p50 {spread(p50.median, p50.min, p50.max, ms)} ms, p99 {spread(p99.median, p99.min, p99.max, ms)} ms",
        "—",
        f"p50 {ratio50:.2f}×, p99 {ratio99:.2f}× the bare round trip",
        f"p50 ≤ {GOAL_P50:g}× and p99 ≤ {GOAL_P99:g}× the bare round trip",
        ratio50 <= GOAL_P50 and ratio99 <= GOAL_P99,
        (
            f"{len(runs)} run(s) of {int(rate * duration):,} events after a warm-up; the longest single latency was "
            f"{worst:,.0f} ms. The sidecar is `python -m statepump run` (a process of its own) reading the emulator "
            "through the SDK; the producer, watcher, emulator and sidecar share the machine's 2 cores.",
            "Latency counts from the moment a batch is handed to `send_batch` (its send round trip included: "
            f"p50 {percentile(round_trips, 0.5):,.1f} ms, p99 {percentile(round_trips, 0.99):,.1f} ms).",
            "The sidecar reads through `statepump.eventhubs.transport.PromptTransport`: the SDK's own receive loop "
            "polls its "
            "buffer every 50 ms (p50 33 ms, p99 73 ms here before it); `bench/hub_throughput.py` splits the hub "
            "part into stages.",
            f"The floor: {len(bare):,} events at the same rate and batches, sent by the same producer and received "
            "by the SDK's async `EventHubConsumerClient.receive` with a callback that only takes the time, "
            f"right after the sidecar stopped: p50 {bare50:,.1f} ms, p99 {bare99:,.1f} ms, longest {max(bare):,.0f} "
            "ms. The SDK's receive loop polls its buffer every 50 ms, which `PromptTransport` replaces, so "
            "statepump is under this floor; the SDK's synchronous consumer measured about 850 ms at the median.",
        ),
        floor=f"bare SDK producer → consumer round trip: p50 {bare50:,.1f} ms, p99 {bare99:,.1f} ms",
    )
