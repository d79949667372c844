"""The service's rules for receivers, consumer groups and connections (pure; :mod:`statepump.emulator.quotas`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statepump.emulator import quotas
from statepump.emulator.quotas import Claims, ConsumerGroups, Refused


class Reader:
    """A receiver as the claims see it: anything compared by identity."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def test_the_sixth_receiver_is_refused_with_the_services_words() -> None:
    claims: Claims[Reader] = Claims()
    for i in range(5):
        claims.attach("0", "$Default", Reader(f"r{i}"), epoch=None, identifier="named" if i == 1 else None)
    with pytest.raises(Refused) as refused:
        claims.attach("0", "$Default", Reader("r5"), epoch=None, identifier=None)
    assert refused.value.condition == b"amqp:resource-limit-exceeded"
    assert refused.value.description == (
        "Exceeded the maximum number of allowed receivers per partition in a consumer group which is 5. "
        "List of connected receivers - nil, named, nil, nil, nil."
    )
    assert claims.count("0") == 5  # a refusal changes nothing
    # Another group or another partition has its own five.
    claims.attach("0", "other", Reader("o"), epoch=None, identifier=None)
    claims.attach("1", "$Default", Reader("p"), epoch=None, identifier=None)


def test_an_owner_level_evicts_first_and_the_count_applies_to_who_stays() -> None:
    claims: Claims[Reader] = Claims(limit=2)
    plain = [Reader("a"), Reader("b")]
    for reader in plain:
        claims.attach("0", "g", reader, epoch=None, identifier=None)
    owner = Reader("owner")
    stolen = claims.attach("0", "g", owner, epoch=3, identifier=None)
    assert [c.receiver for c in stolen] == plain
    assert [c.receiver for c in claims.holders("0", "g")] == [owner]
    with pytest.raises(Refused) as refused:
        claims.attach("0", "g", Reader("late"), epoch=None, identifier=None)
    assert refused.value.condition == b"amqp:link:stolen"
    assert "higher epoch '3' already exists" in refused.value.description


def test_release_frees_exactly_that_receiver() -> None:
    claims: Claims[Reader] = Claims(limit=1)
    first, second = Reader("first"), Reader("second")
    claims.attach("0", "g", first, epoch=None, identifier=None)
    assert claims.release("0", "g", second) is False
    with pytest.raises(Refused):
        claims.attach("0", "g", second, epoch=None, identifier=None)
    assert claims.release("0", "g", first) is True
    claims.attach("0", "g", second, epoch=None, identifier=None)
    assert claims.count() == 1


# A history of attaches (epoch None or 0..3) and releases (index into who is attached).
_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("attach"), st.sampled_from(["0", "1"]), st.sampled_from(["g", "h"]), st.none() | st.integers(0, 3)
        ),
        st.tuples(st.just("release"), st.integers(0, 20)),
    ),
    max_size=60,
)


@given(limit=st.integers(1, 5), steps=_steps)
def test_claims_keep_the_limit_and_the_owner_rules_whatever_the_history(
    limit: int, steps: list[tuple[object, ...]]
) -> None:
    claims: Claims[Reader] = Claims(limit=limit)
    attached: list[tuple[str, str, Reader, int | None]] = []  # the model
    for n, step in enumerate(steps):
        if step[0] == "release":
            if attached:
                index = step[1]
                assert isinstance(index, int)
                gone = attached.pop(index % len(attached))
                assert claims.release(gone[0], gone[1], gone[2])
            continue
        _, partition, group, epoch = step
        assert isinstance(partition, str) and isinstance(group, str) and (epoch is None or isinstance(epoch, int))
        reader = Reader(f"r{n}")
        mine = [a for a in attached if a[:2] == (partition, group)]
        owner = max((a[3] for a in mine if a[3] is not None), default=None)
        evicted = [a for a in mine if epoch is not None and (a[3] is None or a[3] < epoch)]
        refused_by_owner = owner is not None and (epoch is None or epoch < owner)
        refused_by_count = len(mine) - len(evicted) >= limit
        outcome: list[quotas.Claim[Reader]] | Refused
        try:
            outcome = claims.attach(partition, group, reader, epoch=epoch, identifier=None)
        except Refused as exc:
            outcome = exc
        if isinstance(outcome, Refused):
            assert refused_by_owner or refused_by_count
            wanted = b"amqp:link:stolen" if refused_by_owner else b"amqp:resource-limit-exceeded"
            assert outcome.condition == wanted
        else:
            assert not refused_by_owner and not refused_by_count
            assert {id(c.receiver) for c in outcome} == {id(a[2]) for a in evicted}
            attached = [a for a in attached if a not in evicted] + [(partition, group, reader, epoch)]
        for p in ("0", "1"):
            for g in ("g", "h"):
                holders = claims.holders(p, g)
                assert len(holders) <= limit
                assert [c.receiver for c in holders] == [a[2] for a in attached if a[:2] == (p, g)]
                epochs = {c.epoch for c in holders}
                assert len(epochs) <= 1  # never a mix of owners, or of owners and plain readers


def test_consumer_groups_exist_only_when_created_and_compare_without_case() -> None:
    groups = ConsumerGroups(["Web-01"])
    assert list(groups) == ["$Default", "Web-01"]
    assert groups.find("$DEFAULT") == "$Default"
    assert groups.find("web-01") == "Web-01"
    assert groups.find("web-02") is None
    assert groups.add("WEB-01") == "Web-01"  # already there: its spelling stays
    assert len(groups) == 2
    with pytest.raises(ValueError, match="not a consumer group name"):
        groups.add("a/b")


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("web", ["web"]),
        ("web-{1..3}", ["web-1", "web-2", "web-3"]),
        ("web-{01..03}", ["web-01", "web-02", "web-03"]),
        ("{9..11}x", ["9x", "10x", "11x"]),
        ("a, b,,c", ["a", "b", "c"]),
        ("pool-{008..010},audit", ["pool-008", "pool-009", "pool-010", "audit"]),
    ],
)
def test_names_and_numbered_ranges(spec: str, names: list[str]) -> None:
    assert quotas.expand(spec) == names


@pytest.mark.parametrize(
    ("spec", "problem"),
    [("w{3..1}", "counts down"), ("w{1..2}{1..2}", "at most one"), ("w{1..1001}", "more than 1000")],
)
def test_bad_ranges_say_why(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        quotas.expand(spec)


@given(low=st.integers(0, 300), count=st.integers(1, 50), pad=st.booleans())
def test_a_range_expands_to_count_distinct_names_in_order(low: int, count: int, pad: bool) -> None:
    high = low + count - 1
    width = len(str(high)) + 1 if pad else 0
    names = quotas.expand("g-{" + f"{low:0{width}d}..{high:0{width}d}" + "}")
    assert len(names) == len(set(names)) == count
    assert [int(n[2:]) for n in names] == list(range(low, high + 1))
    if pad:
        assert {len(n) for n in names} == {2 + width}


def test_numbered_groups_and_the_not_found_text() -> None:
    assert quotas.numbered(2) == ["group-1", "group-2"]
    assert quotas.numbered(0) == []
    refused = quotas.group_not_found("ns", "hub", "nope")
    assert refused.condition == b"amqp:not-found"
    assert refused.description == (
        "The messaging entity 'ns:eventhub:hub~32766|nope' could not be found. "
        "To know more visit https://aka.ms/sbResourceMgrExceptions."
    )


def test_connections_past_the_limit_are_refused() -> None:
    assert quotas.connections_exceeded("ns", 10**6, None) is None
    assert quotas.connections_exceeded("ns", 4, 5) is None
    refused = quotas.connections_exceeded("ns", 5, 5)
    assert refused is not None and refused.condition == b"amqp:resource-limit-exceeded"
    assert refused.description == "ConnectionsQuotaExceeded for namespace ns."
