"""An optional JSON Schema for the ``config`` state, checked per event on the paths it changes.

``--schema FILE`` (``run``, the snapshotter, the writer commands) makes the
``config`` reducer reject an event that would leave the state invalid: a
deterministic no-op, like any other rejection, with a reason naming the path
and the rule (``schema: markup/tshirt: must be smaller than or equal to 1
(maximum)``).

Which library. The validator is ``fastjsonschema``: it compiles a schema to
Python code once, and a compiled check costs about 0.4 µs for a number and
1.4 µs for a small object, where ``jsonschema``'s ``is_valid`` costs 5 µs and
29 µs (measured here, Python 3.11, under load; fastjsonschema 2.22,
jsonschema 4.26). The fold checks every event, so that factor is the
difference between a schema being free and costing a third of the fold. What
it costs: drafts 4, 6 and 7 only (a 2019-09 or 2020-12 ``$schema`` is refused
at load), and error messages of its own wording; both are deterministic for a
given fastjsonschema version, which pyproject pins to a tested range (every
node of a fleet should run the same one, as it runs the same statepump).

Theory of operation. The state was valid before the event, and an operation
at ``P`` changes only the subtree at ``P`` (and creates the maps above it that
were missing). So the event leaves the state valid when, for each path it
changes:

* the new value at ``P`` is valid against the subschema of ``P``, or, when
  the operation created maps above ``P``, the highest created map against its
  subschema (it is the event's own data, small);
* a removed key is not ``required`` by its parent, and a new key satisfies
  its parent's ``propertyNames``;
* no ancestor's schema constrains its members as a whole.

The subschema of a path is found by walking the schema from the root, one
segment at a time, through ``$ref`` (local ``#/...`` references only),
``properties``, ``patternProperties`` and ``additionalProperties`` (several
may apply to one key: all are checked). Where that walk meets a keyword that
constrains a container as a whole (``allOf``, ``anyOf``, ``oneOf``, ``not``,
``if``, ``minProperties``, ``maxProperties``, ``dependencies``, ...) or a
list (a change inside a list can shift its items), it stops, and the whole
value at that point is checked instead: correct, and as cheap as that value is
small. The root may not use such keywords (every event would check the whole
state); :meth:`Schema.load` refuses them. The empty state is not checked, so
``required`` means "may not be removed", not "must be there from the start".

Each walk step is cached per schema node and key (bounded), each subschema
is compiled once, and a value is thawed only where it is not plain JSON
already, so the check costs a few microseconds whatever the size of the state.

The schema's identity, ``sha256:`` and the SHA-256 of its canonical JSON
(sorted keys, no spaces), is recorded in every snapshot and shown in status:
a pump never starts from a snapshot folded under another schema (the outcomes
would differ), as it never starts from another reducer version's.

>>> s = Schema.from_document({"properties": {"markup": {"type": "object",
...     "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}}}})
>>> s.check_top("markup", {"tshirt": 0.5})
>>> s.check_top("markup", {"tshirt": 2})
Traceback (most recent call last):
...
statepump.core.schema.SchemaViolation: schema: markup/tshirt: must be smaller than or equal to 1 (maximum)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path as FilePath
from typing import Any, Final
from urllib.parse import quote, unquote

import fastjsonschema
from pyrsistent import PMap, PVector, thaw

from statepump.core.errors import ConfigError, Rejected

Path = tuple[str | int, ...]

#: Keywords that constrain an object or a list as a whole: the walk to a subschema stops at them.
WHOLE: Final = frozenset(
    {
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "minProperties",
        "maxProperties",
        "dependencies",
        "dependentRequired",
        "dependentSchemas",
        "unevaluatedProperties",
        "items",
        "additionalItems",
        "prefixItems",
        "contains",
        "minItems",
        "maxItems",
        "uniqueItems",
        "enum",
        "const",
    }
)
_NEWER_DRAFTS: Final = ("2019-09", "2020-12")
_ABSENT: Any = object()
_STOP: Final = "stop"


class SchemaViolation(Rejected, ValueError):
    """An event would make the state invalid against the schema: rejected; the message names path and rule."""


def _describe(path: Path) -> str:
    return "/".join(str(p) for p in path) or "/"


def _pointer(parent: str, *segments: str) -> str:
    # RFC 6901 escapes, then percent-encoding (fastjsonschema unquotes a reference's fragment).
    for seg in segments:
        parent += "/" + quote(seg.replace("~", "~0").replace("/", "~1"), safe="~")
    return parent


def _plain(value: object) -> object:
    """``value`` as plain JSON for the validator (which knows dict and list, not pyrsistent's types)."""
    return thaw(value) if isinstance(value, PMap | PVector) else value


class _Node:
    """One schema object reached by the walk: its JSON pointer, its content, its compiled check."""

    __slots__ = ("check", "content", "pointer", "required", "stops")

    def __init__(self, pointer: str, content: Mapping[str, Any], check: Callable[[object], object]) -> None:
        self.pointer = pointer
        self.content = content
        self.check = check
        required = content.get("required")
        self.required: frozenset[str] = frozenset(required) if isinstance(required, list) else frozenset()
        self.stops = bool(WHOLE.intersection(content)) or content.get("type") == "array"


class Schema:
    """A loaded, compiled schema; see the module's docstring for what it checks and how."""

    def __init__(self, document: Mapping[str, Any] | bool, *, name: str = "schema") -> None:
        self.name = name
        self.document = document
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        #: ``sha256:<hex>`` of the canonical JSON: what snapshots and status record.
        self.identity = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
        self._nodes: dict[str, _Node | bool] = {}
        self._steps: dict[tuple[tuple[str, ...], Any], tuple[str, ...] | str] = {}
        self._names: dict[tuple[str, Any], bool] = {}
        self._root = self._resolve("")

    # --- loading ----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: FilePath) -> Schema:
        """The schema in the JSON file ``path``; :class:`ConfigError` naming the file and the problem."""
        where = f"--schema {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read it: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where}: not UTF-8 text: {exc.reason}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON: {exc}") from None
        try:
            return cls.from_document(document, name=str(path))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    @classmethod
    def from_document(cls, document: object, *, name: str = "schema") -> Schema:
        """A schema from its decoded JSON; :class:`ConfigError` (without the file's name) when it is unusable."""
        if not isinstance(document, dict | bool):
            raise ConfigError(f"a schema must be a JSON object, not {type(document).__name__}")
        if isinstance(document, dict):
            draft = document.get("$schema")
            if isinstance(draft, str) and any(d in draft for d in _NEWER_DRAFTS):
                raise ConfigError(f"$schema {draft!r}: only drafts 4, 6 and 7 are supported (fastjsonschema)")
            _check_references(document, "#")
            root_type = document.get("type", "object")
            if root_type != "object" and not (isinstance(root_type, list) and "object" in root_type):
                raise ConfigError(f"the root must allow an object (the state is one), not type {root_type!r}")
            whole = sorted(WHOLE.intersection(document))
            if whole:
                raise ConfigError(
                    f"the root uses {', '.join(whole)}: every event would be checked against the whole state; "
                    "put such rules below a top-level key"
                )
        try:
            return cls(document, name=name)
        except ConfigError:
            raise
        except Exception as exc:  # fastjsonschema reports a bad definition in many ways (and re, for a pattern)
            raise ConfigError(f"not a usable JSON Schema: {type(exc).__name__}: {exc}") from None

    def _resolve(self, pointer: str) -> _Node | bool:
        """The node at ``pointer`` (``""`` is the root), its ``$ref`` chain followed, compiled once."""
        found = self._nodes.get(pointer)
        if found is not None:
            return found
        seen = {pointer}
        target, content = pointer, _at(self.document, pointer)
        while isinstance(content, dict) and isinstance(content.get("$ref"), str):
            target = content["$ref"][1:]  # a local reference (checked at load): "#/definitions/x"
            if target in seen:
                raise ConfigError(f"$ref cycle at #{target}")
            seen.add(target)
            content = _at(self.document, target)
        node: _Node | bool
        if isinstance(content, bool):
            node = content
        elif not isinstance(content, dict):
            raise ConfigError(f"#{target} is not a schema (a JSON object or a boolean)")
        elif not content:
            node = True  # {} allows anything
        else:
            node = _Node(target, content, self._compile(target))
        self._nodes[pointer] = node
        return node

    def _compile(self, pointer: str) -> Callable[[object], object]:
        if not pointer:
            definition: Any = self.document
        else:
            # The whole document with a $ref to the node: the node's own references resolve in the
            # document, and drafts up to 7 ignore a $ref's sibling keywords.
            definition = {**(self.document if isinstance(self.document, dict) else {}), "$ref": "#" + pointer}
        check: Callable[[object], object] = fastjsonschema.compile(definition, use_default=False)
        return check

    # --- the walk ---------------------------------------------------------------------------

    def _step(self, pointers: tuple[str, ...], key: object, at: Path) -> tuple[str, ...]:
        """The nodes that apply to member ``key`` of a map checked by ``pointers``; raises for a forbidden key."""
        cache_key = (pointers, key)
        found = self._steps.get(cache_key)
        if found is None:
            found = self._steps[cache_key] = self._child(pointers, key)
            if len(self._steps) > 1 << 16:  # bounded: a million keys must not mean a million entries
                self._steps.clear()
        if isinstance(found, str):
            raise SchemaViolation(f"schema: {_describe((*at, key))}: {found}")  # type: ignore[arg-type]
        return found

    def _child(self, pointers: tuple[str, ...], key: object) -> tuple[str, ...] | str:
        child: list[str] = []
        for pointer in pointers:
            node = self._resolve(pointer)
            if not isinstance(node, _Node):
                continue
            content, base = node.content, node.pointer
            matched = False
            properties = content.get("properties")
            if isinstance(properties, dict) and key in properties:
                child.append(_pointer(base, "properties", str(key)))
                matched = True
            patterns = content.get("patternProperties")
            if isinstance(patterns, dict) and isinstance(key, str):
                for pattern in patterns:
                    if re.search(pattern, key):
                        child.append(_pointer(base, "patternProperties", pattern))
                        matched = True
            if not matched and "additionalProperties" in content:
                if content["additionalProperties"] is False:
                    return "not allowed (additionalProperties)"
                child.append(_pointer(base, "additionalProperties"))
        for pointer in child:
            if self._resolve(pointer) is False:
                return "not allowed (false schema)"
        return tuple(p for p in child if self._resolve(p) is not True)

    def _key_ok(self, pointers: tuple[str, ...], key: object, at: Path) -> None:
        for pointer in pointers:
            node = self._resolve(pointer)
            if isinstance(node, _Node) and "propertyNames" in node.content:
                ok = self._names.get((pointer, key))
                if ok is None:
                    names = self._resolve(_pointer(node.pointer, "propertyNames"))
                    ok = names is True or (isinstance(names, _Node) and _passes(names.check, key))
                    if len(self._names) > 1 << 16:
                        self._names.clear()
                    self._names[(pointer, key)] = ok
                if not ok:
                    raise SchemaViolation(f"schema: {_describe(at)}: key {key!r} is not allowed (propertyNames)")

    def _validate(self, pointers: tuple[str, ...], value: object, at: Path) -> None:
        for pointer in pointers:
            node = self._resolve(pointer)
            if node is True:
                continue
            if node is False:
                raise SchemaViolation(f"schema: {_describe(at)}: not allowed (false schema)")
            assert isinstance(node, _Node)
            try:
                node.check(_plain(value))
            except fastjsonschema.JsonSchemaValueException as exc:
                raise SchemaViolation(_reason(exc, at)) from None

    def _root_pointers(self) -> tuple[str, ...]:
        return () if self._root is True else ("",)

    # --- what the reducer and the writers ask ---------------------------------------------------

    def check_top(self, key: object, value: object) -> None:
        """A ``set`` of the top-level ``key`` to ``value`` (plain JSON or frozen): the fold's hot path."""
        root = self._root_pointers()
        if not root:
            return
        if self._root is False:
            raise SchemaViolation("schema: /: not allowed (false schema)")
        self._key_ok(root, key, ())
        child = self._step(root, key, ())
        if child:
            self._validate(child, value, (key,))  # type: ignore[arg-type]

    def check_delete_top(self, key: object) -> None:
        """A ``delete`` of the top-level ``key``."""
        if isinstance(self._root, _Node) and key in self._root.required:
            raise SchemaViolation(f"schema: {key}: may not be removed (required)")

    def check_value(self, path: Path, value: object) -> None:
        """A ``set`` of ``path`` to ``value`` as far as it can be judged without the state (writers offline)."""
        pointers = self._root_pointers()
        at: Path = ()
        for seg in path:
            if not pointers or type(seg) is int or any(_stops(self._resolve(p)) for p in pointers):
                return  # the check needs the value of a container (or a list's): only a sidecar has it
            self._key_ok(pointers, seg, at)
            pointers = self._step(pointers, seg, at)
            at = (*at, seg)
        if pointers:
            self._validate(pointers, value, at)

    def check_event(self, before: object, after: object, paths: Iterable[Path]) -> None:
        """After an event: the state ``after`` is valid on every path it changed (``before`` was valid)."""
        root = self._root_pointers()
        if not root:
            return
        if self._root is False:
            raise SchemaViolation("schema: /: not allowed (false schema)")
        for path in dict.fromkeys(paths):
            pointers, old, new = root, before, after
            at: Path = ()
            for i, seg in enumerate(path):
                if not pointers:
                    break  # nothing constrains this subtree
                if not isinstance(new, PMap) or any(_stops(self._resolve(p)) for p in pointers):
                    self._validate(pointers, new, at)  # a list, or a rule on the container as a whole
                    break
                child_new = new.get(seg, _ABSENT)
                child_old = old.get(seg, _ABSENT) if isinstance(old, PMap) else _ABSENT
                if child_new is _ABSENT:
                    for p in pointers:
                        node = self._resolve(p)
                        if isinstance(node, _Node) and seg in node.required:
                            raise SchemaViolation(f"schema: {_describe((*at, seg))}: may not be removed (required)")
                    break
                if child_old is _ABSENT:
                    self._key_ok(pointers, seg, at)
                child = self._step(pointers, seg, at)
                at = (*at, seg)
                if child_old is _ABSENT or i == len(path) - 1:
                    if child:
                        self._validate(child, child_new, at)
                    break
                pointers, old, new = child, child_old, child_new


def _stops(node: _Node | bool) -> bool:
    return isinstance(node, _Node) and node.stops


def _passes(check: Callable[[object], object], value: object) -> bool:
    try:
        check(value)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def _reason(exc: fastjsonschema.JsonSchemaValueException, at: Path) -> str:
    inner = [p for p in (exc.path or [])[1:]]
    where = _describe((*at, *inner))
    message = exc.message
    if exc.name and message.startswith(exc.name):
        message = message[len(exc.name) :].strip()
    return f"schema: {where}: {message} ({exc.rule})" if exc.rule else f"schema: {where}: {message}"


def _at(document: object, pointer: str) -> object:
    """The value at a JSON pointer (without its ``#``) in ``document``; :class:`ConfigError` if there is none."""
    node = document
    if not pointer:
        return node
    for raw in pointer.split("/")[1:]:
        seg = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and seg in node:
            node = node[seg]
        elif isinstance(node, list) and seg.isdigit() and int(seg) < len(node):
            node = node[int(seg)]
        else:
            raise ConfigError(f"$ref #{pointer} points at nothing")
    return node


def _check_references(node: object, where: str) -> None:
    """Only local references: a remote one would be fetched by the validator, at start and on every node."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref is not None and (not isinstance(ref, str) or not ref.startswith("#")):
            raise ConfigError(f"{where}: $ref {ref!r} is not a local reference ('#/...'); remote ones are not fetched")
        if isinstance(ref, str) and ref != "#" and not ref.startswith("#/"):
            raise ConfigError(f"{where}: $ref {ref!r} is not a JSON pointer ('#/...')")
        for key, value in node.items():
            if key not in ("enum", "const", "default", "examples"):
                _check_references(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_references(value, f"{where}/{i}")
