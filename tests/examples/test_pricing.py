"""examples/pricing.py: quotes from one state (pure, no I/O)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrsistent import freeze

from examples.pricing import NoPrice, PricingError, quote_from


def test_the_items_markup_wins_over_the_default() -> None:
    state = freeze({"prices": {"tshirt": 20}, "markup": {"tshirt": 0.5, "default": 0.1}})
    assert quote_from(state, "tshirt") == {
        "item": "tshirt",
        "price": 20,
        "markup": 0.5,
        "markup_setting": "markup/tshirt",
        "total": 30.0,
    }


def test_the_default_markup_then_none() -> None:
    assert quote_from(freeze({"prices": {"hat": 10}, "markup": {"default": 0.25}}), "hat")["total"] == 12.5
    no_markup = quote_from(freeze({"prices": {"hat": 10}}), "hat")
    assert (no_markup["markup"], no_markup["markup_setting"], no_markup["total"]) == (0, "markup (none set)", 10.0)


def test_no_price_names_the_missing_setting() -> None:
    with pytest.raises(NoPrice, match=r"nothing at prices/socks"):
        quote_from(freeze({"prices": {"hat": 1}}), "socks")
    with pytest.raises(NoPrice):
        quote_from(freeze({}), "socks")


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"prices": {"x": "cheap"}}, "prices/x must be a non-negative number, not 'cheap'"),
        ({"prices": {"x": True}}, "prices/x must be a non-negative number, not True"),
        ({"prices": {"x": -1}}, "prices/x must be a non-negative number, not -1"),
        ({"prices": {"x": 1}, "markup": {"x": [0.1]}}, "markup/x must be a non-negative number"),
        ({"prices": {"x": 1}, "markup": {"default": None}}, "markup/default must be a non-negative number, not None"),
    ],
)
def test_unusable_values_name_the_setting(state: dict[str, object], message: str) -> None:
    with pytest.raises(PricingError) as caught:
        quote_from(freeze(state), "x")
    assert message in str(caught.value)


@given(
    price=st.floats(min_value=0, max_value=1e9, allow_nan=False) | st.integers(min_value=0, max_value=10**9),
    markup=st.floats(min_value=0, max_value=10, allow_nan=False),
)
def test_the_total_is_price_times_one_plus_markup_in_cents(price: float, markup: float) -> None:
    quote = quote_from(freeze({"prices": {"x": price}, "markup": {"x": markup}}), "x")
    assert math.isclose(quote["total"], price * (1 + markup), abs_tol=0.005 + 1e-9 * price * (1 + markup))
    assert quote["total"] == round(quote["total"], 2)
