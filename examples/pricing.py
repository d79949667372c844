"""The examples' one piece of domain logic: a price quote from a base price and a markup.

Pure: a web app takes *one* version of the state and hands it here, so a
quote never mixes a new price with an old markup.

>>> from pyrsistent import freeze
>>> state = freeze({"prices": {"tshirt": 20}, "markup": {"default": 0.1}})
>>> quote_from(state, "tshirt")
{'item': 'tshirt', 'price': 20, 'markup': 0.1, 'markup_setting': 'markup/default', 'total': 22.0}
>>> quote_from(freeze({"prices": {"tshirt": "cheap"}}), "tshirt")
Traceback (most recent call last):
...
examples.pricing.PricingError: prices/tshirt must be a non-negative number, not 'cheap'
"""

from __future__ import annotations

import math
from typing import Any

from statepump.core.statejson import MISSING, walk


class PricingError(ValueError):
    """The configuration holds no usable price or markup for an item; the message names the setting."""


class NoPrice(LookupError):
    """The configuration has no ``prices/<item>``."""

    def __init__(self, item: str) -> None:
        super().__init__(f"no price for {item!r} (nothing at prices/{item})")
        self.item = item


def _number(value: object, setting: str) -> float:
    # bool is an int subclass, but `true` is no price.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise PricingError(f"{setting} must be a non-negative number, not {value!r}")
    return value


def quote_from(state: Any, item: str) -> dict[str, Any]:
    """The quote for ``item`` from one state: ``prices/<item> * (1 + markup)``, rounded to cents.

    The markup is ``markup/<item>``, else ``markup/default``, else 0.

    >>> from pyrsistent import freeze
    >>> quote_from(freeze({"prices": {"socks": 4}, "markup": {"socks": 0.5}}), "socks")["total"]
    6.0
    """
    price = walk(state, ("prices", item))
    if price is MISSING:
        raise NoPrice(item)
    markup: object = 0
    setting = "markup (none set)"
    for candidate in (item, "default"):
        found = walk(state, ("markup", candidate))
        if found is not MISSING:
            markup, setting = found, f"markup/{candidate}"
            break
    total = _number(price, f"prices/{item}") * (1 + _number(markup, setting))
    return {"item": item, "price": price, "markup": markup, "markup_setting": setting, "total": round(total, 2)}
