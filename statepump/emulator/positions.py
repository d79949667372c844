"""Where a receiver starts (pure): the selector filter and its resolution.

The SDK asks for a start position with a filter keyed
``apache.org:selector-filter:string`` whose value is an SQL-like string:
``amqp.annotation.x-opt-offset > '-1'``, ``... > '@latest'``,
``amqp.annotation.x-opt-sequence-number >= '42'`` or
``amqp.annotation.x-opt-enqueued-time > '1700000000000'``.

>>> parse_selector("amqp.annotation.x-opt-sequence-number >= '42'")
StartPosition(kind='sequence', value='42', inclusive=True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

SELECTOR_FILTER = b"apache.org:selector-filter:string"

_SELECTOR = re.compile(
    r"^\s*amqp\.annotation\.x-opt-(?P<kind>sequence-number|offset|enqueued-time)\s*"
    r"(?P<op>>=|>)\s*'(?P<value>[^']*)'\s*$",
    re.IGNORECASE,
)
_KINDS: dict[str, Literal["sequence", "offset", "time"]] = {
    "sequence-number": "sequence",
    "offset": "offset",
    "enqueued-time": "time",
}


class InvalidPosition(ValueError):
    """The filter cannot be understood or names a position the partition does not have."""


@dataclass(frozen=True, slots=True)
class StartPosition:
    kind: Literal["sequence", "offset", "time"]
    value: str
    inclusive: bool


#: What the service uses when a receiver gives no filter.
LATEST = StartPosition("offset", "@latest", False)


def parse_selector(text: str) -> StartPosition:
    """Parse one selector string; :class:`InvalidPosition` names what was wrong."""
    match = _SELECTOR.match(text)
    if match is None:
        raise InvalidPosition(f"unsupported selector filter {text!r}")
    kind = _KINDS[match["kind"].lower()]
    value = match["value"]
    if kind in ("sequence", "time") and not re.fullmatch(r"-?\d+", value):
        raise InvalidPosition(f"the {match['kind']} in selector {text!r} is not an integer")
    if kind == "offset" and value not in ("-1", "@latest") and not value.isdigit():
        raise InvalidPosition(f"the offset in selector {text!r} is not an offset")
    return StartPosition(kind, value, match["op"] == ">=")
