"""Figure 13: one ``statepump send`` process against the emulator, beside ``statepump --help`` in the same run.

The bundled emulator runs in its own process (``bench/hub_throughput.py``'s
``emulator()``, one partition). Each round runs ``python -m statepump
--help`` (the anchor: the CLI's own start, the interpreter and its imports)
and then ``python -m statepump send --connection-string CS JSON`` (connect,
send one event, learn its sequence number, print it, exit), each a process
of its own, timed from ``Popen`` to its exit. The rounds alternate the two,
so the machine's background load touches both alike; the figure is the
median over rounds. Every send must print the next sequence number (0, 1,
2, ...): a send that printed anything else fails the figure.

No sidecar answers on ``--socket`` (a path that does not exist), so the
command checks syntax only, as it does when none runs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.figure import Figure, Size, spread
from bench.measure import Stats
from bench.services import ROOT

GOAL_RATIO = 3.0  # x the CLI's own start
GOAL_SECONDS = 0.5  # the "about 0.5 s", reported beside the ratio (the machine sets the anchor)


def _timed(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[2:4])} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return elapsed, done.stdout


def run(size: Size) -> Figure:
    from bench.hub_throughput import emulator

    rounds = max(3, 2 * size.runs + 1)
    helps: list[float] = []
    sends: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp, emulator() as cs:
        nowhere = str(Path(tmp) / "no-sidecar.sock")
        cli = [sys.executable, "-m", "statepump"]
        send = [*cli, "send", "--connection-string", cs, "--socket", nowhere]
        _timed([*cli, "--help"])  # warm-up: the file cache, not the process
        for i in range(rounds + 1):
            help_seconds, _ = _timed([*cli, "--help"])
            send_seconds, printed = _timed([*send, f'{{"op": "set", "path": "bench/send", "value": {i}}}'])
            if printed.strip() != str(i):
                raise RuntimeError(f"send {i} printed {printed.strip()!r}, not its sequence number {i}")
            if i > 0:  # the first send is the warm-up
                helps.append(help_seconds)
                sends.append(send_seconds)
    mine, anchor = Stats.of(sends).scaled(1e3), Stats.of(helps).scaled(1e3)
    ratio = mine.median / anchor.median
    ms = "{:,.0f}"
    return Figure(
        "13",
        "`statepump send` of one event, a CLI process (emulator)",
        f"{spread(mine.median, mine.min, mine.max, ms)} ms",
        f"`statepump --help`: {spread(anchor.median, anchor.min, anchor.max, ms)} ms",
        f"{ratio:.2f}×",
        f"≤ {GOAL_RATIO:g}× `statepump --help` (and about {GOAL_SECONDS * 1e3:.0f} ms)",
        ratio <= GOAL_RATIO,
        (
            f"{mine.runs} alternating rounds after one warm-up; each command a process of its own, from `Popen` "
            "to exit; every send printed its exact sequence number.",
            "A send is the interpreter and the CLI's imports (the anchor), the SDK's imports, four AMQP connections "
            "(the all-partitions link the SDK opens to size a batch, its partition-id lookup, the partition's link, "
            "the management link that reads the partition's count before and after) and the send itself.",
        ),
    )
