"""Reducers: the pure functions ``s' = f(s, e)`` that fold events into state.

A :class:`Reducer` is a named, versioned function. The name and version go
into every snapshot, so that a snapshot written by another reducer (or an
older version of this one) is never loaded as if it were ours.

Two reducers ship with statepump:

* :data:`config` (``config@1``), the default: event bodies are JSON
  operations on a tree of settings, so that a team needs to write no code.
* :data:`markup` (``markup@1``), the fashion-markup domain of the Azure
  "event sourcing into working memory" pattern, as an example of a custom
  reducer.

Config operations::

    {"op": "set", "path": ["markup", "tshirt"], "value": 0.03}
    {"op": "delete", "path": "markup/tshirt"}
    {"op": "merge", "path": ["limits"], "value": {"rps": 10}}
    {"ops": [ ...several of the above, applied atomically as one event... ]}

>>> from statepump.events import Event
>>> from datetime import datetime, timezone
>>> ev = Event("0", 0, "0", datetime.now(timezone.utc), None, {},
...            b'{"op": "set", "path": "markup/tshirt", "value": 0.03}')
>>> config(config.initial, ev)["markup"]["tshirt"]
0.03
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson
from pyrsistent import PMap, PVector, freeze, pmap

from statepump.errors import ConfigError
from statepump.events import Event

S = TypeVar("S")

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Reducer(Generic[S]):
    """A named, versioned fold function and the state it starts from.

    >>> from pyrsistent import pmap
    >>> count = Reducer("count", 1, lambda s, e: s.set("n", s.get("n", 0) + 1), pmap())
    >>> count.identity
    'count@1'
    """

    name: str
    version: int
    apply: Callable[[S, Event], S] = field(repr=False)
    initial: S = field(repr=False)

    def __call__(self, state: S, event: Event) -> S:
        return self.apply(state, event)

    @property
    def identity(self) -> str:
        """``name@version``, as recorded in snapshots."""
        return f"{self.name}@{self.version}"


def reducer(name: str, version: int, initial: Any = None) -> Callable[[Callable[[Any, Event], Any]], Reducer[Any]]:
    """Decorator that turns a function into a :class:`Reducer`.

    >>> @reducer("flags", 2)
    ... def flags(state, event):
    ...     return state.set(event.body.decode(), True)
    >>> flags.identity
    'flags@2'
    """

    def wrap(fn: Callable[[Any, Event], Any]) -> Reducer[Any]:
        return Reducer(name, version, fn, pmap() if initial is None else initial)

    return wrap


class OperationError(ValueError):
    """An event body is not a valid config operation; the message says why."""


# --- the config reducer ------------------------------------------------------


def parse_path(raw: object) -> Path:
    """A path as a tuple of segments, from a list or a ``"a/b/c"`` string.

    >>> parse_path("markup/tshirt")
    ('markup', 'tshirt')
    >>> parse_path(["servers", 0, "host"])
    ('servers', 0, 'host')
    """
    if type(raw) is str and "/" not in raw:
        return (raw,) if raw else ()  # the common one-segment key, without the general loop below
    if isinstance(raw, str):
        segments: Sequence[object] = [s for s in raw.split("/") if s != ""]
    elif isinstance(raw, list):
        segments = raw
    else:
        raise OperationError(f"'path' must be a list of segments or a 'a/b/c' string, not {type(raw).__name__}")
    path: list[str | int] = []
    for seg in segments:
        # bool is an int subclass; a path segment `true` is certainly a mistake.
        if isinstance(seg, bool) or not isinstance(seg, str | int):
            raise OperationError(f"path segment {seg!r} must be a string or an integer index")
        path.append(seg)
    return tuple(path)


def _describe(path: Path) -> str:
    return "/".join(str(p) for p in path) or "/"


def _child(node: object, seg: str | int, path: Path) -> object:
    if isinstance(node, PMap):
        return node.get(seg)
    if isinstance(node, PVector):
        index = _index(node, seg, path, allow_append=False)
        return node[index] if index < len(node) else None
    return None


def _index(node: PVector[Any], seg: str | int, path: Path, *, allow_append: bool) -> int:
    try:
        index = int(seg)
    except ValueError:
        raise OperationError(f"path {_describe(path)}: {seg!r} is not an index into a list") from None
    limit = len(node) if allow_append else len(node) - 1
    if not 0 <= index <= max(limit, 0) or (not allow_append and index >= len(node)):
        if not allow_append:
            return len(node)  # reads past the end find nothing
        raise OperationError(f"path {_describe(path)}: index {index} is outside the list of {len(node)}")
    return index


def _set_in(node: object, path: Path, value: object, full: Path) -> object:
    seg, rest = path[0], path[1:]
    if node is None:
        node = pmap()
    if isinstance(node, PMap):
        return _map_set(node, seg, _set_in(node.get(seg), rest, value, full) if rest else value)
    if isinstance(node, PVector):
        index = _index(node, seg, full, allow_append=True)
        current = node[index] if index < len(node) else None
        new = _set_in(current, rest, value, full) if rest else value
        return node.append(new) if index == len(node) else node.set(index, new)
    raise OperationError(
        f"path {_describe(full)}: cannot descend into {type(node).__name__} at segment {seg!r}"
    )


_PMAP_TYPE: type = type(pmap())


def _map_set(node: PMap[Any, Any], key: object, value: object) -> PMap[Any, Any]:
    """``node.set(key, value)``, several times faster for the common cases.

    ``PMap.set`` builds an evolver for the map and another for its bucket
    vector on every call; for one key that is most of the fold's time (see
    ``bench/figures/fold.py``). Replacing a key or filling a bucket here does
    the same bucket update with one C ``pvector.set``. Anything else (a
    subclass, a map that must grow its bucket vector) goes through ``set``.

    >>> _map_set(pmap({"a": 1}), "a", 2) == pmap({"a": 2})
    True
    """
    if type(node) is not _PMAP_TYPE:
        return node.set(key, value)
    buckets = node._buckets
    index = hash(key) % len(buckets)
    bucket = buckets[index]
    if bucket:
        for i, (k, v) in enumerate(bucket):
            if k == key:
                if v is value:
                    return node
                new_bucket = list(bucket)
                new_bucket[i] = (k, value)
                return PMap(node._size, buckets.set(index, new_bucket))  # type: ignore[call-arg]
        if len(buckets) < 0.67 * node._size:
            return node.set(key, value)  # PMap.set reallocates the buckets at this load
        return PMap(node._size + 1, buckets.set(index, [(key, value), *bucket]))  # type: ignore[call-arg]
    if len(buckets) < 0.67 * node._size:
        return node.set(key, value)
    return PMap(node._size + 1, buckets.set(index, [(key, value)]))  # type: ignore[call-arg]


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _freeze(value: object) -> object:
    # freeze() walks its argument through several isinstance checks against
    # ABCs; most config values are scalars that it would return unchanged.
    return value if type(value) in _SCALARS else freeze(value)


def _delete_in(node: object, path: Path, full: Path) -> object:
    seg, rest = path[0], path[1:]
    if isinstance(node, PMap):
        if seg not in node:
            return node
        return node.remove(seg) if not rest else node.set(seg, _delete_in(node[seg], rest, full))
    if isinstance(node, PVector):
        index = _index(node, seg, full, allow_append=False)
        if index >= len(node):
            return node
        return node.delete(index) if not rest else node.set(index, _delete_in(node[index], rest, full))
    return node  # deleting below a scalar or a missing key: nothing there, nothing to do


def _merge(node: object, value: object) -> object:
    if isinstance(node, PMap) and isinstance(value, PMap):
        merged = node
        for k, v in value.items():
            merged = merged.set(k, _merge(merged.get(k), v))
        return merged
    return value


def _get_in(node: object, path: Path) -> object:
    for seg in path:
        node = _child(node, seg, path)
    return node


def apply_op(state: PMap[Any, Any], op: Mapping[str, Any]) -> PMap[Any, Any]:
    """Apply one decoded config operation (``{"op": ..., "path": ..., "value": ...}``).

    >>> apply_op(pmap(), {"op": "set", "path": ["a", "b"], "value": [1, 2]})["a"]["b"][1]
    2
    """
    if not isinstance(op, Mapping):
        raise OperationError(f"an operation must be a JSON object, not {type(op).__name__}")
    kind = op.get("op")
    if "path" not in op:
        raise OperationError(f"operation {kind!r} has no 'path'")
    path = parse_path(op["path"])
    if kind == "set":
        if "value" not in op:
            raise OperationError(f"'set' at {_describe(path)} has no 'value'")
        if not path:
            raise OperationError("'set' needs a non-empty path (use 'merge' with an empty path for the root)")
        result = _set_in(state, path, _freeze(op["value"]), path)
    elif kind == "delete":
        if not path:
            raise OperationError("'delete' needs a non-empty path")
        result = _delete_in(state, path, path)
    elif kind == "merge":
        value = freeze(op.get("value"))
        if not isinstance(value, PMap):
            raise OperationError(f"'merge' at {_describe(path)} needs an object 'value'")
        current = _get_in(state, path)
        merged = _merge(current if isinstance(current, PMap) else pmap(), value)
        result = merged if not path else _set_in(state, path, merged, path)
    else:
        raise OperationError(f"unknown op {kind!r} (expected 'set', 'delete' or 'merge')")
    if not isinstance(result, PMap):
        raise OperationError("the root of the state must stay an object")
    return result


def _loads(body: bytes) -> Any:
    """``json.loads``, through orjson first: it parses a config body in a third of the time.

    Anything orjson refuses or might read differently (long integers, lone
    surrogates, NaN, non-UTF-8 encodings) goes to ``json.loads``, so the bodies accepted and
    the values produced, and the error messages for bad ones, are json's.

    >>> _loads(b'{"a": [1, 2.5, "x", null, true]}')
    {'a': [1, 2.5, 'x', None, True]}
    >>> _loads(b'{"big": 123456789012345678901234567890}')["big"]
    123456789012345678901234567890
    """
    if _LONG_DIGITS.search(body) is None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


# orjson turns integers beyond 64 bits into floats instead of refusing them;
# a body with 19 digits in a row anywhere goes to json (slower, exact).
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def decode_body(body: bytes) -> list[Mapping[str, Any]]:
    """The operations in an event body: one ``{"op": ...}`` or a ``{"ops": [...]}`` list."""
    try:
        doc = _loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OperationError(f"event body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise OperationError(f"event body must be a JSON object, not {type(doc).__name__}")
    if "ops" in doc:
        ops = doc["ops"]
        if not isinstance(ops, list) or not ops:
            raise OperationError("'ops' must be a non-empty list of operations")
        return ops
    return [doc]


def _config(state: PMap[Any, Any], event: Event) -> PMap[Any, Any]:
    ops = decode_body(event.body)
    if len(ops) == 1:
        # The most common event, one `set` of a top-level key, without the general
        # path machinery: what apply_op would do for it, in one call.
        op = ops[0]
        path = op.get("path")
        if (
            op.get("op") == "set"
            and type(path) is str
            and path
            and "/" not in path
            and "value" in op
            and type(state) is _PMAP_TYPE
        ):
            return _map_set(state, path, _freeze(op["value"]))
    for op in ops:
        # Each op returns a new map; if a later op fails, the exception
        # discards every intermediate one, so `ops` applies all or nothing.
        state = apply_op(state, op)
    return state


config: Reducer[PMap[Any, Any]] = Reducer("config", 1, _config, pmap())


# --- the markup example --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarkupUpdate:
    """The Azure pattern's domain event: the markup for a product type."""

    type: str
    price: float

    @classmethod
    def from_body(cls, body: bytes) -> MarkupUpdate:
        try:
            doc = json.loads(body)
            kind, price = doc["type"], doc["price"]
        except (ValueError, KeyError, TypeError) as exc:
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

BUILTIN: dict[str, Reducer[Any]] = {"config": config, "markup": markup}


def load_reducer(spec: str) -> Reducer[Any]:
    """The reducer named by ``spec``: a built-in name, or ``module:attribute``.

    A plain callable found at ``module:attribute`` becomes a reducer named
    after it, with version ``getattr(fn, "version", 1)`` and an empty pmap as
    its initial state.

    >>> load_reducer("config").identity
    'config@1'
    >>> load_reducer("statepump.reducers:markup").identity
    'markup@1'
    """
    if spec in BUILTIN:
        return BUILTIN[spec]
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"reducer: {spec!r} is neither a built-in ({', '.join(BUILTIN)}) nor 'module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"reducer: cannot import module {module_name!r}: {exc}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"reducer: module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, Reducer):
        return obj
    if callable(obj):
        return Reducer(f"{module_name}:{attr}", int(getattr(obj, "version", 1)), obj, pmap())
    raise ConfigError(f"reducer: {spec!r} is not callable")
