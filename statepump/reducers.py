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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import orjson
from pyrsistent import PMap, PVector, freeze, pmap, pvector

from statepump.errors import ConfigError
from statepump.events import Event

S = TypeVar("S")

Path = tuple[str | int, ...]


S_co = TypeVar("S_co", covariant=True)


class Transient(Protocol[S_co]):
    """A state being changed in place by one batch of events, then frozen once.

    :func:`statepump.fold.fold` publishes one version per batch, so the
    immutable state between two events of a batch is never seen by anyone; a
    transient lets a reducer skip building it. The contract, which the fold's
    duplicate/gap/poison rules rely on:

    * ``apply(event)`` either applies the whole event or raises and leaves
      the transient as it was (a poison event changes nothing);
    * ``result()`` returns the immutable state after every event applied so
      far (the very state it started from if none changed it) and may be
      followed by more ``apply`` calls;
    * folding a batch through it gives a state equal to applying
      ``Reducer.apply`` event by event.

    >>> class Counting:
    ...     def __init__(self, state):
    ...         self.base, self.n = state, 0
    ...     def apply(self, event):
    ...         self.n += 1
    ...     def result(self):
    ...         if self.n:  # fold once, then start counting again from the new state
    ...             self.base, self.n = self.base.set("n", self.base.get("n", 0) + self.n), 0
    ...         return self.base
    >>> count = Reducer("count", 1, lambda s, e: s.set("n", s.get("n", 0) + 1), pmap(), batch=Counting)
    >>> t = count.batch(pmap({"n": 2}))
    >>> t.apply(None); t.apply(None)
    >>> t.result()["n"]
    4
    """

    def apply(self, event: Event) -> None: ...

    def result(self) -> S_co: ...


@dataclass(frozen=True)
class Reducer(Generic[S]):
    """A named, versioned fold function and the state it starts from.

    ``batch``, when given, makes a :class:`Transient` over a state so that
    :func:`statepump.fold.fold` can apply a batch of events without building
    an immutable state per event; reducers without it are applied one event
    at a time.

    >>> from pyrsistent import pmap
    >>> count = Reducer("count", 1, lambda s, e: s.set("n", s.get("n", 0) + 1), pmap())
    >>> count.identity
    'count@1'
    """

    name: str
    version: int
    apply: Callable[[S, Event], S] = field(repr=False)
    initial: S = field(repr=False)
    batch: Callable[[S], Transient[S]] | None = field(default=None, repr=False, compare=False)

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
    raise OperationError(f"path {_describe(full)}: cannot descend into {type(node).__name__} at segment {seg!r}")


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
    """``pyrsistent.freeze(value)`` for a decoded JSON value, in a fraction of its time.

    freeze() walks every node through several isinstance checks against ABCs;
    JSON gives only dicts, lists and scalars, whose exact types are checked
    here. Anything else still goes through freeze().

    >>> _freeze({"a": [1, {"b": None}]}) == freeze({"a": [1, {"b": None}]})
    True
    """
    if type(value) in _SCALARS:
        return value
    if type(value) is dict:
        return _small_pmap({k: _freeze(v) for k, v in value.items()})
    if type(value) is list:
        return pvector([_freeze(v) for v in value])
    return freeze(value)


def _shared(value: object) -> object:
    """``_freeze(value)`` for a container orjson decoded, one object per distinct value.

    Configuration repeats small objects across keys (``{"enabled": true,
    "limit": 100}``): equal ones are frozen once and shared, as decoding a
    snapshot shares them (``statepump/codec.py``). "Equal" is the same JSON
    text, so ``1``, ``1.0`` and ``true`` stay apart. Encoding the value costs a
    tenth of freezing it; the table is bounded (cleared when full) and holds
    only small values. The states are immutable, so sharing is invisible.

    >>> _shared({"on": True, "ids": [1, 2]}) is _shared({"on": True, "ids": [1, 2]})
    True
    >>> _shared({"n": 1}) is _shared({"n": 1.0})
    False
    """
    try:
        key = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # not from orjson.loads after all: nothing to share by
        return _freeze(value)
    if len(key) > _SHARED_LARGEST:
        return _freeze(value)
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= _SHARED_MOST:
            _SHARED.clear()
        found = _SHARED[key] = _freeze(value)
    return found


_SHARED: dict[bytes, object] = {}
_SHARED_MOST = 1 << 15  # a few MB of keys at most
_SHARED_LARGEST = 512  # bytes of JSON: bigger values are rarely repeated


def _small_pmap(d: dict[Any, Any]) -> PMap[Any, Any]:
    """``pmap(d)``: the same buckets in the same order, without its general-purpose checks.

    >>> _small_pmap({"a": 1, "b": 2}) == pmap({"a": 1, "b": 2})
    True
    """
    if not d:
        return pmap()
    width = 2 * len(d)  # as pmap() sizes a map made from a dict
    table: list[Any] = [None] * width
    _redistribute(d.items(), table, width)
    return PMap(len(d), pvector(table))  # type: ignore[call-arg]


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
    if not _may_hold_long_integer(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


# orjson turns integers beyond 64 bits into floats instead of refusing them;
# a body with 19 digits in a row anywhere goes to json (slower, exact).
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_DIGITS = b"0123456789"


def _may_hold_long_integer(body: bytes) -> bool:
    """True if ``body`` has 19 digits in a row (an integer orjson might read as a float).

    >>> _may_hold_long_integer(b'{"a": 1234567890123456789}'), _may_hold_long_integer(b'{"a": 1.5}')
    (True, False)
    """
    # Counting the digits is a fraction of the regex's time, and fewer than 19 cannot make a run of 19.
    return len(body) - len(body.translate(None, _DIGITS)) >= 19 and _LONG_DIGITS.search(body) is not None


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


_EXACT_FROM_ORJSON = frozenset({str, int, bool, type(None)})


class _Deleted:
    """The pending value of a top-level key deleted in the current batch."""

    __slots__ = ()


_DELETED = _Deleted()


class _ConfigTransient:
    """The ``config`` reducer's :class:`Transient`: top-level ``set``/``delete`` as dict assignments.

    The common event, one ``set`` or ``delete`` of a top-level key, only
    records the key's new value (or :data:`_DELETED`) in ``pending``; the
    map is built once, by :meth:`result`. Any other event (a nested path, an
    ``ops`` list, a merge) first materialises ``pending`` and then goes
    through :func:`apply_op`, whose immutable updates make it all or nothing.

    >>> from datetime import datetime, timezone
    >>> now = datetime.now(timezone.utc)
    >>> t = _ConfigTransient(pmap({"a": 1}))
    >>> t.apply(Event("0", 0, "0", now, None, {}, b'{"op": "set", "path": "b", "value": 2}'))
    >>> t.apply(Event("0", 1, "1", now, None, {}, b'{"op": "delete", "path": "a"}'))
    >>> t.result() == pmap({"b": 2})
    True
    """

    __slots__ = ("_base", "_fast", "_pending")

    def __init__(self, state: PMap[Any, Any]) -> None:
        self._base = state
        self._pending: dict[Any, Any] = {}
        # A PMap subclass may override set/remove: it gets the general path only.
        self._fast = type(state) is _PMAP_TYPE

    def apply(self, event: Event) -> None:
        body = event.body
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None  # json may still read it, or explain why not: the general path below
        if type(doc) is dict and self._fast and "ops" not in doc:
            path = doc.get("path")
            if type(path) is str and path and "/" not in path:
                kind = doc.get("op")
                if kind == "set":
                    if "value" in doc:
                        value = doc["value"]
                        # orjson reads an integer beyond 64 bits as a float: only a value
                        # that may hold a float needs the check _loads makes for every body.
                        if type(value) in _EXACT_FROM_ORJSON:  # a scalar: nothing to freeze either
                            self._pending[path] = value
                            return
                        if not _may_hold_long_integer(body):
                            # A float is a scalar too; containers are frozen, equal ones shared.
                            self._pending[path] = value if type(value) is float else _shared(value)
                            return
                elif kind == "delete":
                    self._pending[path] = _DELETED
                    return
        ops = decode_body(body)
        state = self.result()
        for op in ops:
            state = apply_op(state, op)  # raises before self._base changes: all or nothing
        self._base = state
        self._fast = type(state) is _PMAP_TYPE

    def result(self) -> PMap[Any, Any]:
        if self._pending:
            self._base = _map_update(self._base, self._pending)
            self._pending = {}
        return self._base


def _map_update(node: PMap[Any, Any], changes: Mapping[Any, Any]) -> PMap[Any, Any]:
    """``node`` with each key of ``changes`` set to its value, or removed where the value is :data:`_DELETED`.

    One pass for the whole batch, in one of two ways:

    - A batch small beside the map updates the bucket vector through one
      evolver: each touched bucket is copied once, and the vector's C nodes
      on its path (a few, shared between keys near each other) instead of a
      path copy and a new map per key.
    - A batch that may outgrow the vector, or touches a sizeable share of
      it, is applied to the buckets as a Python list, which is then frozen
      into a new vector in one pass (:func:`_rebuilt`). Per key that is a
      list index instead of a vector lookup and an evolver set; the price is
      a pass over every bucket, about 85 ns each.

    >>> _map_update(pmap({"a": 1, "b": 2}), {"a": 3, "b": _DELETED, "c": 4}) == pmap({"a": 3, "c": 4})
    True
    """
    buckets = node._buckets
    width = len(buckets)
    size = node._size
    most = size + len(changes)
    if width < 0.67 * most:  # the load at which PMap.set reallocates
        return _rebuilt(node, changes, _wider(width, most))
    if len(changes) * _REBUILD_SHARE >= width:
        return _rebuilt(node, changes, width)
    touched: dict[int, list[tuple[Any, Any]]] = {}
    for key, value in changes.items():
        index = hash(key) % width
        bucket = touched.get(index)
        if bucket is None:
            old = buckets[index]
            if not old:  # the commonest case at the loads PMap keeps: nothing to copy or search
                if value is not _DELETED:
                    touched[index] = [(key, value)]
                    size += 1
                continue
            if len(old) == 1 and value is not _DELETED and old[0][0] == key:  # the next: the key, alone
                touched[index] = [(key, value)]
                continue
            bucket = touched[index] = list(old)
        size += _change(bucket, key, value)
    evolver = buckets.evolver()
    for index, bucket in touched.items():
        evolver[index] = bucket or None  # PMap.remove leaves None where a bucket empties
    return PMap(size, evolver.persistent())  # type: ignore[call-arg]


# A batch of at least one key per 8 buckets rebuilds the vector. Measured on the
# 2M buckets of a 1M-key map (updates of random keys, freeing the result included):
# the rebuild costs about 180 ms plus 1.9 µs a key, the evolver 2.5 µs a key;
# even at 260k keys, the evolver 4.8x faster at 16k, the rebuild ahead beyond.
_REBUILD_SHARE = 8


def _change(bucket: list[tuple[Any, Any]], key: Any, value: Any) -> int:
    """Set ``key`` to ``value`` (or remove it) in a bucket we own; the change in the map's size."""
    for i, (k, v) in enumerate(bucket):
        if k == key:
            if value is _DELETED:
                del bucket[i]
                return -1
            if v is not value:
                bucket[i] = (k, value)
            return 0
    if value is _DELETED:
        return 0
    bucket.insert(0, (key, value))  # PMap.set puts a new key first in its bucket
    return 1


def _rebuilt(node: PMap[Any, Any], changes: Mapping[Any, Any], width: int) -> PMap[Any, Any]:
    """:func:`_map_update` by way of a Python list of ``width`` buckets, frozen at the end."""
    buckets = node._buckets
    size = node._size
    owned: set[int] | None
    if width == len(buckets):
        table = _thawed(buckets)
        owned = set()  # the buckets are the old map's: copy one before changing it
    else:
        table = [None] * width
        for start in range(0, len(buckets), _CHUNK):
            for bucket in filter(None, buckets[start : start + _CHUNK]):
                _redistribute(bucket, table, width)
        owned = None  # every bucket is a new list
    for key, value in changes.items():
        index = hash(key) % width
        bucket = table[index]
        if not bucket:
            if value is not _DELETED:
                table[index] = [(key, value)]
                if owned is not None:
                    owned.add(index)
                size += 1
            continue
        if owned is not None and index not in owned:
            bucket = table[index] = list(bucket)
            owned.add(index)
        size += _change(bucket, key, value)
        if not bucket:
            table[index] = None
    return PMap(size, _frozen(table))  # type: ignore[call-arg]


def _wider(width: int, size: int) -> int:
    """The bucket count for ``size`` keys when a map of ``width`` buckets outgrows it.

    Four times as wide where ``PMap.set`` doubles: a map built by replaying a log
    rehashes a third as many entries on its way up, and its buckets are emptier
    (fewer to copy and search); measured 14% faster replaying 1M events into 632k
    keys, for a bucket vector at most twice as wide as ``PMap.set``'s (8 bytes a bucket).
    """
    width *= 4
    while width < 0.67 * size:
        width *= 2
    return width


# Both directions between a pvector and a list go in C calls of bounded size
# rather than one tolist()/pvector() over the whole table: a reader thread
# waits for the GIL no longer than one chunk.


def _thawed(vector: PVector[Any]) -> list[Any]:
    """``vector``'s items as a new list."""
    table: list[Any] = []
    for start in range(0, len(vector), _CHUNK):
        table.extend(vector[start : start + _CHUNK])
    return table


def _frozen(table: list[Any]) -> PVector[Any]:
    """``table`` as a pvector."""
    evolver: Any = pvector().evolver()
    for start in range(0, len(table), _CHUNK):
        evolver.extend(table[start : start + _CHUNK])
    result: PVector[Any] = evolver.persistent()
    return result


_CHUNK = 1 << 15  # about 3 ms of pvector building


def _redistribute(pairs: Iterable[tuple[Any, Any]], table: list[Any], width: int) -> None:
    """Put each ``(key, value)`` pair into the bucket of ``table`` its key hashes to."""
    for kv in pairs:
        index = hash(kv[0]) % width
        into = table[index]
        if into:
            into.append(kv)
        else:
            table[index] = [kv]


config: Reducer[PMap[Any, Any]] = Reducer("config", 1, _config, pmap(), _ConfigTransient)


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
