"""Event Hubs source throughput and latency against the bundled emulator (run by hand, not by pytest).

    .venv/bin/python bench/hub_throughput.py                      # 100,000 events, prefetch 3000, 1,000 ev/s for 10 s
    .venv/bin/python bench/hub_throughput.py --prefetch 300 1000 3000 --events 100000 --rate 1000 --seconds 10

The emulator runs in its own process (``python -m statepump.emulator``, in memory, one partition, a free
loopback port), so that it does not share the reader's event loop. Measured:

* catch-up: ``EventHubSource.read(-1)`` over a partition preloaded with ``--events`` events of ~40 bytes,
  from the call to the last event (connection included) and from the first event to the last;
* live latency: a producer thread sends ``--rate`` events/s (batches of 10 every 10 ms) stamped with
  ``time.time()`` (after one warm-up event opens its link); latency is delivery by ``read`` minus the stamp;
  p50/p99 over ``--seconds`` seconds, split into stages: the producer's ``send_batch`` round trip, stamp to
  the emulator's enqueued time (producer, loopback, emulator's write) and enqueued time to delivery by
  ``read`` (emulator to link, the SDK's receive, the source); enqueued times have millisecond resolution.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: devservices is beside bench/

from azure.eventhub import EventData, EventHubProducerClient

from devservices.emulator import EmulatorProcess
from statepump.eventhubs.failures import Backoff
from statepump.sources.eventhub import EventHubSource


@contextmanager
def emulator() -> Iterator[str]:
    """The bundled emulator in its own process (:mod:`devservices.emulator`), in memory, one partition;
    yields its connection string once it answers, and stops it after."""
    process = EmulatorProcess.on_free_ports(partitions=1)
    process.start()
    try:
        yield process.connection_string
    finally:
        process.stop()


def bodies(count: int) -> list[bytes]:
    """``count`` config ``set`` events over 1,000 keys."""
    return [b'{"op":"set","path":"k%d","value":%d}' % (i % 1000, i) for i in range(count)]


def preload(cs: str, bodies: list[bytes]) -> float:
    """Send ``bodies`` to partition 0 in as few batches as fit; the seconds it took."""
    started = time.perf_counter()
    with EventHubProducerClient.from_connection_string(cs) as producer:
        batch = producer.create_batch(partition_id="0")
        for body in bodies:
            event = EventData(body)
            try:
                batch.add(event)
            except ValueError:
                producer.send_batch(batch)
                batch = producer.create_batch(partition_id="0")
                batch.add(event)
        producer.send_batch(batch)
    return time.perf_counter() - started


async def catch_up(cs: str, count: int, prefetch: int, after: int = -1) -> tuple[float, float]:
    source = EventHubSource(connection_string=cs, prefetch=prefetch, max_batch_size=1000, retry=Backoff())
    try:
        started = time.perf_counter()
        first_at = 0.0
        seen = 0
        expected = after + 1
        async for batch in source.read(after):
            if batch and not first_at:
                first_at = time.perf_counter()
            for event in batch:
                if event.sequence != expected:
                    raise AssertionError(f"expected {expected}, got {event.sequence}")
                expected += 1
            seen += len(batch)
            if seen >= count:
                break
        done = time.perf_counter()
    finally:
        await source.close()
    return count / (done - started), (count - 1) / (done - first_at)


def produce(
    cs: str, rate: float, seconds: float, stop: threading.Event, sent: list[int], round_trips: list[float]
) -> None:
    per_batch = 10
    with EventHubProducerClient.from_connection_string(cs) as producer:
        # Open the link first: its set-up (about a second) is not delivery latency.
        warm = producer.create_batch(partition_id="0")
        warm.add(EventData(b"warm-up"))
        producer.send_batch(warm)
        started = time.monotonic()
        n = 0
        while not stop.is_set() and time.monotonic() - started < seconds:
            batch = producer.create_batch(partition_id="0")
            for _ in range(per_batch):
                batch.add(EventData(b"%.6f" % time.time()))
            at = time.perf_counter()
            producer.send_batch(batch)
            round_trips.append(time.perf_counter() - at)
            n += per_batch
            sent[0] = n
            time.sleep(max(0.0, started + n / rate - time.monotonic()))  # pacing


async def latency(cs: str, rate: float, seconds: float, prefetch: int, after: int) -> dict[str, list[float]]:
    """Seconds per event: ``total`` (stamp to read), ``send`` (round trip), ``ingest``, ``deliver``."""
    source = EventHubSource(connection_string=cs, prefetch=prefetch, max_wait=0.5)
    stages: dict[str, list[float]] = {"total": [], "send": [], "ingest": [], "deliver": []}
    stop = threading.Event()
    # Connect first, so that the connection time is not counted as latency.
    reading = source.read(after)
    await anext(reading)
    sent = [0]
    producer = threading.Thread(target=produce, args=(cs, rate, seconds, stop, sent, stages["send"]), daemon=True)
    producer.start()
    try:
        async with asyncio.timeout(seconds + 60):
            async for batch in reading:
                now = time.time()
                for e in batch:
                    if e.body == b"warm-up":
                        continue
                    stamp, enqueued = float(e.body), e.enqueued_time.timestamp()
                    stages["total"].append(now - stamp)
                    stages["ingest"].append(enqueued - stamp)
                    stages["deliver"].append(now - enqueued)
                if not producer.is_alive() and len(stages["total"]) >= sent[0]:
                    break
    finally:
        stop.set()
        producer.join(30)
        await reading.aclose()
        await source.close()
    return stages


def _ms(samples: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max in milliseconds."""
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))], ms[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--prefetch", type=int, nargs="+", default=[3000])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with emulator() as cs:
        took = preload(cs, bodies(args.events))
        print(f"preload: {args.events} events in {took:.1f} s ({args.events / took:,.0f} events/s, sync producer)")
        for prefetch in args.prefetch:
            overall, steady = asyncio.run(catch_up(cs, args.events, prefetch))
            print(
                f"catch-up, prefetch {prefetch}: {overall:,.0f} events/s including connect, "
                f"{steady:,.0f} events/s first to last event"
            )
        stages = asyncio.run(latency(cs, args.rate, args.seconds, max(args.prefetch), args.events - 1))
        count = len(stages["total"])
        p50, p99, worst = _ms(stages["total"])
        print(
            f"latency at {args.rate:,.0f} events/s for {args.seconds:g} s: {count} events "
            f"({count / args.seconds:,.0f}/s), p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms"
        )
        for name, what in (
            ("send", "producer send_batch round trip"),
            ("ingest", "stamp -> enqueued (producer, emulator)"),
            ("deliver", "enqueued -> read yields (emulator, SDK, source)"),
        ):
            p50, p99, worst = _ms(stages[name])
            print(f"  {what:48s} p50 {p50:5.1f} ms, p99 {p99:5.1f} ms, max {worst:5.1f} ms")


if __name__ == "__main__":
    main()
