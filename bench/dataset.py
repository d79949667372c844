"""Benchmark data that looks like real configuration, from a fixed seed.

Keys are Azure App Configuration style paths, ``tenant-00042:checkout:max-items``
(one segment each, so the ``config`` reducer's ``"a/b"`` path splitting keeps
them at the top level: a state of N keys is one N-key map, the worst case for
the map). Values mix numbers, short strings, booleans and small nested objects.

>>> keys(3)
['tenant-00000:checkout:max-items', 'tenant-00000:checkout:retry', 'tenant-00000:checkout:cache-ttl']
>>> config_dict(2) == config_dict(2)
True
"""

from __future__ import annotations

import functools
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from pyrsistent import PMap, freeze

from statepump.core.events import Event

SEED = 20261122
FEATURES = (
    "checkout", "search", "pricing", "catalog", "payments", "shipping", "auth", "notifications", "recommendations",
    "inventory", "reviews", "loyalty", "tax", "returns", "analytics", "support", "billing", "media", "locale", "flags",
)  # fmt: skip
SETTINGS = (
    "max-items", "timeout-ms", "currency", "enabled", "endpoint", "retry", "theme", "limit", "rollout", "region",
    "cache-ttl", "page-size", "markup", "banner", "owner", "batch-size", "threshold", "mode", "version", "quota",
    "rate", "window-s", "fallback", "level", "label",
)  # fmt: skip
WORDS = ("eu-west", "us-east", "blue", "green", "strict", "lenient", "EUR", "USD", "beta", "stable", "v2.3.1", "off")
PER_TENANT = 100
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def key(i: int) -> str:
    """The i-th key: 100 distinct feature:setting pairs per tenant."""
    tenant, j = divmod(i, PER_TENANT)
    combo = j * 5 + tenant % 5  # unique within a tenant, varied across tenants
    feature, setting = divmod(combo, len(SETTINGS))
    return f"tenant-{tenant:05d}:{FEATURES[feature % len(FEATURES)]}:{SETTINGS[setting]}"


def keys(n: int) -> list[str]:
    return [key(i) for i in range(n)]


def value(rng: random.Random) -> Any:
    """One JSON value, in the proportions a configuration store holds."""
    r = rng.random()
    if r < 0.35:
        return rng.randrange(0, 10_000)
    if r < 0.50:
        return round(rng.random() * 100, 2)
    if r < 0.75:
        return f"{rng.choice(WORDS)}-{rng.randrange(100)}"
    if r < 0.85:
        return rng.random() < 0.5
    return {
        "enabled": rng.random() < 0.7,
        "limit": rng.randrange(1, 500),
        "regions": [rng.choice(WORDS[:4]) for _ in range(rng.randrange(1, 3))],
    }


@functools.cache
def config_dict(n: int) -> dict[str, Any]:
    """``n`` keys and their values, as plain JSON-like Python (the anchors' data)."""
    rng = random.Random(SEED)
    return {key(i): value(rng) for i in range(n)}


@functools.cache
def state(n: int) -> PMap[str, Any]:
    """:func:`config_dict` as the pyrsistent state the ``config`` reducer would hold."""
    return freeze(config_dict(n))


def set_bodies(count: int, n_keys: int, *, seed: int = SEED + 1) -> list[bytes]:
    """``count`` config ``set`` event bodies on random keys among the first ``n_keys``."""
    rng = random.Random(seed)
    return [
        json.dumps({"op": "set", "path": key(rng.randrange(n_keys)), "value": value(rng)}).encode()
        for _ in range(count)
    ]


def set_events(count: int, n_keys: int, *, first: int = 0, partition: str = "0") -> list[Event]:
    """:func:`set_bodies` as decoded events with sequence numbers ``first, first + 1, ...``."""
    return [
        Event(partition, first + i, str(first + i), T0 + timedelta(milliseconds=i), None, {}, body)
        for i, body in enumerate(set_bodies(count, n_keys))
    ]
