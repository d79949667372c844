"""``python -m bench``: run the figures, print the table, write ``BENCHMARKS.md``."""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import machine, report
from bench.figure import FULL, QUICK, Figure, ServiceUnavailable, Size

ROOT = Path(__file__).resolve().parents[1]

#: figure number -> (module in bench.figures, title); each module has ``run(size) -> Figure``.
FIGURES: dict[str, tuple[str, str]] = {
    "1": ("start", "start to ready, 1M-key state (snapshot in Azurite, hub in the emulator)"),
    "2": ("fold", "fold of `set` events into the 1M-key state"),
    "2s": ("fold_schema", "figure 2's fold with a 20-rule `--schema`, against it without"),
    "2b": ("hub_catchup", "catch-up from the hub through the SDK (emulator → pump)"),
    "3": ("capture_catchup", "catch-up from Capture files: read + decode + fold"),
    "4": ("propagation", "propagation: send → visible through the socket API"),
    "5": ("socket_get", "socket `GET` of one key (`statepump.client`)"),
    "6": ("memory", "memory of the 1M-key state in the sidecar"),
    "7": ("reader_pause", "longest pause seen by a reader thread during a catch-up"),
    "8": ("snapshot", "snapshot write and size, 1M-key state"),
    "9": ("replay", "replay of 1M events into one in-memory model"),
    "10": ("relay_propagation", "propagation: send → visible in a pump behind one relay"),
    "12": ("relay_start", "start to ready of the 1M-key state from a relay's snapshot"),
    "11": ("worker_read", "a pre-fork worker's read of one key from its relay-fed pump"),
    "13": ("send_cli", "`statepump send` of one event, a CLI process, beside `statepump --help`"),
    "14": ("publisher_send", "`Publisher.send` of one event on an open connection, p50/p99"),
    "15": ("relay_egress", "hub receivers and egress: pumps fed by one relay against direct pumps"),
}


def not_run(number: str, why: str) -> Figure:
    return Figure(number, FIGURES[number][1], f"not run: {why}", "—", "—", "—", None)


class NotBuilt(Exception):
    """The figure's module does not exist yet."""


def run_figure(number: str, size: Size) -> Figure:
    name = f"bench.figures.{FIGURES[number][0]}"
    if importlib.util.find_spec(name) is None:
        raise NotBuilt(f"bench/figures/{FIGURES[number][0]}.py is not written yet")
    module = importlib.import_module(name)
    runner: Callable[[Size], Figure] = module.run
    gc.collect()
    return runner(size)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds, for the test suite)")
    parser.add_argument("--only", default=None, metavar="N,...", help=f"figures to run, of {', '.join(FIGURES)}")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the report (default: BENCHMARKS.md for a full run; none for --quick)",
    )
    parser.add_argument(
        "--python-note",
        action="store_true",
        help="print the Python and which pyrsistent implementation (C or pure Python) would run, and exit",
    )
    args = parser.parse_args(argv)
    if args.python_note:
        facts = machine.describe()
        print(f"{facts['Python']}; {facts['pyrsistent implementation']}")
        return 0
    size = QUICK if args.quick else FULL
    selected = list(FIGURES) if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in selected if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    output = args.output if args.output is not None else (None if args.quick else ROOT / "BENCHMARKS.md")
    command = "python -m bench" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")

    facts = machine.describe()
    results: dict[str, Figure] = report.previous(output) if output is not None and args.only else {}
    machines = report.previous_machines(output) if output is not None and args.only else {}
    failed = False
    for number in selected:
        started = time.perf_counter()
        print(f"figure {number}: {FIGURES[number][1]} ...", file=sys.stderr, flush=True)
        try:
            figure = run_figure(number, size)
        except NotBuilt as exc:
            print(f"figure {number}: {exc}", file=sys.stderr, flush=True)
            figure = not_run(number, str(exc))
            failed = True
        except ServiceUnavailable as exc:
            print(f"figure {number}: {exc}", file=sys.stderr, flush=True)
            figure = not_run(number, str(exc))
            failed = True
        except Exception as exc:
            traceback.print_exc()
            figure = not_run(number, f"{type(exc).__name__}: {exc}")
            failed = True
        results[number] = figure
        machines[number] = facts
        print(f"figure {number}: done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        print(report.table([figure]).splitlines()[-1], file=sys.stderr, flush=True)
    ordered = [results[n] for n in FIGURES if n in results]
    print(report.table(ordered))
    if output is not None:
        output.write_text(report.render(ordered, facts, machines, command), encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    return 1 if failed else 0
