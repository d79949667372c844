"""Soak: events at a steady rate through the emulator into ``statepump run``, read by many socket clients.

Run: ``.venv/bin/python bench/soak.py [--seconds 600] [--rate 1000] [--clients 50]``

Processes (all on loopback, all stopped at the end): the bundled emulator
(``python -m statepump.emulator --in-memory``), the sidecar
(``python -m statepump run``), and this script, which

* sends ``--rate`` events/s to partition 0 with the async SDK, on a schedule
  (each tick sends what is due, so a slow send is caught up, not dropped);
  each event sets ``k/<i % keys>`` and ``last`` to ``i``, so the state's size
  is fixed after the first ``keys`` events and any RSS growth past warm-up is
  the process's, not the state's;
* runs ``--clients`` concurrent :class:`~statepump.client.AsyncClient` readers,
  each reading ``last`` (and a random ``k/...``) every ``--client-interval``
  seconds over the Unix socket;
* samples the sidecar's RSS (``/proc/PID/status``) every 5 s.

Propagation of event ``i`` = first time any client saw ``last >= i`` minus
the moment its send started (so it includes the SDK's send, the hub, the
SDK's receive polling, the fold, and the socket read).

The figures are printed as text and, with ``--json FILE``, written as JSON.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: devservices is beside bench/

from azure.eventhub import EventData
from azure.eventhub.aio import EventHubProducerClient

from devservices.emulator import EmulatorProcess
from statepump.client import AsyncClient, PathNotFound


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Figures:
    sent: int = 0
    send_errors: int = 0
    reads: int = 0
    read_errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    sent_at: dict[int, float] = field(default_factory=dict)  # first event of each send -> its send start
    seen_at: dict[int, float] = field(default_factory=dict)  # value of `last` -> first time a client saw it
    rss: list[tuple[float, int]] = field(default_factory=list)

    def error(self, what: str, exc: BaseException) -> None:
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{what}: {type(exc).__name__}: {exc}")


async def produce(cs: str, rate: int, keys: int, until: float, figures: Figures) -> None:
    producer = EventHubProducerClient.from_connection_string(cs)
    async with producer:
        started = time.monotonic()
        while (now := time.monotonic()) < until:
            due = int((now - started) * rate) - figures.sent
            if due <= 0:
                await asyncio.sleep(0.005)  # the producer's tick
                continue
            first = figures.sent
            batch = await producer.create_batch(partition_id="0")
            count = 0
            for i in range(first, first + min(due, 500)):
                body = json.dumps(
                    {
                        "ops": [
                            {"op": "set", "path": f"k/{i % keys}", "value": i},
                            {"op": "set", "path": "last", "value": i},
                        ]
                    }
                )
                try:
                    batch.add(EventData(body))
                except ValueError:
                    break
                count += 1
            send_start = time.monotonic()
            try:
                await producer.send_batch(batch)
            except Exception as exc:  # counted and reported: a soak must not stop on one error
                figures.send_errors += 1
                figures.error("send", exc)
                continue
            for i in range(first, first + count):
                figures.sent_at[i] = send_start
            figures.sent += count


async def read(sock: Path, keys: int, interval: float, until: float, figures: Figures) -> None:
    rng = random.Random()
    async with AsyncClient(sock, timeout=10) as client:
        while time.monotonic() < until:
            try:
                last = await client.get("last")
                now = time.monotonic()
                figures.reads += 1
                if isinstance(last, int) and last not in figures.seen_at:
                    figures.seen_at[last] = now
                await client.get(f"k/{rng.randrange(keys)}")
                figures.reads += 1
            except PathNotFound:
                pass  # the key was not written yet: an answer (404), not an error
            except Exception as exc:
                figures.read_errors += 1
                figures.error("read", exc)
            await asyncio.sleep(interval)


async def sample_rss(pid: int, until: float, figures: Figures, started: float) -> None:
    while time.monotonic() < until:
        with contextlib.suppress(OSError, RuntimeError):
            figures.rss.append((time.monotonic() - started, rss_bytes(pid)))
        await asyncio.sleep(5.0)


def propagation(figures: Figures) -> list[float]:
    """Per sent event: first time a client saw `last` at or past it, minus its send start."""
    seen = sorted(figures.seen_at.items())
    # earliest[j]: the first time any value >= seen[j][0] was seen (a suffix minimum).
    earliest = [t for _, t in seen]
    for j in range(len(earliest) - 2, -1, -1):
        earliest[j] = min(earliest[j], earliest[j + 1])
    out: list[float] = []
    j = 0
    for i in sorted(figures.sent_at):
        while j < len(seen) and seen[j][0] < i:
            j += 1
        if j == len(seen):
            break
        out.append(earliest[j] - figures.sent_at[i])
    return out


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> int | None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            return process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            return None
    return process.returncode


async def wait_ready(sock: Path, sidecar: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sidecar.poll() is not None:
            raise RuntimeError(f"statepump run exited {sidecar.returncode}")
        with contextlib.suppress(Exception):
            async with AsyncClient(sock, timeout=2) as client:
                if await client.ready():
                    return
        await asyncio.sleep(0.1)  # poll interval
    raise TimeoutError("the sidecar was not ready")


async def soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    emulator = EmulatorProcess.on_free_ports(work / "emulator.log")
    cs = emulator.connection_string
    sock = work / "soak.sock"
    sidecar = None
    try:
        await asyncio.to_thread(emulator.start, 60)
        sidecar = start(
            [
                sys.executable,
                "-m",
                "statepump",
                "run",
                "--connection-string",
                cs,
                "--socket",
                str(sock),
                "--data-dir",
                str(work / "data"),
                "--log-level",
                "WARNING",
                *args.sidecar_flag,
            ],
            work / "sidecar.log",
        )
        await wait_ready(sock, sidecar)
        figures = Figures()
        started = time.monotonic()
        until = started + args.seconds
        await asyncio.gather(
            produce(cs, args.rate, args.keys, until, figures),
            sample_rss(sidecar.pid, until, figures, started),
            *(read(sock, args.keys, args.client_interval, until, figures) for _ in range(args.clients)),
        )
        async with AsyncClient(sock, timeout=30) as client:
            await client.get("last", min_sequence=figures.sent - 1, timeout=30)
            status = await client.status()
        elapsed = time.monotonic() - started
    finally:
        sidecar_exit = stop(sidecar) if sidecar is not None else None
        emulator.stop()
    prop = propagation(figures)
    warm = [r for t, r in figures.rss if t >= min(60.0, args.seconds / 4)]
    half = [r for t, r in figures.rss if t >= args.seconds / 2]
    return {
        "seconds": round(elapsed, 1),
        "rate_target": args.rate,
        "events_sent": figures.sent,
        "events_per_second": round(figures.sent / elapsed, 1),
        "send_errors": figures.send_errors,
        "clients": args.clients,
        "reads": figures.reads,
        "reads_per_second": round(figures.reads / elapsed, 1),
        "read_errors": figures.read_errors,
        "error_samples": figures.error_samples,
        "propagation_samples": len(prop),
        "propagation_p50_ms": round(percentile(prop, 0.50) * 1000, 1) if prop else None,
        "propagation_p99_ms": round(percentile(prop, 0.99) * 1000, 1) if prop else None,
        "propagation_max_ms": round(max(prop) * 1000, 1) if prop else None,
        "rss_mb_first": round(figures.rss[0][1] / 2**20, 1) if figures.rss else None,
        "rss_mb_after_warmup": round(warm[0] / 2**20, 1) if warm else None,
        "rss_mb_max": round(max(r for _, r in figures.rss) / 2**20, 1) if figures.rss else None,
        "rss_mb_last": round(figures.rss[-1][1] / 2**20, 1) if figures.rss else None,
        "rss_mb_second_half_spread": round((max(half) - min(half)) / 2**20, 1) if half else None,
        "rss_samples_mb": [(round(t), round(r / 2**20, 1)) for t, r in figures.rss],
        "sidecar_sequence": status["sequence"],
        "sidecar_events_applied": status["events_applied"],
        "sidecar_duplicates_skipped": status["duplicates_skipped"],
        "sidecar_poison_events": status["poison_events"],
        "sidecar_reconnects": status["reconnects"],
        "sidecar_ready": status["ready"],
        "sidecar_gc_collections": status["gc_collections"],
        "sidecar_exit_code": sidecar_exit,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--client-interval", type=float, default=0.02, help="pause between a client's reads")
    parser.add_argument("--keys", type=int, default=1000, help="distinct keys the events overwrite")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--sidecar-flag",
        action="append",
        default=[],
        help="extra flag for statepump run, e.g. --sidecar-flag=--gc-interval=60",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statepump-soak-") as tmp:
        result = asyncio.run(soak(args, Path(tmp)))
    for key, value in result.items():
        if key != "rss_samples_mb":
            print(f"{key:32} {value}")
    print(f"{'rss_samples_mb (s, MB)':32} {result['rss_samples_mb']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = result["send_errors"] == 0 and result["read_errors"] == 0 and result["sidecar_ready"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
