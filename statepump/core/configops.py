"""The ``config`` reducer: event bodies are JSON operations on a tree of settings.

So that a team needs to write no code, the default reducer (``config@1``)
reads each event body as one operation or an atomic list of them::

    {"op": "set", "path": ["markup", "tshirt"], "value": 0.03}
    {"op": "delete", "path": "markup/tshirt"}
    {"op": "merge", "path": ["limits"], "value": {"rps": 10}}
    {"ops": [ ...several of the above, applied atomically as one event... ]}
    {"ops": [{"op": "test", "path": "markup/tshirt", "value": 0.02},
             {"op": "set", "path": "markup/tshirt", "value": 0.03}]}

Paths are lists or ``a/b/c`` strings; integer segments index into lists.

Outcomes. An event whose operations are all valid is *applied*; any invalid
operation (unknown op, no path, a bad index, a type that does not fit) or a
failed ``test`` makes the whole event *rejected*: :class:`OperationError`, a
:class:`~statepump.core.errors.Rejected`, so the fold leaves the state as it
was, on every node alike. ``test`` is JSON Patch's (RFC 6902): it changes
nothing and passes only when the value at its path equals ``value`` (numbers
by value, ``1`` equals ``1.0`` but not ``true``; a missing path equals
nothing), evaluated after the operations before it in the same ``ops``. That
is how a writer says "only if it is still what I saw" (``statepump set
--expect``). Any operation may also carry ``"if_sequence": N``: the whole
event is rejected unless the operation's path last changed at or before event
``N`` (``statepump set --if-sequence N``); "changed" covers the path, the
paths under it and the paths above it, by the rule of
:mod:`statepump.core.lastchanged`, whose record the reducer keeps beside the
state (:attr:`~statepump.core.events.Version.changed`, in every snapshot).
Every ``if_sequence`` of an event is judged against the record as it was
before that event; ``config.apply`` alone (one event, outside a fold) has no
record and checks only its form. With a schema (:func:`config_reducer`, ``--schema``), an
event that would leave the state invalid is rejected too
(:mod:`statepump.core.schema`). A body that is not a JSON object at all is not a config event:
:class:`UndecodableBody`, a *poison* event.
The fold's hot path (one ``set`` of a top-level key) and the batch hook
(:class:`_ConfigTransient`) update the map through
:mod:`statepump.core.pyrsistent_internals`.

>>> from statepump.core.events import Event
>>> from datetime import datetime, timezone
>>> ev = Event("0", 0, "0", datetime.now(timezone.utc), None, {},
...            b'{"op": "set", "path": "markup/tshirt", "value": 0.03}')
>>> config(config.initial, ev)["markup"]["tshirt"]
0.03
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pyrsistent import PMap, PVector, freeze, pmap, pvector, thaw

from statepump.core.errors import Rejected
from statepump.core.events import Event
from statepump.core.lastchanged import LastChanged, Recorder
from statepump.core.pyrsistent_internals import DELETED, map_set, map_update, small_pmap
from statepump.core.reducer import Reducer
from statepump.core.schema import Schema

_PMAP_TYPE: type = type(pmap())


Path = tuple[str | int, ...]


class OperationError(Rejected, ValueError):
    """An event body is not a valid config operation; the message says why.

    A :class:`~statepump.core.errors.Rejected`: the fold leaves the state as it
    was and moves past the event, on every node alike.
    """


class UndecodableBody(ValueError):
    """An event body is not JSON, or not a JSON object: not a config event at all.

    Not a rejection but a *poison* event (the ``stop``/``skip`` policy
    decides): such a body was most likely written by another producer or for
    another reducer, which an operator must look at.
    """


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
        return map_set(node, seg, _set_in(node.get(seg), rest, value, full) if rest else value)
    if isinstance(node, PVector):
        index = _index(node, seg, full, allow_append=True)
        current = node[index] if index < len(node) else None
        new = _set_in(current, rest, value, full) if rest else value
        return node.append(new) if index == len(node) else node.set(index, new)
    raise OperationError(f"path {_describe(full)}: cannot descend into {type(node).__name__} at segment {seg!r}")


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
        return small_pmap({k: _freeze(v) for k, v in value.items()})
    if type(value) is list:
        return pvector([_freeze(v) for v in value])
    return freeze(value)


def _shared(value: object) -> object:
    """``_freeze(value)`` for a container orjson decoded, one object per distinct value.

    Configuration repeats small objects across keys (``{"enabled": true,
    "limit": 100}``): equal ones are frozen once and shared, as decoding a
    snapshot shares them (``statepump/core/codec.py``). "Equal" is the same JSON
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


#: What :func:`lookup` finds where the state holds nothing.
ABSENT: Any = object()


def lookup(node: object, path: Path) -> object:
    """The value at ``path``, or :data:`ABSENT` (a stored ``null`` is not absent).

    >>> lookup(pmap({"a": None}), ("a",)) is None, lookup(pmap(), ("a", 0)) is ABSENT
    (True, True)
    """
    for seg in path:
        if isinstance(node, PMap):
            node = node.get(seg, ABSENT)
        elif isinstance(node, PVector):
            index = _index(node, seg, path, allow_append=False)
            node = node[index] if index < len(node) else ABSENT
        else:
            return ABSENT
        if node is ABSENT:
            return ABSENT
    return node


def same_json(a: object, b: object) -> bool:
    """JSON equality (RFC 6902's ``test``), for frozen or plain values alike.

    >>> same_json(freeze({"a": [1, 2.0]}), {"a": [1.0, 2]}), same_json(1, True), same_json(None, False)
    (True, False, False)
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return len(a) == len(b) and all(k in b and same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, Sequence) and isinstance(b, Sequence):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return False


def _show(value: object, limit: int = 200) -> str:
    """A value as JSON in a reason: short, and the same text on every node."""
    text = json.dumps(thaw(value), sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def if_sequence_of(op: Mapping[str, Any]) -> int | None:
    """An operation's ``if_sequence``, or ``None``; :class:`OperationError` when it is not a sequence number.

    >>> if_sequence_of({"op": "set", "path": "a", "value": 1, "if_sequence": 41}), if_sequence_of({})
    (41, None)
    """
    if "if_sequence" not in op:
        return None
    n = op["if_sequence"]
    if type(n) is not int or n < -1:
        raise OperationError(f"'if_sequence' must be an event's sequence number (an integer >= -1), not {n!r}")
    return n


def changed_paths(ops: Sequence[Mapping[str, Any]]) -> list[Path]:
    """The paths an event's (valid) operations change: ``set``/``delete``/``merge`` paths; a root merge's keys.

    >>> changed_paths([{"op": "test", "path": "a", "value": 1}, {"op": "merge", "path": "", "value": {"b": 1}}])
    [('b',)]
    """
    paths: list[Path] = []
    for op in ops:
        kind = op.get("op")
        if kind == "test":
            continue
        path = parse_path(op["path"])
        if not path and kind == "merge":
            paths.extend((k,) for k in op["value"])
        else:
            paths.append(path)
    return paths


def apply_op(state: PMap[Any, Any], op: Mapping[str, Any], changed: LastChanged | None = None) -> PMap[Any, Any]:
    """Apply one decoded config operation (``{"op": ..., "path": ..., "value": ...}``).

    ``changed`` is the record an ``if_sequence`` is judged against (the fold's); without it only
    its form is checked.

    >>> apply_op(pmap(), {"op": "set", "path": ["a", "b"], "value": [1, 2]})["a"]["b"][1]
    2
    """
    if not isinstance(op, Mapping):
        raise OperationError(f"an operation must be a JSON object, not {type(op).__name__}")
    kind = op.get("op")
    if "path" not in op:
        raise OperationError(f"operation {kind!r} has no 'path'")
    path = parse_path(op["path"])
    if_sequence = if_sequence_of(op)
    if if_sequence is not None and changed is not None:
        last = changed.at(path)
        if last > if_sequence:
            raise OperationError(
                f"if_sequence failed at {_describe(path)}: it last changed at {last}, after {if_sequence}"
            )
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
    elif kind == "test":
        if "value" not in op:
            raise OperationError(f"'test' at {_describe(path)} has no 'value'")
        current = lookup(state, path)
        if current is ABSENT or not same_json(current, op["value"]):
            found = "nothing (no value there)" if current is ABSENT else _show(current)
            raise OperationError(f"test failed at {_describe(path)}: {_show(op['value'])} != {found}")
        result = state
    elif kind == "merge":
        value = freeze(op.get("value"))
        if not isinstance(value, PMap):
            raise OperationError(f"'merge' at {_describe(path)} needs an object 'value'")
        current = _get_in(state, path)
        merged = _merge(current if isinstance(current, PMap) else pmap(), value)
        result = merged if not path else _set_in(state, path, merged, path)
    else:
        raise OperationError(f"unknown op {kind!r} (expected 'set', 'delete', 'merge' or 'test')")
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
        raise UndecodableBody(f"event body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UndecodableBody(f"event body must be a JSON object, not {type(doc).__name__}")
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
            return map_set(state, path, _freeze(op["value"]))
    for op in ops:
        # Each op returns a new map; if a later op fails, the exception
        # discards every intermediate one, so `ops` applies all or nothing.
        state = apply_op(state, op)
    return state


_EXACT_FROM_ORJSON = frozenset({str, int, bool, type(None)})


class _ConfigTransient:
    """The ``config`` reducer's :class:`Transient`: top-level ``set``/``delete`` as dict assignments.

    The common event, one ``set`` or ``delete`` of a top-level key, only
    records the key's new value (or :data:`DELETED`) in ``pending`` (and its
    sequence number in the record of last changes, when kept); the map is
    built once, by :meth:`result`. Any other event (a nested path, an ``ops``
    list, a merge, an ``if_sequence``) first materialises ``pending`` and then
    goes through :func:`apply_op`, whose immutable updates make it all or
    nothing. With a schema, the hot path checks the value against the key's
    subschema before recording it, the general path every changed path after.

    >>> from datetime import datetime, timezone
    >>> now = datetime.now(timezone.utc)
    >>> t = _ConfigTransient(pmap({"a": 1}))
    >>> t.apply(Event("0", 0, "0", now, None, {}, b'{"op": "set", "path": "b", "value": 2}'))
    >>> t.apply(Event("0", 1, "1", now, None, {}, b'{"op": "delete", "path": "a"}'))
    >>> t.result() == pmap({"b": 2})
    True
    """

    __slots__ = ("_base", "_fast", "_pending", "_recorder", "_schema", "_stamps")

    def __init__(self, state: PMap[Any, Any], changed: LastChanged | None = None, schema: Schema | None = None) -> None:
        self._base = state
        self._pending: dict[Any, Any] = {}
        # A PMap subclass may override set/remove: it gets the general path only.
        self._fast = type(state) is _PMAP_TYPE
        self._schema = schema
        self._recorder = Recorder(changed) if changed is not None else None
        # The hot path writes a top-level key's sequence here (None: no record kept).
        self._stamps = self._recorder.tops if self._recorder is not None else None

    def apply(self, event: Event) -> None:
        body = event.body
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None  # json may still read it, or explain why not: the general path below
        if type(doc) is dict and self._fast and "ops" not in doc and "if_sequence" not in doc:
            path = doc.get("path")
            if type(path) is str and path and "/" not in path:
                kind = doc.get("op")
                if kind == "set":
                    if "value" in doc:
                        value = doc["value"]
                        # orjson reads an integer beyond 64 bits as a float: only a value
                        # that may hold a float needs the check _loads makes for every body.
                        exact = type(value) in _EXACT_FROM_ORJSON  # a scalar: nothing to freeze either
                        if exact or not _may_hold_long_integer(body):
                            if self._schema is not None:
                                self._schema.check_top(path, value)  # raises before anything changes
                            # A float is a scalar too; containers are frozen, equal ones shared.
                            self._pending[path] = value if exact or type(value) is float else _shared(value)
                            if self._stamps is not None:
                                self._stamps[path] = event.sequence
                            return
                elif kind == "delete":
                    if self._schema is not None:
                        self._schema.check_delete_top(path)
                    self._pending[path] = DELETED
                    if self._stamps is not None:
                        self._stamps[path] = event.sequence
                    return
        ops = decode_body(body)
        before = self.result()
        recorder = self._recorder
        changed = recorder.result() if recorder is not None else None
        state = before
        for op in ops:
            state = apply_op(state, op, changed)  # raises before self._base changes: all or nothing
        if self._schema is not None or recorder is not None:
            paths = changed_paths(ops)
            if self._schema is not None:
                self._schema.check_event(before, state, paths)
            if recorder is not None:
                recorder.record_all(paths, event.sequence)
        self._base = state
        self._fast = type(state) is _PMAP_TYPE

    def result(self) -> PMap[Any, Any]:
        if self._pending:
            self._base = map_update(self._base, self._pending)
            self._pending = {}
        return self._base

    def changed(self) -> LastChanged:
        """The record of last changes after every event applied so far (only when one is kept)."""
        if self._recorder is None:
            raise RuntimeError("this transient keeps no record of last changes")
        return self._recorder.result()


def config_reducer(schema: Schema | None = None) -> Reducer[PMap[Any, Any]]:
    """The ``config`` reducer, checking events against ``schema`` when one is given (``--schema``).

    >>> config_reducer(Schema.from_document({"type": "object"})).schema[:7]
    'sha256:'
    """
    if schema is None:
        return Reducer("config", 1, _config, pmap(), _ConfigTransient, tracking=_ConfigTransient)

    def apply(state: PMap[Any, Any], event: Event) -> PMap[Any, Any]:
        transient = _ConfigTransient(state, schema=schema)
        transient.apply(event)
        return transient.result()

    return Reducer(
        "config",
        1,
        apply,
        pmap(),
        lambda state: _ConfigTransient(state, schema=schema),
        tracking=lambda state, changed: _ConfigTransient(state, changed, schema),
        schema=schema.identity,
    )


config: Reducer[PMap[Any, Any]] = config_reducer()
