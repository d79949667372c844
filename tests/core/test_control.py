"""Control events (statepump/core/control.py): the pure rules, the fold, and pumps released by a skip.

The pumps here read a MemorySource (the same pump as `statepump run`); the
real hub, sidecars and snapshotter are in tests/fleet/test_poison_release.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from pyrsistent import pmap

from statepump.core import control
from statepump.core.configops import config
from statepump.core.errors import Rejected
from statepump.core.events import Event, Version
from statepump.core.fold import Folder, fold
from statepump.core.reducer import Reducer
from statepump.pump import Pump, PumpFailed
from statepump.sources.memory import MemorySource
from statepump.stores.deadletters import DeadLetterFile
from statepump.stores.directory import DirectoryStore
from statepump.stores.snapshots import initial_version, write_snapshot
from tests.core.strategies import T0

SKIP = {control.CONTROL_PROPERTY: control.SKIP}
POISON = b'{"op": "set", "path": "x"'  # not JSON: poison for the config reducer


def ev(n: int, body: bytes, properties: dict[str, Any] | None = None) -> Event:
    return Event("0", n, str(n), T0, None, properties or {}, body)


def set_op(i: int) -> bytes:
    return json.dumps({"op": "set", "path": ["k", str(i % 7)], "value": i}).encode()


# --- the pure rules ---------------------------------------------------------------------


def test_release_is_the_first_valid_skip_after_the_poison_event_that_names_it() -> None:
    good = control.skip_body(8, "typo")
    assert control.release_of(ev(9, good, SKIP), 8) is not None
    assert control.release_of(ev(9, control.skip_body(7, "x"), SKIP), 8) is None  # names another event
    assert control.release_of(ev(7, good, SKIP), 8) is None  # before the event: it did not exist yet
    assert control.release_of(ev(8, good, SKIP), 8) is None
    assert control.release_of(ev(9, good), 8) is None  # no property: an ordinary event, whatever its body
    assert control.release_of(ev(9, b'{"skip": 8}', SKIP), 8) is None  # no reason: malformed, no order


@pytest.mark.parametrize(
    ("body", "properties", "why"),
    [
        (b"{", SKIP, "not JSON"),
        (b"[8]", SKIP, "JSON object"),
        (b'{"skip": "8", "reason": "r"}', SKIP, "sequence number"),
        (b'{"skip": true, "reason": "r"}', SKIP, "sequence number"),
        (b'{"skip": -1, "reason": "r"}', SKIP, "sequence number"),
        (b'{"skip": 8, "reason": "  "}', SKIP, "reason"),
        (control.skip_body(8, "r"), {control.CONTROL_PROPERTY: "undo"}, "unknown kind"),
    ],
)
def test_a_malformed_control_event_is_rejected_with_one_line(body: bytes, properties: dict[str, Any], why: str) -> None:
    with pytest.raises(Rejected, match=why) as raised:
        control.read(ev(3, body, properties))
    assert "\n" not in str(raised.value)


def test_the_writer_refuses_a_skip_in_the_future_or_already_folded_past() -> None:
    assert control.skip_refusal(8, hub_last=12, applied_through=None, halted_at=None) is None
    assert control.skip_refusal(8, hub_last=12, applied_through=7, halted_at=8) is None
    assert "not in the log yet" in (control.skip_refusal(13, hub_last=12, applied_through=None, halted_at=None) or "")
    assert "already folded past" in (control.skip_refusal(8, hub_last=12, applied_through=8, halted_at=None) or "")
    assert ">= 0" in (control.skip_refusal(-1, hub_last=12, applied_through=None, halted_at=None) or "")


# --- the fold ---------------------------------------------------------------------------


def test_a_control_event_never_reaches_the_reducer_and_is_a_no_op_recorded_as_control() -> None:
    seen: list[int] = []

    def apply(state: Any, event: Event) -> Any:
        seen.append(event.sequence)
        return state.set("n", event.sequence)

    reducer = Reducer[Any]("seen", 1, apply, pmap())
    events = [ev(0, b"a"), ev(1, control.skip_body(0, "r"), SKIP), ev(2, b"{", SKIP), ev(3, b"b")]
    r = fold(Version(pmap(), -1, None, "0"), events, reducer, applied_at=T0)
    assert seen == [0, 3] and r.version.sequence == 3 and dict(r.version.state) == {"n": 3}
    assert [(c.sequence, c.target) for c in r.controls] == [(1, 0)]
    assert [x.event.sequence for x in r.rejected] == [2]  # a malformed control event: a rejection, not poison
    assert r.applied == 2


def test_a_stopped_folder_takes_no_more_events() -> None:
    folder = Folder(initial_version(config, "0"), config)
    fed = folder.feed([ev(0, set_op(0)), ev(1, POISON), ev(2, set_op(2))])
    assert fed.stopped is not None and fed.stopped.event.sequence == 1 and folder.sequence == 0


# --- pumps ------------------------------------------------------------------------------


def log_with_poison(n: int, poison_at: int, skip_at: int | None, *, target: int | None = None) -> MemorySource:
    source = MemorySource(max_wait=0.05)
    for i in range(n):
        if i == poison_at:
            source.append(POISON)
        elif i == skip_at:
            source.append(control.skip_body(poison_at if target is None else target, "bad push"), properties=SKIP)
        else:
            source.append(set_op(i))
    return source


def expected(n: int, *, without: set[int]) -> Any:
    events = [ev(i, set_op(i)) for i in range(n) if i not in without]
    state = initial_version(config, "0").state
    for e in events:
        state = config(state, e)
    return state


async def wait_until(pump: Pump[Any], condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        # A readiness change wakes this at once; the read position is announced by none, so look again soon.
        await asyncio.wait([pump.readiness_change()], timeout=0.05)


async def test_a_halted_pump_is_released_by_a_skip_written_later_and_applies_what_follows() -> None:
    source = log_with_poison(15, poison_at=10, skip_at=None)
    async with Pump[Any](source) as pump:
        await wait_until(pump, lambda: pump.status()["halted_on_poison"] is not None, "halted")
        assert pump.version.sequence == 9 and not pump.ready
        source.append(set_op(15))
        await wait_until(pump, lambda: pump.status()["halted_on_poison"]["read_through"] == 15, "read on to 15")
        assert pump.version.sequence == 9  # read on, applied nothing
        source.append(control.skip_body(10, "bad push"), properties=SKIP)  # event 16
        source.append(set_op(17))
        await pump.wait_ready(timeout=10)
        await pump.wait_for(17, timeout=10)
        status = pump.status()
        entry, skip_entry = pump.history.get(10), pump.history.get(16)
    assert pump.state == expected(18, without={10, 16})
    assert status["poison_events"] == 1 and status["poison_events_skipped_by_control"] == 1
    assert status["last_skipped_by_control"] == {"sequence": 10, "by": 16, "reason": "bad push"}
    assert status["halted_on_poison"] is None
    assert (
        entry is not None
        and entry.outcome == "skipped"
        and "skipped by control event 16: bad push" in (entry.reason or "")
    )
    assert skip_entry is not None and (skip_entry.outcome, skip_entry.reason) == (
        "control",
        "skip of event 10 requested: bad push",
    )


async def test_every_way_of_reading_the_log_reaches_the_same_state(tmp_path: Path) -> None:
    """A stop pump (released), a skip pump, a fresh replay and one from a snapshot older than the poison."""
    n = 30
    store = DirectoryStore(tmp_path / "snaps", "hub", "0")
    older = fold(initial_version(config, "0"), [ev(i, set_op(i)) for i in range(6)], config, applied_at=T0).version
    await write_snapshot(store, older, config, eventhub="hub", events_folded=6)
    states = []
    for kwargs in ({}, {"poison_policy": "skip"}, {"store": store}):
        source = log_with_poison(n, poison_at=10, skip_at=20)
        async with Pump[Any](source, **kwargs) as pump:
            await pump.wait_ready(timeout=10)
            await pump.wait_for(n - 1, timeout=10)
            states.append(pump.state)
            outcome = pump.history.get(20)
            assert outcome is not None and outcome.outcome == "control"
    assert states[0] == states[1] == states[2] == expected(n, without={10, 20})


async def test_a_skip_of_an_event_that_was_not_poison_has_no_effect() -> None:
    source = log_with_poison(20, poison_at=-1, skip_at=12, target=5)
    async with Pump[Any](source) as pump:
        await pump.wait_for(19, timeout=10)
        assert pump.status()["poison_events_skipped_by_control"] == 0
    assert pump.state == expected(20, without={12})


async def test_a_skip_before_the_poison_event_does_not_release_it() -> None:
    source = log_with_poison(15, poison_at=10, skip_at=4)
    async with Pump[Any](source) as pump:
        await wait_until(pump, lambda: pump.status()["halted_on_poison"] is not None, "halted")
        await wait_until(pump, lambda: pump.status()["halted_on_poison"]["read_through"] == 14, "read to the end")
        assert pump.version.sequence == 9 and not pump.ready


async def test_a_pump_with_until_finds_a_skip_beyond_its_target_and_stops_at_the_target() -> None:
    """The snapshotter and time travel: the state at 15 has event 10 skipped once the log says so, at 20."""
    pump = Pump[Any](log_with_poison(25, poison_at=10, skip_at=20), until=15)
    await pump.run_to_target()
    assert pump.version.sequence == 15 and pump.state == expected(16, without={10})


async def test_a_pump_with_until_and_no_skip_in_the_log_fails_as_before() -> None:
    pump = Pump[Any](log_with_poison(25, poison_at=10, skip_at=None), until=15)
    with pytest.raises(PumpFailed, match="poison event 10"):
        await pump.run_to_target()
    assert pump.version.sequence == 9


async def test_a_restarted_pump_says_once_that_it_is_still_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = DeadLetterFile(tmp_path / "dead.jsonl")
    lines: list[list[tuple[int, str]]] = []
    for _ in range(3):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="statepump.pump"):
            async with Pump[Any](log_with_poison(15, poison_at=10, skip_at=None), dead_letter=dead) as pump:
                await wait_until(pump, lambda: pump.status()["halted_on_poison"] is not None, "halted")
        lines.append([(r.levelno, r.getMessage()) for r in caplog.records if "poison event 10" in r.getMessage()])
    first, *again = lines
    assert [level for level, _ in first] == [logging.ERROR] and "UndecodableBody" in first[0][1]
    for restart in again:
        assert len(restart) == 1 and restart[0][0] == logging.WARNING, restart
        assert restart[0][1].startswith("not serving as ready: still stopped at poison event 10 (first seen 20")
        assert "see `statepump skip`" in restart[0][1] and "UndecodableBody" not in restart[0][1]
    assert len(dead.read()) == 1


async def test_a_poison_event_and_its_skip_that_only_capture_still_holds_release_the_pump() -> None:
    """Retention dropped both from the hub: the search reads Capture, then the hub, as the catch-up does."""
    hub, capture = MemorySource(max_wait=0.05), MemorySource(live=False)
    for i in range(40):
        if i == 10:
            body, properties = POISON, None
        elif i == 20:
            body, properties = control.skip_body(10, "bad push"), SKIP
        else:
            body, properties = set_op(i), None
        hub.append(body, properties=properties)
        if i < 35:
            capture.append(body, properties=properties)
    hub.expire(30)
    async with Pump[Any](hub, capture=capture) as pump:
        await pump.wait_ready(timeout=10)
        await pump.wait_for(39, timeout=10)
        status = pump.status()
    assert pump.state == expected(40, without={10, 20})
    assert status["last_skipped_by_control"] == {"sequence": 10, "by": 20, "reason": "bad push"}
