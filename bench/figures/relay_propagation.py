"""Figure 10: propagation, ``send`` -> visible in a pump behind one relay, beside the direct path of figure 4.

Two ``python -m statepump run`` processes: the relay reads the emulator (as
figure 4's sidecar does), and the downstream follows the relay's feed on its
Unix socket (``--upstream``). The producer and the watcher are figure 4's
(``bench/figures/propagation.py``: batches of 10 every 10 ms, ``probe`` set to
``{"i": i}``, watched over the socket API); runs alternate between watching
the downstream and watching the relay itself (the anchor: figure 4's path, in
the same run, on the same emulator and producer).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from azure.eventhub import EventHubProducerClient

from bench.figure import Figure, Size, spread
from bench.figures.propagation import _one_run, _sidecar
from bench.measure import Stats, percentile
from bench.services import ROOT, wait_until
from statepump.client import Client, SidecarError

GOAL_P50_MS = 5.0
GOAL_P99_MS = 20.0


def _downstream(upstream: Path, directory: Path) -> tuple[subprocess.Popen[bytes], Path]:
    socket_path = directory / "downstream.sock"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "statepump", "run", "--upstream", str(upstream)),
            *("--socket", str(socket_path), "--data-dir", str(directory / "downstream"), "--log-level", "WARNING"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def ready() -> bool:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"the downstream exited: {err.strip().splitlines()[-1:]}")
        try:
            with Client(socket_path, timeout=2) as client:
                return client.ready()
        except SidecarError:
            return False

    wait_until(ready, 60, "the downstream becoming ready")
    return process, socket_path


def run(size: Size) -> Figure:
    from bench.hub_throughput import emulator

    rate = size.propagation_rate
    duration = max(1.0, size.propagation_seconds / 4)  # four runs: two behind the relay, two direct
    behind: list[list[float]] = []
    direct: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp, emulator() as cs:
        relay, relay_socket = _sidecar(cs, Path(tmp))
        try:
            downstream, downstream_socket = _downstream(relay_socket, Path(tmp))
            try:
                with EventHubProducerClient.from_connection_string(cs) as producer:
                    _one_run(producer, downstream_socket, rate, min(2.0, duration), 0)  # warm-up: links, watch
                    start = 1_000_000
                    for _ in range(2):
                        behind.append(_one_run(producer, downstream_socket, rate, duration, start))
                        start += 1_000_000
                        direct.append(_one_run(producer, relay_socket, rate, duration, start))
                        start += 1_000_000
            finally:
                downstream.terminate()
                downstream.wait(15)
        finally:
            relay.terminate()
            relay.wait(15)
    p50 = Stats.of([percentile(r, 0.5) for r in behind])
    p99 = Stats.of([percentile(r, 0.99) for r in behind])
    d50 = Stats.of([percentile(r, 0.5) for r in direct])
    d99 = Stats.of([percentile(r, 0.99) for r in direct])
    ms = "{:,.1f}"
    return Figure(
        "10",
        f"propagation: `send` → visible in a pump behind one relay, {rate:,} events/s",
        f"p50 {spread(p50.median, p50.min, p50.max, ms)} ms, p99 {spread(p99.median, p99.min, p99.max, ms)} ms",
        f"direct (figure 4's path, the relay's own socket): p50 {d50.median:,.1f} ms, p99 {d99.median:,.1f} ms",
        f"the relay hop adds p50 {p50.median - d50.median:+,.1f} ms, p99 {p99.median - d99.median:+,.1f} ms",
        f"p50 ≤ {GOAL_P50_MS:g} ms and p99 ≤ {GOAL_P99_MS:g} ms",
        p50.median <= GOAL_P50_MS and p99.median <= GOAL_P99_MS,
        (
            f"{len(behind)} runs of {int(rate * duration):,} events behind the relay, alternating with as many "
            "watching the relay directly; emulator, relay, downstream, producer and watcher share the machine.",
        ),
    )
