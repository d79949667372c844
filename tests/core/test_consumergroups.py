"""The pool of consumer groups (pure): parsing, where a node starts, which group next, when all are full."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statepump.core.consumergroups import Pool, expand, pool_names, start_index
from statepump.emulator import quotas

groups = st.lists(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), min_size=1, max_size=25, unique=True)


def test_the_emulator_and_the_pump_share_one_parser() -> None:
    assert quotas.expand is expand
    assert pool_names("statepump-web-{01..20}") == tuple(f"statepump-web-{n:02d}" for n in range(1, 21))


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("web-{3..1}", "counts down"),
        ("web-{1..2}-{1..2}", "at most one"),
        ("-web", "is not a consumer group name"),
        (",", "names no consumer group"),
    ],
)
def test_a_bad_pool_is_refused_with_its_reason(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        pool_names(spec)


def test_a_single_name_is_a_pool_of_one_that_every_node_starts_at() -> None:
    for node in ("a", "web-0", "web-7d9f-x2"):
        pool = Pool.start(pool_names("$Default"), node)
        assert pool.current == "$Default"
        assert pool.refused().all_full  # the old behaviour's one group, refused: nowhere else to go
        assert pool.refused().current == "$Default"


def test_the_start_is_stable_across_processes() -> None:
    # Python's hash() of a str changes with every process (PYTHONHASHSEED); the start must not.
    code = "from statepump.core.consumergroups import start_index; print(start_index('web-5f6d8-abcde', 20))"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed}
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert runs == {str(start_index("web-5f6d8-abcde", 20))}


def test_node_ids_spread_over_the_pool() -> None:
    counts = [0] * 20
    for n in range(2000):
        counts[start_index(f"statepump-web-{n}", 20)] += 1
    assert min(counts) > 60 and max(counts) < 140  # 100 each on average


@given(groups, st.integers(min_value=0, max_value=1000))
def test_refusals_walk_every_group_once_then_all_are_full(names: list[str], start: int) -> None:
    pool = Pool(tuple(names), index=start % len(names))
    seen = []
    for _ in names:
        assert not pool.all_full
        seen.append(pool.current)
        pool = pool.refused()
    assert sorted(seen) == sorted(names)  # each group tried once, in pool order from the start, wrapping
    assert seen == list(Pool(tuple(names), index=start % len(names)).round_order())
    assert pool.all_full
    assert pool.current == names[start % len(names)]  # wrapped back to where it began
    again = pool.new_round()
    assert not again.all_full and again.current == pool.current


@given(groups, st.data())
def test_holding_a_group_ends_the_row_and_keeps_that_group(names: list[str], data: st.DataObject) -> None:
    pool = Pool(tuple(names))
    for _ in range(data.draw(st.integers(min_value=0, max_value=len(names) - 1))):
        pool = pool.refused()
    held = data.draw(st.sampled_from(names))
    after = pool.held(held.upper())  # the service compares names case-insensitively
    assert after.current == held and after.refusals_in_row == 0 and not after.all_full


def test_the_reason_when_all_are_full_is_one_line() -> None:
    pool = Pool(pool_names("statepump-web-{01..20}"))
    for _ in range(20):
        pool = pool.refused()
    assert pool.full_reason("0", 5) == (
        "all 20 consumer groups of partition 0 have 5 readers; add groups or use a relay"
    )
