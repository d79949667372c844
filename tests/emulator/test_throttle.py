"""Throughput units as a token bucket (pure; :mod:`statepump.emulator.throttle`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statepump.emulator import throttle
from statepump.emulator.throttle import TokenBucket


def test_one_unit_is_the_services_figures() -> None:
    out, into = throttle.egress(1, now=0.0), throttle.ingress(3, now=0.0)
    assert out.rates == (4096, 2 * 1024 * 1024)
    assert into.rates == (3000, 3 * 1024 * 1024)
    assert out.capacity == out.rates  # one second of burst


def test_a_drained_bucket_says_how_long_to_wait_and_refills() -> None:
    bucket = TokenBucket(events_per_second=100, bytes_per_second=1000, now=10.0)
    bucket.take(10.0, events=1, nbytes=1500)  # bytes run out first
    assert not bucket.ready(10.0)
    wait = bucket.wait(10.0)
    assert wait == pytest.approx(0.5, abs=1e-5)
    assert not bucket.ready(10.4)
    assert bucket.ready(10.0 + wait)
    assert bucket.level(100.0) == (100, 1000)  # never above a second's worth


def test_a_pass_takes_a_tick_of_the_rate_shared_among_receivers() -> None:
    bucket = throttle.egress(1, now=0.0)
    events, nbytes = bucket.share(1)
    assert events == int(4096 * throttle.TICK) and nbytes == int(2 * 1024 * 1024 * throttle.TICK)
    assert bucket.share(4) == (events // 4, nbytes // 4)
    assert bucket.share(10**9) == (1, 1)  # everyone still gets something


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(events_per_second=0, bytes_per_second=1, now=0.0)


_takes = st.lists(
    st.tuples(st.floats(0, 0.5), st.integers(1, 300), st.integers(1, 50_000)),  # (wait, events, bytes)
    min_size=1,
    max_size=80,
)


@given(takes=_takes)
def test_what_passes_stays_within_the_rate_plus_one_burst_and_one_overdraft(
    takes: list[tuple[float, int, int]],
) -> None:
    """Whoever spends only when the bucket is ready never gets more than rate x time + one second's
    worth + the one take that overdrew it, and never waits longer than the debt needs."""
    rates = (1000.0, 100_000.0)
    bucket = TokenBucket(events_per_second=rates[0], bytes_per_second=rates[1], now=0.0)
    now = 0.0
    passed = [0, 0]
    largest = [0, 0]
    for pause, events, nbytes in takes:
        now += pause
        if not bucket.ready(now):
            wait = bucket.wait(now)
            assert wait > 0
            now += wait
            assert bucket.ready(now)
        bucket.take(now, events=events, nbytes=nbytes)
        passed[0] += events
        passed[1] += nbytes
        largest = [max(largest[0], events), max(largest[1], nbytes)]
        for i in (0, 1):
            assert passed[i] <= rates[i] * now + rates[i] + largest[i] + 1e-6
