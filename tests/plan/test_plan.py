"""The catch-up plan, by its rules and by simulation.

The simulation plays an executor against a model partition whose hub
retention advances, whose last number grows and whose Capture grows while
the executor reads, re-planning after every step the way ``pump.py`` does,
and checks the one property that matters: every event from the start
position on is applied exactly once, in order, from a source that held it
at that moment, except for ranges the plan reported (a gap, or an explicit
``Skipped``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from statepump.core.errors import SequenceGapError
from statepump.core.events import PartitionBounds
from statepump.core.plan import (
    CaptureCoverage,
    Done,
    PositionAheadError,
    ProbeCapture,
    ReadCapture,
    ReadHub,
    Skipped,
    caught_up,
    lag,
    next_step,
)

# --------------------------------------------------------------------------- rules, one by one


@given(st.integers(-1, 10_000), st.integers(0, 10_000), st.integers(0, 10_000))
def test_rule_1_hub_when_it_holds_the_next_number(position: int, first: int, extra: int) -> None:
    assume(position + 1 >= first)
    hub = PartitionBounds(first, max(position, first - 1) + extra)
    for coverage in (CaptureCoverage.off(), CaptureCoverage.unknown(), CaptureCoverage.of(0, 10**6)):
        assert next_step(position, hub, coverage) == ReadHub(after=position)


@given(st.integers(-1, 10_000), st.integers(1, 10_000), st.integers(0, 100), st.integers(0, 100))
def test_rule_2_capture_through_the_hubs_beginning(position: int, gap: int, c_before: int, c_after: int) -> None:
    first = position + 1 + gap  # the hub lost position+1 .. first-1
    coverage = CaptureCoverage.of(max(0, position + 1 - c_before), first - 1 + c_after)
    assert next_step(position, PartitionBounds(first, first + 50), coverage) == ReadCapture(
        after=position, through=first - 1
    )


def test_rule_2_probe_first_when_capture_is_unknown() -> None:
    assert next_step(10, PartitionBounds(20, 30), CaptureCoverage.unknown()) == ProbeCapture()


@pytest.mark.parametrize(
    ("coverage", "missing", "phrase"),
    [
        (CaptureCoverage.off(), (11, 19), "Capture is not configured"),
        (CaptureCoverage.of(0, -1), (11, 19), "Capture holds no events"),
        (CaptureCoverage.of(0, 14), (15, 19), "Capture holds 0..14"),  # capture ends early
        (CaptureCoverage.of(13, 40), (11, 12), "Capture holds 13..40"),  # capture starts late
        (CaptureCoverage.of(0, 5), (11, 19), "Capture holds 0..5"),  # capture entirely before
    ],
)
def test_rule_3_gap_names_the_exact_range(coverage: CaptureCoverage, missing: tuple[int, int], phrase: str) -> None:
    with pytest.raises(SequenceGapError) as info:
        next_step(10, PartitionBounds(20, 30), coverage)
    assert (info.value.expected, info.value.last_missing) == missing
    assert info.value.got is None
    assert f"events {missing[0]}..{missing[1]} are missing" in str(info.value)
    assert "the hub holds 20..30" in str(info.value)
    assert phrase in str(info.value)


def test_rule_3_allow_gap_skips_and_says_so() -> None:
    assert next_step(10, PartitionBounds(20, 30), CaptureCoverage.off(), allow_gap=True) == ReadHub(
        after=19, skipped=Skipped(11, 19, "allowed-gap")
    )
    assert next_step(10, PartitionBounds(20, 30), CaptureCoverage.of(13, 40), allow_gap=True) == ReadCapture(
        after=12, through=19, skipped=Skipped(11, 12, "allowed-gap")
    )
    # capture ends early: read what it has, the skip comes at the next plan
    assert next_step(10, PartitionBounds(20, 30), CaptureCoverage.of(0, 14), allow_gap=True) == ReadCapture(
        after=10, through=14
    )
    assert next_step(14, PartitionBounds(20, 30), CaptureCoverage.of(0, 14), allow_gap=True) == ReadHub(
        after=19, skipped=Skipped(15, 19, "allowed-gap")
    )


@pytest.mark.parametrize(
    ("hub", "coverage", "expected"),
    [
        (PartitionBounds(0, -1), CaptureCoverage.off(), ReadHub(after=-1)),  # a new hub
        (PartitionBounds(0, 50), CaptureCoverage.unknown(), ReadHub(after=-1)),  # no need to probe
        (PartitionBounds(70, 90), CaptureCoverage.unknown(), ProbeCapture()),
        (PartitionBounds(70, 90), CaptureCoverage.of(0, 80), ReadCapture(after=-1, through=69)),
        (
            PartitionBounds(70, 90),
            CaptureCoverage.of(30, 80),
            ReadCapture(after=29, through=69, skipped=Skipped(0, 29, "no-snapshot")),
        ),
        (PartitionBounds(70, 90), CaptureCoverage.off(), ReadHub(after=69, skipped=Skipped(0, 69, "no-snapshot"))),
        (PartitionBounds(91, 90), CaptureCoverage.off(), ReadHub(after=90, skipped=Skipped(0, 90, "no-snapshot"))),
    ],
)
def test_rule_4_no_snapshot_starts_at_the_earliest_available(
    hub: PartitionBounds, coverage: CaptureCoverage, expected: object
) -> None:
    assert next_step(-1, hub, coverage) == expected


def test_rule_4_no_snapshot_still_reports_a_later_gap() -> None:
    with pytest.raises(SequenceGapError, match=r"events 41\.\.69 are missing"):
        next_step(-1, PartitionBounds(70, 90), CaptureCoverage.of(30, 40))


def test_until_makes_a_snapshotter_stop() -> None:
    hub = PartitionBounds(100, 200)
    assert next_step(150, hub, CaptureCoverage.off(), until=150) == Done(150)
    assert next_step(150, hub, CaptureCoverage.off(), until=180) == ReadHub(after=150, until=180)
    assert next_step(10, hub, CaptureCoverage.of(0, 300), until=50) == ReadCapture(after=10, through=50)
    # capture short of the hub's beginning but long enough for the target: no gap
    assert next_step(10, hub, CaptureCoverage.of(0, 60), until=50) == ReadCapture(after=10, through=50)
    # the target lies inside a skipped range: nothing left to read
    assert next_step(10, hub, CaptureCoverage.off(), until=50, allow_gap=True) == Done(
        99, Skipped(11, 99, "allowed-gap")
    )


def test_position_past_the_hub_is_refused() -> None:
    with pytest.raises(PositionAheadError, match="the state is at event 500 but the hub's last event is 20"):
        next_step(500, PartitionBounds(0, 20), CaptureCoverage.of(0, 1000))
    with pytest.raises(PositionAheadError):
        next_step(0, PartitionBounds(0, -1), CaptureCoverage.off())  # a recreated, empty hub
    with pytest.raises(ValueError, match="not -2"):
        next_step(-2, PartitionBounds(0, 20), CaptureCoverage.off())


def test_lag_and_caught_up() -> None:
    hub = PartitionBounds(0, 100)
    assert [lag(p, hub) for p in (-1, 50, 100)] == [101, 50, 0]
    assert caught_up(100, hub)
    assert not caught_up(99, hub)
    assert caught_up(95, hub, max_lag=5)
    with pytest.raises(ValueError, match="max_lag"):
        caught_up(0, hub, max_lag=-1)


# --------------------------------------------------------------------------- simulation


@dataclass
class World:
    """A partition: the hub holds first..last, Capture c_first..c_last (or is off)."""

    first: int
    last: int
    capture_on: bool
    c_first: int
    c_last: int

    @property
    def hub(self) -> PartitionBounds:
        return PartitionBounds(self.first, self.last)

    def coverage(self) -> CaptureCoverage:
        return CaptureCoverage.of(self.c_first, self.c_last) if self.capture_on else CaptureCoverage.off()

    def in_capture(self, n: int) -> bool:
        return self.capture_on and self.c_first <= n <= self.c_last

    def in_hub(self, n: int) -> bool:
        return self.first <= n <= self.last


@dataclass
class Run:
    applied: list[int] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    gap: SequenceGapError | None = None
    probes: int = 0


worlds = st.builds(
    lambda first, length, capture_on, c_first, c_len: World(
        first, first + length, capture_on, c_first, min(c_first + c_len, first + length)
    ),
    first=st.integers(0, 60),
    length=st.integers(-1, 40),
    capture_on=st.booleans(),
    c_first=st.integers(0, 60),
    c_len=st.integers(-1, 100),
)


def simulate(position: int, world: World, data: st.DataObject, *, allow_gap: bool, until: int | None) -> Run:
    """Play the executor: plan, perform one step, let the world move, plan again."""
    run = Run()
    probed = False

    def evolve() -> None:
        # Retention and arrivals move while reading; Capture follows the hub.
        if data.draw(st.booleans(), label="move"):
            world.last += data.draw(st.integers(0, 3), label="arrivals")
            world.first = min(world.first + data.draw(st.integers(0, 4), label="retention"), world.last + 1)
            if world.capture_on:
                world.c_last = min(world.last, world.c_last + data.draw(st.integers(0, 4), label="capture"))

    for _ in range(500):
        coverage = world.coverage() if probed or not world.capture_on else CaptureCoverage.unknown()
        try:
            step = next_step(position, world.hub, coverage, until=until, allow_gap=allow_gap)
        except SequenceGapError as gap:
            run.gap = gap
            return run
        if isinstance(step, ProbeCapture):
            assert world.capture_on, "probe only when Capture is configured"
            assert not probed, "probe only while Capture's bounds are unknown"
            probed = True
            run.probes += 1
            continue
        if step.skipped is not None:
            assert step.skipped.first == position + 1
            assert step.skipped.last == (step.position if isinstance(step, Done) else step.after)
            for n in range(step.skipped.first, step.skipped.last + 1):
                assert not world.in_hub(n)
                assert not world.in_capture(n)
            assert step.skipped.reason == ("no-snapshot" if position == -1 else "allowed-gap")
            run.skipped.append(step.skipped)
            position = step.skipped.last
        if isinstance(step, Done):
            assert step.position == position
            return run
        assert step.after == position, "a step reads on from where the state is"
        if isinstance(step, ReadCapture):
            assert step.through > position
            assert step.through < world.first, "Capture is read only for what the hub no longer holds"
            # The executor may stop anywhere up to `through` and re-plan.
            stop = data.draw(st.integers(position + 1, step.through), label="stop")
            for n in range(position + 1, stop + 1):
                assert world.in_capture(n), f"capture step asked for {n}, which Capture does not hold"
                run.applied.append(n)
                position = n
                evolve()
            continue
        # ReadHub: a live reader; stop when caught up (or at `until`) and end the run.
        while True:
            n = position + 1
            if step.until is not None and position >= step.until:
                return run
            if n > world.last:
                return run
            if not world.in_hub(n):
                break  # retention overtook the reader: re-plan from here
            run.applied.append(n)
            position = n
            evolve()
    raise AssertionError("the plan did not converge in 500 steps")


def check_run(start: int, run: Run, world: World, until: int | None) -> None:
    expected_next = start + 1
    skipped = {s.first: s for s in run.skipped}
    for n in run.applied:
        if n != expected_next:
            s = skipped.get(expected_next)
            assert s is not None, f"event {expected_next} was neither applied nor skipped"
            assert s.last + 1 == n, f"events {s.last + 1}..{n - 1} were neither applied nor skipped"
            expected_next = n
        expected_next += 1
    if run.gap is not None:
        gap = run.gap
        assert gap.last_missing is not None
        # The plan may report a gap ahead of the position: the numbers before it
        # are in Capture, or (no snapshot, nothing read yet) in no source at all.
        for n in range(expected_next, gap.expected):
            assert world.in_capture(n) or (start == -1 and not run.applied and not world.in_hub(n))
        for n in range(gap.expected, gap.last_missing + 1):
            assert not world.in_hub(n), f"{n} reported missing but the hub holds it"
            assert not world.in_capture(n), f"{n} reported missing but Capture holds it"
        assert (
            world.in_hub(gap.last_missing + 1)
            or world.in_capture(gap.last_missing + 1)
            or (gap.last_missing + 1 == world.first)
        )
    elif until is not None and until <= world.last:
        assert expected_next - 1 >= until or any(s.last >= until for s in run.skipped)
    else:
        assert expected_next - 1 >= world.last or run.skipped, "a live reader ends caught up"


@given(world=worlds, start=st.integers(-1, 140), allow_gap=st.booleans(), data=st.data())
def test_simulation_applies_each_event_once_in_order(
    world: World, start: int, allow_gap: bool, data: st.DataObject
) -> None:
    assume(start <= world.last)
    run = simulate(start, world, data, allow_gap=allow_gap, until=None)
    check_run(start, run, world, None)
    if allow_gap:
        assert run.gap is None, "with --allow-gap the plan skips instead of failing"
    if not allow_gap and start >= 0:
        assert not run.skipped, "without --allow-gap, a snapshot's successor is never skipped"


@given(world=worlds, start=st.integers(-1, 140), extra=st.integers(0, 20), data=st.data())
def test_simulation_snapshotter_stops_at_its_target(world: World, start: int, extra: int, data: st.DataObject) -> None:
    assume(start <= world.last)
    until = min(world.last, start + extra)
    run = simulate(start, world, data, allow_gap=False, until=until)
    check_run(start, run, world, until)
    assert all(n <= until for n in run.applied)


@given(world=worlds, start=st.integers(0, 140))
def test_no_gap_without_a_missing_number(world: World, start: int) -> None:
    """A gap is raised exactly when some number between the position and the
    hub's beginning is in neither source."""
    assume(start <= world.last)
    needed = range(start + 1, world.first)
    held = all(world.in_capture(n) for n in needed)
    try:
        next_step(start, world.hub, world.coverage())
    except SequenceGapError:
        assert not held
    else:
        assert held
