"""An optional JSON Schema for the ``config`` state, checked per event on the paths it changes.

``--schema FILE`` (``run``, the snapshotter, the writer commands) makes the
``config`` reducer reject an event that would leave the state invalid: a
deterministic no-op, like any other rejection, with a reason naming the path
and the rule (``schema: markup/tshirt: 2 is greater than the maximum of 1
(maximum)``).

Which library. The fold checks every event, so the validator's cost per
value decides. Measured here (Python 3.11, a loaded 2-core machine, so
roughly) on bench figure 2s's subschema and the dataset's values, average per
value (scalars; small objects): ``jsonschema`` 4.26, the pure-Python
reference implementation, 20 µs (10-12; 62); ``fastjsonschema`` 2.22, which
compiles a schema to Python code, 2.4 µs (0.7-2; 7); ``jsonschema_rs`` 0.60,
the Python bindings of the Rust ``jsonschema`` crate, 0.5 µs (0.3-0.5; 0.6).
So ``jsonschema_rs``: five times fastjsonschema and forty times jsonschema,
every draft (4 to 2020-12), meta-schemas that refuse a bad schema precisely,
and ``$ref`` resolution through its own registry, offline. Its messages and
the order it finds errors in are its own: a failed check reports the
smallest error (by instance path, then message), so every node words a
rejection alike, and pyproject pins it to the tested minor release (every
node of a fleet runs the same one, as it runs the same statepump).

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
statepump.core.schema.SchemaViolation: schema: markup/tshirt: 2 is greater than the maximum of 1 (maximum)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path as FilePath
from typing import Any, Final
from urllib.parse import quote, unquote

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
        "$dynamicRef",
        "$recursiveRef",
    }
)
#: Keywords that do not validate: a node with a ``$ref`` and only these is the node it refers to.
_ANNOTATIONS: Final = frozenset(
    {"$ref", "$schema", "$id", "$comment", "$anchor", "title", "description", "default", "examples"}
    | {"definitions", "$defs", "deprecated", "readOnly", "writeOnly"}
)
#: The document's name in the validator's registry: subschemas are ``{"$ref": URI#pointer}``.
_URI: Final = "urn:statepump:schema"
_ABSENT: Any = object()
_STOP: Final = "stop"


class SchemaViolation(Rejected, ValueError):
    """An event would make the state invalid against the schema: rejected; the message names path and rule."""


def _describe(path: Path) -> str:
    return "/".join(str(p) for p in path) or "/"


def _pointer(parent: str, *segments: str) -> str:
    # RFC 6901 escapes, then percent-encoding (a URI fragment; the validator decodes it).
    for seg in segments:
        parent += "/" + quote(seg.replace("~", "~0").replace("/", "~1"), safe="~")
    return parent


def _plain(value: object) -> object:
    """``value`` as plain JSON for the validator (which knows dict and list, not pyrsistent's types).

    A map's non-string key (an integer path segment made it) becomes its text, as in the state's JSON.

    >>> from pyrsistent import freeze
    >>> _plain(freeze({"a": [1, {0: True}]}))
    {'a': [1, {'0': True}]}
    """
    if isinstance(value, PMap):
        plain = thaw(value)
        return _text_keys(plain) if _has_other_keys(plain) else plain
    if isinstance(value, PVector):
        plain_list = thaw(value)
        return _text_keys(plain_list) if _has_other_keys(plain_list) else plain_list
    return value


def _has_other_keys(value: object) -> bool:
    if isinstance(value, dict):
        return any(type(k) is not str or _has_other_keys(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_other_keys(v) for v in value)
    return False


def _text_keys(value: object) -> object:
    if isinstance(value, dict):
        return {k if type(k) is str else str(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text_keys(v) for v in value]
    return value


class _Node:
    """One schema object reached by the walk: its JSON pointer, its content, its compiled check."""

    __slots__ = (
        "additional",
        "content",
        "names",
        "patterns",
        "pointer",
        "properties",
        "required",
        "stops",
        "validator",
    )

    def __init__(self, pointer: str, content: Mapping[str, Any], validator: Any) -> None:
        self.pointer = pointer
        self.content = content
        self.validator = validator
        # The walk's step to a member, prepared once: the pointers a key's subschemas are at.
        properties = content.get("properties")
        self.properties: dict[str, str] = (
            {k: _pointer(pointer, "properties", k) for k in properties} if isinstance(properties, dict) else {}
        )
        patterns = content.get("patternProperties")
        self.patterns: list[tuple[re.Pattern[str], str]] = (
            [(re.compile(p), _pointer(pointer, "patternProperties", p)) for p in patterns]
            if isinstance(patterns, dict)
            else []
        )
        self.names = _pointer(pointer, "propertyNames") if "propertyNames" in content else None
        additional = content.get("additionalProperties", True)
        self.additional: str | bool = (
            _pointer(pointer, "additionalProperties") if isinstance(additional, dict) else bool(additional)
        )
        required = content.get("required")
        self.required: frozenset[str] = frozenset(required) if isinstance(required, list) else frozenset()
        # A $ref beside validating keywords (applied together from draft 2019-09 on): checked whole.
        with_ref = "$ref" in content and not _ANNOTATIONS.issuperset(content)
        self.stops = bool(WHOLE.intersection(content)) or content.get("type") == "array" or with_ref


class Schema:
    """A loaded, compiled schema (``Schema.load(path)``); see the module's docstring for what it checks.

    Embedded, the ``config`` reducer checks it through :func:`statepump.config_reducer`:

    >>> from statepump import config_reducer
    >>> schema = Schema.from_document({"properties": {"rps": {"type": "integer", "minimum": 1}}})
    >>> checked = config_reducer(schema)  # Pump(source, reducer=checked): an event breaking it is rejected
    >>> checked.schema == schema.identity
    True
    """

    def __init__(self, document: Mapping[str, Any] | bool, *, name: str = "schema") -> None:
        self.name = name
        self.document = document
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        #: ``sha256:<hex>`` of the canonical JSON: what snapshots and status record.
        self.identity = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
        self._nodes: dict[str, _Node | bool] = {}
        self._steps: dict[tuple[tuple[str, ...], Any], tuple[str, ...] | str] = {}
        self._registry = _rs().Registry([(_URI, document)]) if isinstance(document, dict) else None
        self._root = self._resolve("")
        #: The root without ``required``, for one member at a time (:meth:`check_top`); None: root true/false.
        self._member: Any = None
        if isinstance(self._root, _Node) and isinstance(document, dict):
            if self._root.pointer:  # the root is a $ref: the node it names, with the document's definitions
                shared = {k: document[k] for k in ("$schema", "definitions", "$defs") if k in document}
                alone = {**shared, **self._root.content}
            else:
                alone = dict(document)
            alone.pop("required", None)
            self._member = _rs().validator_for(alone, retriever=_no_remote)

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
            try:
                _rs().meta.validate(document)
            except _rs().ValidationError as exc:
                where = "/".join(map(str, exc.instance_path)) or "the root"
                raise ConfigError(f"not a valid JSON Schema at {where}: {_first_line(exc)}") from None
            except (ValueError, _rs().ReferencingError) as exc:
                raise ConfigError(f"not a valid JSON Schema: {_first_line(exc)}") from None
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
        except Exception as exc:  # the validator reports a bad definition in several ways (and re, for a pattern)
            raise ConfigError(f"not a usable JSON Schema: {_first_line(exc)}") from None

    def _resolve(self, pointer: str) -> _Node | bool:
        """The node at ``pointer`` (``""`` is the root), its ``$ref`` chain followed, compiled once."""
        found = self._nodes.get(pointer)
        if found is not None:
            return found
        seen = {pointer}
        target, content = pointer, _at(self.document, pointer)
        while isinstance(content, dict) and isinstance(content.get("$ref"), str) and _ANNOTATIONS.issuperset(content):
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

    def _compile(self, pointer: str) -> Any:
        # A reference to the node in the registered document: its own references resolve there,
        # under the document's draft.
        definition: dict[str, Any] = {"$ref": f"{_URI}#{pointer}"}
        if isinstance(self.document, dict) and isinstance(self.document.get("$schema"), str):
            definition["$schema"] = self.document["$schema"]
        return _rs().validator_for(definition, registry=self._registry, retriever=_no_remote)

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
            matched = False
            if type(key) is str:
                found = node.properties.get(key)
                if found is not None:
                    child.append(found)
                    matched = True
                for pattern, at in node.patterns:
                    if pattern.search(key):
                        child.append(at)
                        matched = True
            if not matched:
                if node.additional is False:
                    return "not allowed (additionalProperties)"
                if isinstance(node.additional, str):
                    child.append(node.additional)
        for pointer in child:
            if self._resolve(pointer) is False:
                return "not allowed (false schema)"
        return tuple(p for p in child if self._resolve(p) is not True)

    def _key_ok(self, pointers: tuple[str, ...], key: object, at: Path) -> None:
        for pointer in pointers:
            node = self._resolve(pointer)
            if isinstance(node, _Node) and node.names is not None:
                names = self._resolve(node.names)
                text = key if type(key) is str else str(key)  # a key is text in the state's JSON
                if names is False or (isinstance(names, _Node) and not names.validator.is_valid(text)):
                    raise SchemaViolation(f"schema: {_describe(at)}: key {key!r} is not allowed (propertyNames)")

    def _validate(self, pointers: tuple[str, ...], value: object, at: Path) -> None:
        for pointer in pointers:
            node = self._resolve(pointer)
            if node is True:
                continue
            if node is False:
                raise SchemaViolation(f"schema: {_describe(at)}: not allowed (false schema)")
            assert isinstance(node, _Node)
            plain = _plain(value)
            if not node.validator.is_valid(plain):
                raise SchemaViolation(_reason(node.validator, plain, at))

    def _root_pointers(self) -> tuple[str, ...]:
        return () if self._root is True else ("",)

    # --- what the reducer and the writers ask ---------------------------------------------------

    def check_top(self, key: object, value: object) -> None:
        """A ``set`` of the top-level ``key`` to ``value`` (plain JSON, as decoded): the fold's hot path.

        The root's step and the value's check in one call of the validator: ``{key: value}``
        against the root without its ``required`` (the only rule on the root as a whole it may
        have, and one a set cannot break), so its ``properties``, ``patternProperties``,
        ``additionalProperties`` and ``propertyNames`` pick the key's subschemas.
        """
        member = self._member
        if member is None:
            if self._root is False:
                raise SchemaViolation("schema: /: not allowed (false schema)")
            return
        instance = {key if type(key) is str else str(key): value}
        if not member.is_valid(instance):
            raise SchemaViolation(_reason(member, instance, (), member=(key,)))  # type: ignore[arg-type]

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
            if len(path) == 1 and isinstance(after, PMap):  # a top-level key: as the hot path checks it
                value = after.get(path[0], _ABSENT)
                if value is _ABSENT:
                    self.check_delete_top(path[0])
                else:
                    self.check_top(path[0], _plain(value))
                continue
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


def _rs() -> Any:
    """The validator's module, imported on first use: a command without --schema does not pay for it."""
    import jsonschema_rs

    return jsonschema_rs


def _no_remote(uri: str) -> Any:
    raise ValueError(f"$ref {uri}: remote references are not fetched")


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def _reason(validator: Any, value: object, at: Path, *, member: Path = ()) -> str:
    """The smallest of the value's errors (by instance path, then message): the same words on every node.

    ``member``: where an error about the instance itself is (the key, for :meth:`Schema.check_top`).
    """
    errors = sorted(validator.iter_errors(value), key=lambda e: ([str(p) for p in e.instance_path], _first_line(e)))
    if not errors:  # is_valid and iter_errors disagree: cannot happen, but never a crash in the fold
        return f"schema: {_describe(at)}: not valid"
    error = errors[0]
    where = _describe((*at, *error.instance_path) if error.instance_path else (*at, *member))
    rule = next((p for p in reversed(list(error.schema_path)) if isinstance(p, str)), "")
    return f"schema: {where}: {_first_line(error)} ({rule})" if rule else f"schema: {where}: {_first_line(error)}"


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
