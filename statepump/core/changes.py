"""What changed: the paths an event touches, and the difference between two states.

Pure and synchronous, used by ``/v1/history``, ``/v1/diff`` and ``statepump diff``.

* :func:`event_paths` names the paths one event changes: for the ``config``
  reducer derived from the event's operations (a ``set``/``delete`` changes its
  path, a ``merge`` each leaf of its value), for any other reducer what its
  ``paths`` hook says, else ``None`` ("unknown"). It is computed when history
  is read, never on the fold's path.
* :func:`diff` compares two states: every map is descended, and anything else
  (scalars, vectors, sets) is one value, so a change is ``added``, ``removed``
  or ``changed`` at a path with its old and new value. Unchanged subtrees are
  skipped by identity first: persistent states share what did not change, so
  comparing two nearby versions costs the size of the change in the shared
  part, not the state's.
* :func:`apply_diff` applies a diff to the old state; the tests check
  ``apply_diff(old, diff(old, new)) == new`` over random operation sequences.
* :func:`diff_paths` diffs only below a set of paths (the ones a run of events
  touched): the same answer as :func:`diff` when those paths cover every
  change, in a time that does not depend on the state's size.

>>> from pyrsistent import freeze
>>> old, new = freeze({"a": 1, "m": {"x": 1, "y": 2}}), freeze({"m": {"x": 1, "y": 3}, "b": [1]})
>>> [(c.kind, c.path, c.old, c.new) for c in diff(old, new)]
[('removed', ('a',), 1, None), ('added', ('b',), None, pvector([1])), ('changed', ('m', 'y'), 2, 3)]
>>> apply_diff(old, diff(old, new)) == new
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from pyrsistent import PMap, pmap

from statepump.core.events import Event
from statepump.core.pyrsistent_internals import differing_pairs
from statepump.core.reducer import Reducer
from statepump.core.statejson import MISSING

Path = tuple[Any, ...]
Kind = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: the value at ``path`` was ``old`` and is ``new`` (``None`` where absent)."""

    kind: Kind
    path: Path
    old: Any = None
    new: Any = None

    def as_json(self) -> dict[str, Any]:
        """The change as the API and ``statepump diff --json`` print it."""
        out: dict[str, Any] = {"kind": self.kind, "path": render(self.path)}
        if self.kind != "added":
            out["old"] = self.old
        if self.kind != "removed":
            out["new"] = self.new
        return out


def render(path: Iterable[Any]) -> str:
    """A path as ``a/b/c`` (what the API and the CLI take back).

    >>> render(("markup", "tshirt")), render(())
    ('markup/tshirt', '')
    """
    return "/".join(str(p) for p in path)


def split(text: str) -> tuple[str, ...]:
    """``a/b/c`` as segments; empty segments are skipped, as the config reducer does.

    >>> split("/a//b/"), split("")
    (('a', 'b'), ())
    """
    return tuple(s for s in text.split("/") if s)


# ---------------------------------------------------------------- paths of events


def config_paths(event: Event) -> tuple[Path, ...] | None:
    """The paths a ``config`` event changes (or would have, had it been applied).

    ``None`` for a body that is not a config event at all (a poison event).

    >>> from datetime import datetime, timezone
    >>> body = (b'{"ops": [{"op": "set", "path": "a/b", "value": 1},'
    ...         b' {"op": "merge", "path": "m", "value": {"x": {"y": 2}}}]}')
    >>> config_paths(Event("0", 0, "0", datetime.now(timezone.utc), None, {}, body))
    (('a', 'b'), ('m', 'x', 'y'))
    """
    # Imported here: configops builds the config reducer from core.reducer, as this module does.
    from statepump.core.configops import UndecodableBody, decode_body, parse_path

    try:
        ops = decode_body(event.body)
    except UndecodableBody:
        return None
    except ValueError:  # an invalid 'ops' list: rejected, it changed nothing
        return ()
    paths: list[Path] = []
    for op in ops:
        if not isinstance(op, Mapping) or "path" not in op:
            continue
        try:
            path = parse_path(op["path"])
        except ValueError:
            continue
        if op.get("op") == "merge" and isinstance(op.get("value"), dict) and op["value"]:
            paths.extend(path + leaf for leaf in _leaves(op["value"]))
        else:
            paths.append(path)
    return tuple(paths)


def _leaves(value: Mapping[str, Any]) -> Iterable[Path]:
    for key, child in value.items():
        if isinstance(child, dict) and child:
            yield from ((key, *rest) for rest in _leaves(child))
        else:
            yield (key,)


def event_paths(reducer: Reducer[Any], event: Event) -> tuple[Path, ...] | None:
    """The paths ``event`` changes under ``reducer``, or ``None`` when the reducer cannot say.

    >>> from datetime import datetime, timezone
    >>> from statepump.core.configops import config
    >>> event_paths(config, Event("0", 0, "0", datetime.now(timezone.utc), None, {}, b'{"op": "delete", "path": "k"}'))
    (('k',),)
    """
    if reducer.paths is not None:
        found = reducer.paths(event)
        return None if found is None else tuple(tuple(p) for p in found)
    if reducer.name == "config":
        return config_paths(event)
    return None


def touches(changed: Iterable[Path], prefix: Sequence[str]) -> bool:
    """Whether a change at one of ``changed`` touches ``prefix``: below it, at it, or above it.

    A change above ``prefix`` (``set markup`` for ``markup/tshirt``) replaces it.

    >>> touches([("markup", "tshirt")], ("markup",)), touches([("markup",)], ("markup", "tshirt"))
    (True, True)
    >>> touches([("markup", "hat")], ("markup", "tshirt"))
    False
    """
    want = tuple(str(s) for s in prefix)
    for path in changed:
        have = tuple(str(s) for s in path)
        n = min(len(have), len(want))
        if have[:n] == want[:n]:
            return True
    return False


# ---------------------------------------------------------------- diffs


def diff(old: Any, new: Any, prefix: Path = ()) -> list[Change]:
    """The changes that turn ``old`` into ``new`` (both the values at ``prefix``; ``MISSING`` for none)."""
    out: list[Change] = []
    _diff(old, new, prefix, out)
    return ordered(out)


def ordered(changes: list[Change]) -> list[Change]:
    """``changes`` in the order of their paths as text (map order is the hash's, not a reader's)."""
    return sorted(changes, key=lambda c: tuple(map(str, c.path)))


def _diff(old: Any, new: Any, path: Path, out: list[Change]) -> None:
    if old is new:
        return
    if old is MISSING:
        out.append(Change("added", path, None, new))
    elif new is MISSING:
        out.append(Change("removed", path, old, None))
    elif isinstance(old, PMap) and isinstance(new, PMap):
        # Only the buckets the two maps do not share can hold a difference (pyrsistent_internals says why).
        pairs = differing_pairs(old, new)
        olds, news = (old.items(), new.items()) if pairs is None else pairs
        for key, value in olds:
            if key not in new:
                out.append(Change("removed", (*path, key), value, None))
        get = old.get
        for key, value in news:
            before = get(key, MISSING)
            if before is not value:
                _diff(before, value, (*path, key), out)
    elif old != new or type(old) is not type(new):  # 1 and True are equal, and still a change
        out.append(Change("changed", path, old, new))


def diff_paths(old: Any, new: Any, paths: Iterable[Path]) -> list[Change]:
    """:func:`diff` of two states, looking only below ``paths`` (which must cover every change)."""
    out: list[Change] = []
    for path in minimal(paths):
        o, n, at = old, new, cast(Path, ())
        for seg in path:
            if not (isinstance(o, PMap) and isinstance(n, PMap)):
                break  # added, removed, or a leaf (a vector too) compared whole: as diff() reports it
            o, n, at = o.get(seg, MISSING), n.get(seg, MISSING), (*at, seg)
        _diff(o, n, at, out)
    return ordered(_unique(out))


def minimal(paths: Iterable[Path]) -> list[Path]:
    """``paths`` without those below another one of them, shortest first.

    >>> minimal([("a", "b"), ("a",), ("c",), ("a", "x")])
    [('a',), ('c',)]
    """
    kept: list[Path] = []
    seen: set[Path] = set()
    for path in sorted(set(paths), key=lambda p: (len(p), tuple(map(str, p)))):  # not the hash's order
        if not any(path[:n] in seen for n in range(len(path) + 1)):
            kept.append(path)
            seen.add(path)
    return kept


def _unique(changes: list[Change]) -> list[Change]:
    # Two touched paths cut short at the same leaf give the same change twice.
    seen: set[tuple[str, ...]] = set()
    out = []
    for change in changes:
        key = tuple(map(repr, change.path))
        if key not in seen:
            seen.add(key)
            out.append(change)
    return out


def within(changes: Iterable[Change], prefix: Sequence[str]) -> list[Change]:
    """The changes at, below or above ``prefix`` (compared as text, as the API's paths are)."""
    return [c for c in changes if touches([c.path], prefix)]


def apply_diff(old: Any, changes: Iterable[Change]) -> Any:
    """``old`` with ``changes`` applied: ``apply_diff(old, diff(old, new)) == new``."""
    state = old
    for change in changes:
        if not change.path:
            state = change.new if change.kind != "removed" else MISSING
            continue
        if change.kind == "removed":
            state = _delete(state, change.path)
        else:
            state = _set(state, change.path, change.new)
    return state


def _set(node: Any, path: Path, value: Any) -> Any:
    head, rest = path[0], path[1:]
    base = node if isinstance(node, PMap) else pmap()
    return base.set(head, _set(base.get(head, MISSING), rest, value) if rest else value)


def _delete(node: Any, path: Path) -> Any:
    if not isinstance(node, PMap) or path[0] not in node:
        return node
    head, rest = path[0], path[1:]
    return node.remove(head) if not rest else node.set(head, _delete(node[head], rest))
