"""Checking a ``config`` change before it is sent: would the fold apply it?

The log is append-only and every node folds it, so the cheapest place to stop
a mistyped change is before it is published. The writer commands (``statepump
set``, ``delete``, ``merge``, ``send``) and :class:`statepump.Publisher` build
event bodies here and check them in two steps:

1. :func:`check_syntax`, always: each body is a JSON object of known
   operations with the fields they need (what the fold rejects whatever the
   state).
2. :func:`check_against`, when a sidecar answers: the bodies are applied, in
   order, by the ``config`` reducer itself to the current values of the
   top-level keys they touch (:func:`top_level_keys`), so a precondition that
   already fails or a type that does not fit is found exactly as the fold
   would find it. One more refusal the fold does not make: deleting a path
   that holds nothing (the fold does nothing, which is rarely what the writer
   meant).

With a schema (``--schema``, :mod:`statepump.core.schema`), step 1 also
checks each ``set`` value against its path's subschema as far as that can be
judged without the state, and step 2 checks the state after the bodies as the
fold would. ``if_sequence`` is checked for its form only: the record of when
each path last changed is the fold's.

A refusal is :class:`Refused` with one line naming the problem. The fold
still decides: between the check and the event's turn another writer may
change the value, which is what ``--expect`` (a ``test`` operation) is for.

>>> body = set_body("markup/tshirt", 0.03, expect=0.02)
>>> body
b'{"ops":[{"op":"test","path":"markup/tshirt","value":0.02},{"op":"set","path":"markup/tshirt","value":0.03}]}'
>>> check_against({"markup": {"tshirt": 0.05}}, [body])
Traceback (most recent call last):
...
statepump.core.writecheck.Refused: test failed at markup/tshirt: 0.02 != 0.05
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import orjson
from pyrsistent import PMap, freeze, pmap

from statepump.core.configops import (
    ABSENT,
    OperationError,
    UndecodableBody,
    apply_op,
    changed_paths,
    decode_body,
    if_sequence_of,
    lookup,
    parse_path,
)
from statepump.core.errors import Rejected
from statepump.core.schema import Schema

#: The application property a writer names itself in (``--author``; read by ``/v1/history``).
AUTHOR_PROPERTY: Final = "statepump-author"

#: ``expect=NOTHING``: no precondition (``None`` is a value, JSON's null).
NOTHING: Final[Any] = object()

_KINDS: Final = ("set", "delete", "merge", "test")


class Refused(ValueError):
    """A change the fold would reject (or that would do nothing): not sent; the message says why."""


def body_of(ops: Sequence[Mapping[str, Any]]) -> bytes:
    """One event body: a single operation, or an atomic ``ops`` list.

    >>> body_of([{"op": "delete", "path": "a"}])
    b'{"op":"delete","path":"a"}'
    """
    return orjson.dumps(ops[0] if len(ops) == 1 else {"ops": list(ops)})


def _with_expect(path: str, op: dict[str, Any], expect: Any, if_sequence: int | None) -> bytes:
    if if_sequence is not None:
        op["if_sequence"] = if_sequence
    if expect is NOTHING:
        return body_of([op])
    return body_of([{"op": "test", "path": path, "value": expect}, op])


def set_body(path: str, value: Any, *, expect: Any = NOTHING, if_sequence: int | None = None) -> bytes:
    """``statepump set PATH VALUE [--expect V] [--if-sequence N]``.

    >>> set_body("a/b", [1])
    b'{"op":"set","path":"a/b","value":[1]}'
    >>> set_body("a", 2, if_sequence=41)
    b'{"op":"set","path":"a","value":2,"if_sequence":41}'
    """
    return _with_expect(path, {"op": "set", "path": path, "value": value}, expect, if_sequence)


def delete_body(path: str, *, expect: Any = NOTHING, if_sequence: int | None = None) -> bytes:
    """``statepump delete PATH [--expect V] [--if-sequence N]``."""
    return _with_expect(path, {"op": "delete", "path": path}, expect, if_sequence)


def merge_body(path: str, value: Any, *, expect: Any = NOTHING, if_sequence: int | None = None) -> bytes:
    """``statepump merge PATH JSON [--expect V] [--if-sequence N]``."""
    return _with_expect(path, {"op": "merge", "path": path, "value": value}, expect, if_sequence)


def operations(body: bytes) -> list[Mapping[str, Any]]:
    """The operations of a body, or :class:`Refused` when it is not a config event at all."""
    try:
        return decode_body(body)
    except (UndecodableBody, OperationError) as exc:
        raise Refused(str(exc)) from None


def check_syntax(body: bytes, schema: Schema | None = None) -> list[Mapping[str, Any]]:
    """What the fold rejects whatever the state; returns the operations.

    With ``schema``, a ``set`` whose value breaks its path's subschema too.

    >>> check_syntax(b'{"op": "frobnicate", "path": "a"}')
    Traceback (most recent call last):
    ...
    statepump.core.writecheck.Refused: unknown op 'frobnicate' (expected 'set', 'delete', 'merge' or 'test')
    >>> check_syntax(b'{"op": "merge", "path": "a", "value": 3}')
    Traceback (most recent call last):
    ...
    statepump.core.writecheck.Refused: 'merge' at a needs an object 'value'
    """
    ops = operations(body)
    for i, op in enumerate(ops):
        if not isinstance(op, Mapping):
            raise Refused(f"an operation must be a JSON object, not {type(op).__name__}")
        kind = op.get("op")
        if kind not in _KINDS:
            raise Refused(f"unknown op {kind!r} (expected 'set', 'delete', 'merge' or 'test')")
        if "path" not in op:
            raise Refused(f"operation {kind!r} has no 'path'")
        try:
            path = parse_path(op["path"])
        except OperationError as exc:
            raise Refused(str(exc)) from None
        where = "/".join(map(str, path)) or "/"
        if kind in ("set", "merge", "test") and "value" not in op:
            raise Refused(f"'{kind}' at {where} has no 'value'")
        if kind in ("set", "delete") and not path:
            raise Refused(f"'{kind}' needs a non-empty path")
        if kind == "merge" and not isinstance(op.get("value"), dict):
            raise Refused(f"'merge' at {where} needs an object 'value'")
        try:
            if_sequence_of(op)
            if schema is not None and kind == "set" and not _overlapped(path, ops[i + 1 :]):
                schema.check_value(path, op["value"])  # what the fold will find at path after the event
        except Rejected as exc:
            raise Refused(str(exc)) from None
    return ops


def _overlapped(path: tuple[str | int, ...], later: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a later operation of the event changes ``path``, above it or below it."""
    for op in later:
        if not isinstance(op, Mapping) or op.get("op") == "test":
            continue
        try:
            other = parse_path(op.get("path", ""))
        except OperationError:
            return True
        n = min(len(path), len(other))
        if path[:n] == other[:n]:
            return True
    return False


def top_level_keys(bodies: Iterable[bytes]) -> set[str | int] | None:
    """The state's top-level keys the bodies read or change; ``None``: the whole state (an op at the root).

    >>> sorted(top_level_keys([b'{"op": "set", "path": "a/b", "value": 1}', b'{"op": "delete", "path": ["c"]}']))
    ['a', 'c']
    """
    keys: set[str | int] = set()
    for body in bodies:
        for op in operations(body):
            path = parse_path(op.get("path", ""))
            if not path:
                return None
            keys.add(path[0])
    return keys


def check_against(
    current: Mapping[str, Any] | PMap[Any, Any], bodies: Sequence[bytes], schema: Schema | None = None
) -> None:
    """Apply ``bodies`` in order to ``current`` (at least the keys they touch) as the fold would.

    With ``schema``, the state after each body must satisfy it on the paths the body changes.

    >>> check_against({"a": 1}, [b'{"op": "set", "path": "a/b", "value": 2}'])
    Traceback (most recent call last):
    ...
    statepump.core.writecheck.Refused: path a/b: cannot descend into int at segment 'b'
    >>> check_against({}, [b'{"op": "delete", "path": "a/b"}'])
    Traceback (most recent call last):
    ...
    statepump.core.writecheck.Refused: nothing to delete at a/b (the fold would do nothing)
    """
    state: PMap[Any, Any] = current if isinstance(current, PMap) else freeze(dict(current))
    if not isinstance(state, PMap):
        state = pmap()
    for body in bodies:
        ops = check_syntax(body)  # the schema is judged below, on the state after the body
        before = state
        for op in ops:
            try:
                path = parse_path(op["path"])
                if op["op"] == "delete" and lookup(state, path) is ABSENT:
                    raise Refused(f"nothing to delete at {'/'.join(map(str, path))} (the fold would do nothing)")
                state = apply_op(state, op)
            except OperationError as exc:
                raise Refused(str(exc)) from None
        if schema is not None:
            try:
                schema.check_event(before, state, changed_paths(ops))
            except Rejected as exc:
                raise Refused(str(exc)) from None
