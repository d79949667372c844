"""The doctor's conclusions (pure): which facts make a new node not ready, and what each line says."""

from __future__ import annotations

from dataclasses import replace

from statepump.core.doctor import Facts, assess, would_start
from statepump.core.events import PartitionBounds


def lines(facts: Facts) -> list[str]:
    return [f.line() for f in assess(facts)]


HEALTHY = Facts(partition="0", partitions=("0",), bounds=PartitionBounds(0, 99), free_slots={"a": 5})


def test_healthy_without_a_snapshot_reads_everything_from_the_hub() -> None:
    assert lines(HEALTHY) == [
        "ok: the hub answers; it has one partition, 0",
        "ok: a new node has no snapshot and starts from the earliest event and reads 100 events from the hub",
        "ok: 5 more readers can start: a 5 free",
    ]
    assert would_start(assess(HEALTHY))


def test_an_unreachable_hub_is_fatal_and_says_what_to_check() -> None:
    findings = assess(Facts(partition="0", hub_error="no route"))
    assert not would_start(findings)
    assert findings[0].line().startswith("problem: the hub does not answer: no route; check --connection-string")


def test_retention_past_the_snapshot_needs_capture_and_capture_that_holds_it_heals_it() -> None:
    behind = Facts(
        partition="0", partitions=("0",), bounds=PartitionBounds(50, 99), snapshot_sequence=9, snapshot_age=9
    )
    [_, gap] = assess(behind)
    assert gap.fatal and "10" in gap.what and gap.todo and gap.todo.endswith("configure Capture (--capture-container)")
    healed = Facts(
        partition="0",
        partitions=("0",),
        bounds=PartitionBounds(50, 99),
        snapshot_sequence=9,
        snapshot_age=9,
        capture_configured=True,
        capture=PartitionBounds(0, 60),
    )
    [_, step] = assess(healed)
    assert step.ok and "reads 10..49 from Capture" in step.what and would_start(assess(healed))
    short = replace(healed, capture=PartitionBounds(0, 30))  # Capture ends before the hub begins: still a gap
    assert not would_start(assess(short))


def test_a_full_pool_a_missing_group_and_another_partition() -> None:
    full = Facts(partition="0", partitions=("0", "1"), bounds=PartitionBounds(0, 9), free_slots={"a": 0, "b": 0})
    out = lines(full)
    assert "problem: all 2 consumer groups of partition 0 have 5 readers; add groups or use a relay" in out
    assert any(line.startswith("warning: the hub has 2 partitions; a pump reads only 0") for line in out)
    missing = Facts(
        partition="0", partitions=("0",), bounds=PartitionBounds(0, 9), free_slots={"a": 3}, group_errors={"b": "x"}
    )
    assert not would_start(assess(missing))  # a configured group that does not exist is a settings error
    assert "ok: 3 more readers can start: a 3 free" in lines(missing)


def test_a_snapshot_passed_over_is_a_warning_not_a_stop() -> None:
    facts = Facts(
        partition="0",
        partitions=("0",),
        bounds=PartitionBounds(0, 9),
        passed_over=[(5, "snapshot was made by reducer config@1, this pump runs markup@1")],
        free_slots={"a": 1},
    )
    assert lines(facts)[1].startswith("warning: the snapshot at 5 is not used: snapshot was made by reducer config@1")
    assert would_start(assess(facts))
