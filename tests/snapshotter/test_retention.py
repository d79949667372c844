"""The retention policy (snapshotter/retention.py): pure, so tested without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapshotter import retention
from snapshotter.retention import Policy, anchor, decide
from statepump.stores import SnapshotRef

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def ref(sequence: int, age: float | None) -> SnapshotRef:
    modified = None if age is None else NOW - timedelta(seconds=age)
    return SnapshotRef(sequence, f"snapshots/hub/0/{sequence:020d}.snapshot", 100, modified)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    sequences = draw(st.lists(st.integers(0, 300), unique=True, max_size=25))
    ages = [draw(st.one_of(st.none(), st.floats(0, 10_000))) for _ in sequences]
    refs = [ref(s, a) for s, a in zip(sequences, ages, strict=True)]
    usable = draw(st.one_of(st.none(), st.sampled_from(sequences))) if sequences else None
    return {
        "refs": refs,
        "policy": Policy(keep=draw(st.integers(1, 12)), keep_younger_than=draw(st.floats(0, 10_000))),
        "newest_usable": usable,
        "hub_first": draw(st.one_of(st.none(), st.integers(0, 320))),
        "capture": draw(st.booleans()),
    }


def run(s: dict[str, object], **changes: object) -> retention.Decision:
    args = {**s, **changes}
    return decide(
        args["refs"],  # type: ignore[arg-type]
        args["policy"],  # type: ignore[arg-type]
        now=NOW,
        newest_usable=args["newest_usable"],  # type: ignore[arg-type]
        hub_first=args["hub_first"],  # type: ignore[arg-type]
        capture=args["capture"],  # type: ignore[arg-type]
    )


def protected(s: dict[str, object]) -> set[int]:
    """The rules restated as set algebra: the oracle the function must match exactly."""
    refs: list[SnapshotRef] = s["refs"]  # type: ignore[assignment]
    policy: Policy = s["policy"]  # type: ignore[assignment]
    usable: int | None = s["newest_usable"]  # type: ignore[assignment]
    everything = {r.sequence for r in refs}
    if usable is None:
        return everything
    keep = set(sorted(everything)[-policy.keep :])
    young = policy.keep_younger_than
    keep |= {r.sequence for r in refs if r.modified is None or (NOW - r.modified).total_seconds() < young}
    keep |= {s for s in everything if s >= usable}
    hub_first = s["hub_first"]
    if not s["capture"] and hub_first is not None:
        continuable = {s for s in everything if s + 1 >= hub_first}  # type: ignore[operator]
        keep |= set(sorted(continuable)[:1])
    return keep


@given(scenarios())
def test_deletes_exactly_what_no_rule_protects(s: dict[str, object]) -> None:
    d = run(s)
    refs: list[SnapshotRef] = s["refs"]  # type: ignore[assignment]
    kept = {r.sequence for r, _ in d.keep}
    deleted = {r.sequence for r in d.delete}
    assert kept | deleted == {r.sequence for r in refs}
    assert not kept & deleted
    assert kept == protected(s)
    assert all(reasons for _, reasons in d.keep)
    assert [r.sequence for r in d.delete] == sorted(deleted)


@given(scenarios())
def test_never_deletes_the_newest_usable_nor_anything_newer(s: dict[str, object]) -> None:
    d = run(s)
    usable = s["newest_usable"]
    if usable is None:
        assert d.delete == ()
    else:
        assert all(r.sequence < usable for r in d.delete)  # type: ignore[operator]


@given(scenarios())
def test_never_deletes_the_newest_n_nor_young_nor_undated_ones(s: dict[str, object]) -> None:
    d = run(s)
    refs: list[SnapshotRef] = s["refs"]  # type: ignore[assignment]
    policy: Policy = s["policy"]  # type: ignore[assignment]
    newest = set(sorted(r.sequence for r in refs)[-policy.keep :])
    for r in d.delete:
        assert r.sequence not in newest
        assert r.modified is not None
        assert (NOW - r.modified).total_seconds() >= policy.keep_younger_than


@given(scenarios())
def test_capture_off_keeps_the_oldest_snapshot_the_hub_can_continue(s: dict[str, object]) -> None:
    d = run(s, capture=False)
    refs: list[SnapshotRef] = s["refs"]  # type: ignore[assignment]
    hub_first = s["hub_first"]
    if hub_first is None or s["newest_usable"] is None:
        return
    continuable = [r.sequence for r in refs if r.sequence + 1 >= hub_first]  # type: ignore[operator]
    if continuable:
        assert min(continuable) not in {r.sequence for r in d.delete}
        assert d.anchor == min(continuable)
    else:
        assert d.anchor is None


@given(scenarios())
def test_capture_on_has_no_anchor(s: dict[str, object]) -> None:
    assert run(s, capture=True).anchor is None


@given(scenarios())
def test_applying_the_policy_to_what_it_kept_deletes_nothing_more(s: dict[str, object]) -> None:
    first = run(s)
    again = run(s, refs=[r for r, _ in first.keep])
    assert again.delete == ()


@given(scenarios(), st.integers(1, 5))
def test_keeping_more_never_deletes_more(s: dict[str, object], extra: int) -> None:
    policy: Policy = s["policy"]  # type: ignore[assignment]
    fewer = run(s)
    more = run(s, policy=Policy(policy.keep + extra, policy.keep_younger_than))
    assert {r.sequence for r in more.delete} <= {r.sequence for r in fewer.delete}


def test_a_worked_example() -> None:
    # Ten hourly snapshots 0..900 step 100, the hub holds 450.., Capture off.
    refs = [ref(s, age=(900 - s) * 30) for s in range(0, 1000, 100)]
    d = decide(refs, Policy(keep=3, keep_younger_than=3600), now=NOW, newest_usable=900, hub_first=450, capture=False)
    assert [r.sequence for r in d.delete] == [0, 100, 200, 300, 400, 600]
    assert d.reasons_for(500) == (retention.ANCHOR,)  # 501 is in the hub: the oldest it can continue
    assert d.reasons_for(900)[0] == retention.USABLE
    assert d.reasons_for(800) == ("newest 3", "younger than 3600 s")
    # With Capture on, 500 is just old.
    d = decide(refs, Policy(keep=3, keep_younger_than=3600), now=NOW, newest_usable=900, hub_first=450, capture=True)
    assert [r.sequence for r in d.delete] == [0, 100, 200, 300, 400, 500, 600]


def test_the_snapshot_just_before_the_hubs_first_event_is_continuable() -> None:
    assert anchor([449, 500], hub_first=450, capture=False) == 449
    assert anchor([448, 500], hub_first=450, capture=False) == 500
    assert anchor([10, 20], hub_first=450, capture=False) is None


def test_duplicated_listing_entries_count_once() -> None:
    refs = [ref(1, 10_000), ref(1, 10_000), ref(2, 10_000)]
    d = decide(refs, Policy(keep=1), now=NOW, newest_usable=2, hub_first=None, capture=True)
    assert [r.sequence for r in d.delete] == [1]


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="keep must be at least 1"):
        Policy(keep=0)
    with pytest.raises(ValueError, match="keep_younger_than"):
        Policy(keep_younger_than=-1)
