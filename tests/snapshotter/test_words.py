"""Every line a snapshotter run prints makes sense to someone who runs only the snapshotter (issue 18).

The run folds with the pump ``statepump run`` uses, whose lines speak of a
sidecar ("live: caught up", "not serving as ready", "serving sequence N").
These tests run the real ``snapshotter`` command against the emulator and
read everything it printed, for a run that writes, one with nothing new, a
poison event, a gap and a dry run with ``--json``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest

from snapshotter.pumplog import PUMP_LOGGER, speaking_for_the_snapshotter
from statepump.components import make_pump
from statepump.emulator import Emulator
from statepump.eventhubs.send import send_events
from statepump.settings import load
from statepump.sources.memory import MemorySource
from tests.snapshotter.test_command import hub_args, send, snapshotter

#: Words of a sidecar, which a snapshotter does not say.
SIDECAR_WORDS = re.compile(r"\bserving\b|\blive:|\bready\b")


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_in_snapshotter_words(text: str) -> None:
    for line in lines(text):
        assert not SIDECAR_WORDS.search(line), line


@pytest.mark.emulator
async def test_a_run_that_writes_and_one_with_nothing_new(emulator: Emulator, tmp_path: Path) -> None:
    await send(emulator, 0, 10)
    done = await snapshotter(*hub_args(emulator, tmp_path, "--log-level", "INFO"))
    assert done.code == 0, done.err
    assert_in_snapshotter_words(done.err + done.out)
    [caught_up] = [line for line in lines(done.err) if "caught up" in line]
    assert "caught up at 9: 10 events in" in caught_up
    again = await snapshotter(*hub_args(emulator, tmp_path, "--log-level", "INFO"))
    assert again.code == 0, again.err
    assert_in_snapshotter_words(again.err + again.out)
    assert "the snapshot at 9 is this reducer's; no event after it to fold" in again.err
    assert "caught up" not in again.err  # aimed at 8 (9's name is taken): "caught up at 9" would contradict it


@pytest.mark.emulator
async def test_a_poison_event_is_said_once_in_the_snapshotters_words(emulator: Emulator, tmp_path: Path) -> None:
    await send(emulator, 0, 8)
    await send_events(connection_string=emulator.connection_string, bodies=[b"not json"], partition="0")
    await send(emulator, 9, 8)
    done = await snapshotter(*hub_args(emulator, tmp_path, "--log-level", "INFO"))
    assert done.code == 1
    assert_in_snapshotter_words(done.err + done.out)
    poison = [line for line in lines(done.err) if "poison event 8" in line]
    assert len(poison) == 1, done.err  # the run's failure line, not the pump's stop as well
    assert poison[0].startswith("snapshotter: cannot reach sequence 16: poison event 8 on partition 0")
    assert "folds the events only up to 7, so nothing is written" in poison[0]


@pytest.mark.emulator
async def test_a_poison_event_seen_before_is_said_once_too(emulator: Emulator, tmp_path: Path) -> None:
    """Twice, with a dead-letter sink: where the pump remembers a poison event across restarts, it says
    "still stopped at"; a snapshotter run says it once either way, in its own line."""
    await send(emulator, 0, 8)
    await send_events(connection_string=emulator.connection_string, bodies=[b"not json"], partition="0")
    dead = ["--dead-letter", str(tmp_path / "dead-letters.jsonl"), "--log-level", "INFO"]
    for _ in range(2):
        done = await snapshotter(*hub_args(emulator, tmp_path / "snapshots", *dead))
        assert done.code == 1
        assert_in_snapshotter_words(done.err + done.out)
        assert len([line for line in lines(done.err) if "poison event 8" in line]) == 1, done.err


@pytest.mark.emulator
async def test_a_gap_is_said_once_in_the_snapshotters_words(emulator: Emulator, tmp_path: Path) -> None:
    await send(emulator, 0, 10)
    assert (await snapshotter(*hub_args(emulator, tmp_path))).code == 0
    await send(emulator, 10, 20)
    emulator.expire("0", 20)
    done = await snapshotter(*hub_args(emulator, tmp_path, "--log-level", "INFO"))
    assert done.code == 1
    assert_in_snapshotter_words(done.err + done.out)
    assert "re-checking" not in done.err  # a run gives up at once; it re-checks nothing
    assert len([line for line in lines(done.err) if "10..19" in line]) == 1, done.err


@pytest.mark.emulator
async def test_a_dry_run_with_json(emulator: Emulator, tmp_path: Path) -> None:
    await send(emulator, 0, 10)
    assert (await snapshotter(*hub_args(emulator, tmp_path))).code == 0
    done = await snapshotter(*hub_args(emulator, tmp_path, "--dry-run", "--json", "--log-level", "INFO"))
    assert done.code == 0, done.err
    assert json.loads(done.out)["action"] == "nothing-new"
    assert_in_snapshotter_words(done.err)
    for line in lines(done.err):
        assert "needed only if" not in line and "aiming at" not in line, line


async def test_another_pump_in_the_same_process_keeps_its_own_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=PUMP_LOGGER)

    async def run_a_pump(name: str) -> None:
        source = MemorySource()
        source.append({"op": "set", "path": "a", "value": 1})
        pump = make_pump(load({"snapshot_dir": str(tmp_path / name)}, environ={}), source=source)
        async with pump:
            await pump.wait_ready(timeout=10)

    async def in_a_run() -> None:
        with speaking_for_the_snapshotter():
            await run_a_pump("run")

    # Both at once: the run's context must not reach the sidecar's pump.
    await asyncio.gather(in_a_run(), run_a_pump("sidecar"))
    assert caplog.messages.count("live: caught up at sequence 0") == 1
