"""The ``markup`` reducer: the fashion-markup domain of the Azure pattern, as an example of a custom reducer.

Each event is a ``MarkupUpdate`` (``{"type": "tshirt", "price": 0.03}``); a
price of zero or less removes the type.

>>> from statepump.core.events import Event
>>> from datetime import datetime, timezone
>>> ev = Event("0", 0, "0", datetime.now(timezone.utc), None, {}, b'{"type": "tshirt", "price": 0.03}')
>>> dict(markup(markup.initial, ev))
{'tshirt': 0.03}
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyrsistent import PMap, pmap

from statepump.core.configops import OperationError, UndecodableBody
from statepump.core.events import Event
from statepump.core.reducer import Reducer


@dataclass(frozen=True, slots=True)
class MarkupUpdate:
    """The Azure pattern's domain event: the markup for a product type."""

    type: str
    price: float

    @classmethod
    def from_body(cls, body: bytes) -> MarkupUpdate:
        try:
            doc = json.loads(body)
        except ValueError as exc:  # not JSON at all: a poison event, for the policy to decide
            raise UndecodableBody(f"a MarkupUpdate must be JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise UndecodableBody(f"a MarkupUpdate must be a JSON object, not {type(doc).__name__}")
        try:
            kind, price = doc["type"], doc["price"]
        except (KeyError, TypeError) as exc:
            raise OperationError(f"a MarkupUpdate needs a JSON object with 'type' and 'price': {exc}") from None
        if not isinstance(kind, str) or isinstance(price, bool) or not isinstance(price, int | float):
            raise OperationError("MarkupUpdate 'type' must be a string and 'price' a number")
        return cls(kind, float(price))


def _markup(state: PMap[str, float], event: Event) -> PMap[str, float]:
    update = MarkupUpdate.from_body(event.body)
    if update.price <= 0:
        return state.discard(update.type)
    return state.set(update.type, update.price)


markup: Reducer[PMap[str, float]] = Reducer("markup", 1, _markup, pmap())
