"""Reverting: the config operations that bring a value back to what it held at an earlier event.

Pure and synchronous; ``statepump revert --to N [PATH]`` (:mod:`statepump.revertcommand`)
feeds it the value at PATH now (from the sidecar) and at event N (rebuilt
offline) and sends the result as one atomic event, so the log keeps the
whole history and the undo is itself an event every node folds alike.

:func:`revert_ops` turns the :func:`~statepump.core.changes.diff` from *now*
to *then* into an ``ops`` list: a ``set`` for each path that changed or
disappeared since, a ``delete`` for each path that appeared, and first, for
each path that holds something now, a ``test`` of that value. With
``as_of`` (the sequence number of the state read as *now*), every write also
carries ``"if_sequence": as_of``, which covers what a ``test`` cannot: a
path that held nothing now and was written since. A concurrent change to any
of those paths makes the whole event a rejection, never a silent overwrite.

>>> from pyrsistent import freeze
>>> now, then = freeze({"a": 2, "b": {"x": 1}, "c": 3}), freeze({"a": 1, "b": {"x": 1, "y": 0}})
>>> for op in revert_ops(now, then, as_of=9):
...     print(op)
{'op': 'test', 'path': ['a'], 'value': 2}
{'op': 'test', 'path': ['c'], 'value': 3}
{'op': 'set', 'path': ['a'], 'value': 1, 'if_sequence': 9}
{'op': 'set', 'path': ['b', 'y'], 'value': 0, 'if_sequence': 9}
{'op': 'delete', 'path': ['c'], 'if_sequence': 9}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from statepump.core import statejson
from statepump.core.changes import Path, diff, render

__all__ = ["describe_op", "revert_ops"]


def _plain(value: Any) -> Any:
    """A state's (persistent) value as the plain JSON an event body carries."""
    return json.loads(statejson.encode(value))


def revert_ops(now: Any, then: Any, prefix: Sequence[Any] = (), *, as_of: int | None = None) -> list[dict[str, Any]]:
    """The operations that turn ``now`` (the value at ``prefix`` now) back into ``then`` (the value there at N).

    Either may be :data:`~statepump.core.statejson.MISSING` (nothing at
    ``prefix``). Paths are lists of segments, so keys holding ``/`` stay one
    segment. An empty list means there is nothing to revert. Reverting the
    root itself to nothing is impossible (the state's root is always an
    object): :class:`ValueError`.
    """
    tests: list[dict[str, Any]] = []
    writes: list[dict[str, Any]] = []
    for change in diff(now, then, tuple(prefix)):
        path: Path = change.path
        if not path:
            raise ValueError("the root of the state cannot be replaced by a revert; name a PATH below it")
        segments = list(path)
        if change.kind != "added":  # something is there now (diff's "old"): only if it still is
            tests.append({"op": "test", "path": segments, "value": _plain(change.old)})
        op: dict[str, Any]
        if change.kind == "removed":
            op = {"op": "delete", "path": segments}
        else:
            op = {"op": "set", "path": segments, "value": _plain(change.new)}
        if as_of is not None:
            op["if_sequence"] = as_of
        writes.append(op)
    return [*tests, *writes]


def describe_op(op: dict[str, Any]) -> str:
    """One operation of a revert for a terminal.

    >>> describe_op({"op": "set", "path": ["a", "b"], "value": 1, "if_sequence": 4})
    'set a/b = 1 (if unchanged since 4)'
    >>> describe_op({"op": "test", "path": ["a"], "value": {"x": 1}})
    'test a == {"x":1}'
    """
    where = render(op["path"]) or "/"
    guard = f" (if unchanged since {op['if_sequence']})" if "if_sequence" in op else ""
    if op["op"] == "delete":
        return f"delete {where}{guard}"
    value = statejson.encode(op["value"]).decode()
    sign = "==" if op["op"] == "test" else "="
    return f"{op['op']} {where} {sign} {value}{guard}"
