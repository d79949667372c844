"""One snapshotter run end to end (snapshotter.run.run_once) over an in-memory hub and a directory store.

The hub is :class:`statepump.sources.memory.MemorySource`; everything else
(settings, pump, snapshot codec, directory store, retention) is the real thing.
The same flows against the Event Hubs emulator and Azurite are in
test_command.py and test_blob.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from snapshotter import retention
from snapshotter.cli import continuous, main, report
from snapshotter.outcome import Outcome
from snapshotter.run import SnapshotterFailed, run_once
from statepump.components import make_pump, make_store
from statepump.core import codec
from statepump.core.configops import config
from statepump.core.events import Event
from statepump.core.fold import fold
from statepump.core.reducer import Reducer, load_reducer
from statepump.settings import Settings, load
from statepump.sources.memory import MemorySource
from statepump.stores import SnapshotRef
from statepump.stores.snapshots import initial_version
from tests.snapshotter.hubs import T0, body, hub


def settings(tmp_path: Path, **extra: Any) -> Settings:
    return load({"snapshot_dir": str(tmp_path / "snapshots"), **extra}, environ={})


def replay(n: int, reducer: Reducer[Any] = config, first: int = 0) -> Any:
    events = [Event("0", i, str(i), T0, None, {}, json.dumps(body(i)).encode()) for i in range(first, n)]
    start = initial_version(reducer, "0")
    if first:
        start = type(start)(start.state, first - 1, None, "0")
    return fold(start, events, reducer, applied_at=T0).version.state


async def listing(s: Settings) -> list[SnapshotRef]:
    return await make_store(s).list()


async def pump_status(s: Settings, source: MemorySource) -> tuple[dict[str, Any], Any]:
    """Start a pump as ``statepump run`` would (same settings), wait until ready, return its status and state."""
    pump = make_pump(s, source=source)
    async with pump:
        await pump.wait_ready(timeout=10)
        return pump.status(), pump.state


async def test_writes_a_snapshot_named_by_the_hubs_last_sequence_number(tmp_path: Path) -> None:
    s = settings(tmp_path)
    outcome = await run_once(s, source=hub(100))
    assert outcome.action == "written"
    assert outcome.sequence == 99
    assert outcome.snapshot == "snapshots/hub/0/00000000000000000099.snapshot"
    assert (outcome.events_folded, outcome.events_total, outcome.events_from_hub) == (100, 100, 100)
    assert outcome.size == (tmp_path / "snapshots" / outcome.snapshot).stat().st_size
    meta, state = codec.decode((tmp_path / "snapshots" / outcome.snapshot).read_bytes())
    assert (meta.sequence, meta.events_folded, meta.reducer_identity) == (99, 100, "config@1")
    assert state == replay(100)
    assert [r.sequence for r in await listing(s)] == [99]


async def test_the_target_is_fixed_at_the_start_of_the_run(tmp_path: Path) -> None:
    s = settings(tmp_path)
    source = hub(50)
    original = source.bounds

    async def bounds_then_more_events() -> Any:
        b = await original()
        for i in range(50, 80):  # arrive after the run read the hub's last number
            source.append(body(i), enqueued_time=T0)
        return b

    source.bounds = bounds_then_more_events  # type: ignore[method-assign]
    outcome = await run_once(s, source=source)
    assert (outcome.action, outcome.sequence, outcome.events_folded) == ("written", 49, 50)


async def test_a_pump_started_afterwards_loads_it_and_reads_only_the_events_after_it(tmp_path: Path) -> None:
    s = settings(tmp_path)
    await run_once(s, source=hub(100))
    # Retention has since dropped everything up to the snapshot: the pump can only succeed from it.
    status, state = await pump_status(s, hub(130, first=100))
    assert status["snapshot_sequence"] == 99
    assert status["events_from_hub"] == 30
    assert status["sequence"] == 129
    assert state == replay(130)


async def test_nothing_new_is_success_and_writes_nothing(tmp_path: Path) -> None:
    s = settings(tmp_path)
    await run_once(s, source=hub(40))
    again = await run_once(s, source=hub(40))
    assert again.action == "nothing-new"
    assert (again.snapshot, again.sequence, again.events_folded) == (
        "snapshots/hub/0/00000000000000000039.snapshot",
        39,
        0,
    )
    assert again.line().startswith("snapshotter: nothing new after snapshots/hub/0/00000000000000000039.snapshot")
    assert [r.sequence for r in await listing(s)] == [39]


async def test_an_empty_hub_is_success(tmp_path: Path) -> None:
    outcome = await run_once(settings(tmp_path), source=MemorySource())
    assert outcome.action == "empty-hub"
    assert await listing(settings(tmp_path)) == []


async def test_catches_up_from_the_previous_snapshot(tmp_path: Path) -> None:
    s = settings(tmp_path)
    await run_once(s, source=hub(60))
    outcome = await run_once(s, source=hub(100, first=60))  # 0..59 no longer in the hub
    assert (outcome.action, outcome.sequence, outcome.events_folded, outcome.events_total) == ("written", 99, 40, 100)
    assert outcome.started_from == "snapshots/hub/0/00000000000000000059.snapshot"
    _, state = codec.decode((tmp_path / "snapshots" / outcome.snapshot).read_bytes())  # type: ignore[operator]
    assert state == replay(100)


async def test_two_runs_at_the_same_moment_leave_exactly_one_valid_snapshot(tmp_path: Path) -> None:
    s = settings(tmp_path)
    outcomes = await asyncio.gather(run_once(s, source=hub(3000)), run_once(s, source=hub(3000)))
    actions = sorted(o.action for o in outcomes)
    assert actions.count("written") == 1
    assert set(actions) <= {"written", "backed-off", "nothing-new"}
    refs = await listing(s)
    assert [r.sequence for r in refs] == [2999]
    meta, state = codec.decode((tmp_path / "snapshots" / refs[0].name).read_bytes())
    assert meta.sequence == 2999 and state == replay(3000)
    backed = [o for o in outcomes if o.action == "backed-off"]
    for o in backed:
        assert o.snapshot == refs[0].name
        assert "backed off" in o.line()


async def test_a_gap_fails_the_run_naming_the_missing_range(tmp_path: Path) -> None:
    s = settings(tmp_path)
    await run_once(s, source=hub(50))
    with pytest.raises(SnapshotterFailed, match=r"events 50\.\.79 are in neither the hub nor Capture"):
        await asyncio.wait_for(run_once(s, source=hub(100, first=80)), 10)
    assert [r.sequence for r in await listing(s)] == [49]


async def test_a_poison_event_fails_the_run_and_writes_nothing(tmp_path: Path) -> None:
    source = hub(10)
    source.append(b"not json", enqueued_time=T0)
    with pytest.raises(SnapshotterFailed) as failed:
        await asyncio.wait_for(run_once(settings(tmp_path), source=source), 10)
    message = str(failed.value)
    assert message.startswith("cannot reach sequence 10: poison event 10 on partition 0 cannot be applied (")
    assert message.endswith(
        "this reducer folds the events only up to 9, so nothing is written (`statepump skip 10 --reason ...` "
        "releases every node; --poison-policy skip skips it and records it as a dead letter)"
    )
    assert "serving" not in message  # the words of the pump, which a snapshotter does not do
    assert await listing(settings(tmp_path)) == []


async def test_skip_policy_snapshots_past_a_poison_event(tmp_path: Path) -> None:
    source = hub(10)
    source.append(b"not json", enqueued_time=T0)
    s = settings(tmp_path, poison_policy="skip", data_dir=str(tmp_path / "data"))
    outcome = await run_once(s, source=source)
    assert (outcome.action, outcome.sequence) == ("written", 10)
    assert (tmp_path / "data" / "dead-letter.jsonl").read_text().count("\n") == 1


async def test_signed_snapshots_are_used_only_with_the_right_key(tmp_path: Path) -> None:
    key, other = tmp_path / "key", tmp_path / "other"
    key.write_text("k" * 32)
    other.write_text("o" * 32)
    s = settings(tmp_path, snapshot_hmac_key_file=str(key))
    outcome = await run_once(s, source=hub(20))
    assert codec.read_meta((tmp_path / "snapshots" / outcome.snapshot).read_bytes()).signed  # type: ignore[operator]
    status, _ = await pump_status(s, hub(20))
    assert status["snapshot_sequence"] == 19
    status, state = await pump_status(settings(tmp_path, snapshot_hmac_key_file=str(other)), hub(20))
    assert (status["snapshot_sequence"], status["snapshots_rejected"]) == (None, 1)
    assert state == replay(20)  # rebuilt from the hub instead of trusting the snapshot


async def test_compressed_snapshots_load(tmp_path: Path) -> None:
    s = settings(tmp_path, compress=True)
    outcome = await run_once(s, source=hub(500))
    assert codec.read_meta((tmp_path / "snapshots" / outcome.snapshot).read_bytes()).codec == "msgpack+zlib"  # type: ignore[operator]
    status, _ = await pump_status(s, hub(500, first=500))
    assert status["snapshot_sequence"] == 499


# --- retention -------------------------------------------------------------------------------------------


async def nine_snapshots(s: Settings) -> None:
    for n in range(10, 100, 10):  # snapshots at 9, 19, ..., 89
        assert (await run_once(s, source=hub(n))).action == "written"


async def test_retention_deletes_exactly_what_the_policy_says(tmp_path: Path) -> None:
    s = settings(tmp_path, keep=3)
    await nine_snapshots(s.model_copy(update={"keep": 100}))
    # Retention has moved the hub's first event to 50: 49 is the oldest snapshot the hub can continue.
    outcome = await run_once(s, source=hub(100, first=50))
    deleted = [d.sequence for d in outcome.deleted]
    assert deleted == [9, 19, 29, 39, 59, 69]
    assert [r.sequence for r in await listing(s)] == [49, 79, 89, 99]
    assert outcome.kept == 4
    # The same as the pure policy's answer for the listing the run saw.
    before = [SnapshotRef(x, f"s/{x}", None, T0) for x in [*range(9, 90, 10), 99]]
    expected = retention.decide(before, retention.Policy(keep=3), now=T0, newest_usable=99, hub_first=50, capture=False)
    assert [r.sequence for r in expected.delete] == deleted


async def test_retention_with_capture_on_has_no_anchor(tmp_path: Path) -> None:
    (tmp_path / "capture").mkdir()
    s = settings(tmp_path, keep=2, capture_dir=str(tmp_path / "capture"))
    await nine_snapshots(s.model_copy(update={"keep": 100}))
    outcome = await run_once(s, source=hub(100, first=50))
    assert [d.sequence for d in outcome.deleted] == [9, 19, 29, 39, 49, 59, 69, 79]
    assert [r.sequence for r in await listing(s)] == [89, 99]


async def test_retention_keeps_young_snapshots(tmp_path: Path) -> None:
    s = settings(tmp_path, keep=1, keep_younger_than=3600)
    await nine_snapshots(s)
    assert len(await listing(s)) == 9


async def test_dry_run_deletes_nothing_and_says_what_it_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = settings(tmp_path, keep=2, dry_run=True)
    await nine_snapshots(s)
    outcome = await run_once(s, source=hub(100))
    report(outcome, as_json=False)
    lines = capsys.readouterr().out.splitlines()
    # Capture off, hub from 0: the anchor is the oldest snapshot (9).
    assert lines[:-1] == [
        f"snapshotter: would delete snapshots/hub/0/{n:020d}.snapshot (sequence {n})" for n in range(19, 80, 10)
    ]
    assert lines[-1].endswith("retention would delete 7, kept 3")
    assert len(await listing(s)) == 10


async def test_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = settings(tmp_path, keep=1)
    await run_once(s, source=hub(10))
    report(await run_once(s, source=hub(20)), as_json=True)
    summary = json.loads(capsys.readouterr().out)
    assert summary["action"] == "written"
    assert summary["sequence"] == 19
    assert summary["snapshot"].endswith("00000000000000000019.snapshot")
    assert summary["events_folded"] == 10
    assert summary["size"] > 0 and summary["seconds"] > 0
    # The anchor (capture off, hub from 0) is 9: nothing deleted.
    assert summary["deleted"] == []


# --- rebuild ------------------------------------------------------------------------------------------------


async def test_rebuild_for_a_new_reducer_version_is_what_the_new_pump_uses(tmp_path: Path) -> None:
    v1 = settings(tmp_path, reducer="tests.snapshotter.reducers:v1")
    v2 = settings(tmp_path, reducer="tests.snapshotter.reducers:v2", rebuild=True)
    await run_once(v1, source=hub(50))
    await run_once(v1, source=hub(100))
    # v1 already has snapshot 99 (the hub's last): the rebuild takes the next free number.
    outcome = await run_once(v2, source=hub(100))
    assert (outcome.action, outcome.sequence, outcome.events_folded, outcome.rebuild) == ("written", 98, 99, True)
    assert outcome.started_from is None
    assert outcome.line().startswith("snapshotter: rebuilt ")
    meta = codec.read_meta((tmp_path / "snapshots" / outcome.snapshot).read_bytes())  # type: ignore[operator]
    assert meta.reducer_identity == "counter@2"

    new_pump = v2.model_copy(update={"rebuild": False})
    status, state = await pump_status(new_pump, hub(110, first=99))
    assert status["snapshot_sequence"] == 98
    assert status["reducer"] == {"name": "counter", "version": 2, "schema": None}
    assert state == replay(110, load_reducer("tests.snapshotter.reducers:v2"))

    status, state = await pump_status(v1, hub(110, first=100))
    assert status["snapshot_sequence"] == 99
    assert state == replay(110, load_reducer("tests.snapshotter.reducers:v1"))


async def test_rebuild_ignores_a_usable_snapshot_and_starts_from_the_earliest_event(tmp_path: Path) -> None:
    s = settings(tmp_path)
    await run_once(s, source=hub(50))
    outcome = await run_once(s.model_copy(update={"rebuild": True}), source=hub(120, first=20))
    # Rebuilt from the hub's earliest event (20), not from snapshot 49.
    assert (outcome.action, outcome.sequence, outcome.events_folded, outcome.events_skipped) == (
        "written",
        119,
        100,
        20,
    )
    _, state = codec.decode((tmp_path / "snapshots" / outcome.snapshot).read_bytes())  # type: ignore[operator]
    assert state == replay(120, first=20)


# --- continuous ----------------------------------------------------------------------------------------------


async def test_continuous_runs_on_schedule_until_stopped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = settings(tmp_path, continuous=True, interval=0.05)
    stop = asyncio.Event()
    runs: list[Outcome] = []

    async def once() -> Outcome:
        size = 10 * (len(runs) + 1)
        if len(runs) == 1:
            runs.append(Outcome("nothing-new", None, None, 0, None, 0.0, None))
            raise SnapshotterFailed("the hub is unreachable (simulated by the test's runner)")
        outcome = await run_once(s, source=hub(size))
        runs.append(outcome)
        if len(runs) == 3:
            stop.set()
        return outcome

    assert await asyncio.wait_for(continuous(s, once, stop), 10) == 0
    assert [r.sequence for r in await listing(s)] == [9, 29]
    captured = capsys.readouterr()
    assert captured.err.strip() == "snapshotter: the hub is unreachable (simulated by the test's runner)"
    assert len(captured.out.splitlines()) == 2


async def test_continuous_stop_during_a_run_cancels_it_cleanly(tmp_path: Path) -> None:
    s = settings(tmp_path, continuous=True, interval=60)
    stop = asyncio.Event()
    started = asyncio.Event()

    async def once() -> Outcome:
        started.set()
        await asyncio.Event().wait()  # a run that never finishes on its own
        raise AssertionError("unreachable")

    task = asyncio.ensure_future(continuous(s, once, stop))
    await asyncio.wait_for(started.wait(), 5)
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0


# --- the command's settings ------------------------------------------------------------------------------------


def test_bad_settings_exit_2_naming_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--keep", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("snapshotter: invalid setting --keep")
    assert len(err.splitlines()) == 1


def test_an_unreadable_key_file_is_a_settings_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--snapshot-hmac-key-file", str(tmp_path / "missing")]) == 2
    assert "--snapshot-hmac-key-file" in capsys.readouterr().err


def test_no_hub_configured_and_none_embedded_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path)]) == 2
    assert "no hub configured" in capsys.readouterr().err


def test_settings_come_from_the_environment_and_toml_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "statepump.toml"
    toml.write_text('keep = 4\nkeep_younger_than = 60\njson = true\nsnapshot_dir = "/srv/snaps"\n')
    monkeypatch.setenv("STATEPUMP_CONFIG", str(toml))
    monkeypatch.setenv("STATEPUMP_KEEP", "7")
    from snapshotter.cli import build_parser
    from statepump.cli import settings_from

    s = settings_from(build_parser().parse_args(["--dry-run"]), "snapshotter")
    assert (s.keep, s.keep_younger_than, s.json_output, s.dry_run, str(s.snapshot_dir)) == (
        7,
        60.0,
        True,
        True,
        "/srv/snaps",
    )


def test_rebuild_cannot_be_continuous(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rebuild", "--continuous"]) == 2
    assert "--rebuild" in capsys.readouterr().err


def test_a_failure_line_masks_the_configured_secrets(tmp_path: Path) -> None:
    from snapshotter.cli import describe_failure, secrets_of

    key = "S2V5LWZvci10aGUtdGVzdA=="
    s = settings(
        tmp_path,
        connection_string=f"Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey={key};EntityPath=hub",
    )
    line = describe_failure(OSError(f"cannot connect with\nkey {key}"), secrets_of(s))
    assert line == "unexpected OSError: cannot connect with key ***"
