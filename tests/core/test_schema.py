"""--schema: an event that would make the state invalid is rejected, checked only on the paths it changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import freeze, pmap, thaw

from statepump.core.configops import config_reducer
from statepump.core.errors import ConfigError, Rejected
from statepump.core.events import Version
from statepump.core.fold import Folder, fold
from statepump.core.schema import Schema, SchemaViolation
from tests.core.strategies import T0, event, events_from, json_values

#: Twenty rules, the size of figure 2's schema: types, bounds, patterns, $ref, required, propertyNames.
DOCUMENT: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "definitions": {"share": {"type": "number", "minimum": 0, "maximum": 1}},
    "type": "object",
    "propertyNames": {"maxLength": 12},
    "required": ["c"],
    "properties": {
        "a": {"type": "object", "properties": {"b": {"type": "integer"}}},
        "c": {"type": ["object", "string", "null"], "additionalProperties": {"type": "object", "maxProperties": 2}},
        "markup": {"type": "object", "additionalProperties": {"$ref": "#/definitions/share"}},
        "x": {"type": "array", "maxItems": 2},
    },
    "patternProperties": {"^n_": {"type": "integer", "minimum": 0}},
    "additionalProperties": {"not": {"type": "null"}},
}
SCHEMA = Schema.from_document(DOCUMENT)
CHECKED = config_reducer(SCHEMA)


def _whole_state_valid(state: Any) -> bool:
    """The reference: the whole state against the whole schema (what the fold must never need to do)."""
    return bool(jsonschema_rs.validator_for(DOCUMENT).is_valid(thaw(state)))


def _reason(state: Any, body: dict[str, Any]) -> str | None:
    try:
        CHECKED(state, event(1, json.dumps(body).encode()))
    except Rejected as exc:
        return str(exc)
    return None


START = freeze({"c": "here", "markup": {"tshirt": 0.5}, "a": {"b": 1}, "x": [1, 2]})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"op": "set", "path": "markup/tshirt", "value": 2},
            "schema: markup/tshirt: 2 is greater than the maximum of 1 (maximum)",
        ),
        (
            {"op": "set", "path": "markup", "value": {"hoodie": -1}},
            "schema: markup/hoodie: -1 is less than the minimum of 0 (minimum)",
        ),
        ({"op": "set", "path": "a/b", "value": "one"}, 'schema: a/b: "one" is not of type "integer" (type)'),
        ({"op": "delete", "path": "c"}, "schema: c: may not be removed (required)"),
        ({"op": "set", "path": "n_users", "value": -3}, "schema: n_users: -3 is less than the minimum of 0 (minimum)"),
        ({"op": "set", "path": "other", "value": None}, 'schema: other: {"type":"null"} is not allowed for null (not)'),
        (
            {"op": "set", "path": "a_very_long_key", "value": 1},
            'schema: a_very_long_key: "a_very_long_key" is longer than 12 characters (maxLength)',
        ),
        (
            {"op": "set", "path": "x", "value": [1, 2, 3]},
            "schema: x: [1,2,3] has more than 2 items (maxItems)",
        ),
        ({"op": "set", "path": "x/2", "value": 1}, "schema: x: [1,2,1] has more than 2 items (maxItems)"),
        (
            {"op": "merge", "path": "markup", "value": {"cap": 7}},
            "schema: markup/cap: 7 is greater than the maximum of 1 (maximum)",
        ),
        (
            {"op": "set", "path": "c", "value": {"k": {"p": 1, "q": 2, "r": 3}}},
            'schema: c/k: {"p":1,"q":2,"r":3} has more than 2 properties (maxProperties)',
        ),
        (
            {"ops": [{"op": "set", "path": "a/b", "value": 2}, {"op": "set", "path": "markup/x", "value": 9}]},
            "markup/x",
        ),
    ],
)
def test_a_violation_is_rejected_naming_path_and_rule(body: dict[str, Any], reason: str) -> None:
    found = _reason(START, body)
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "body",
    [
        {"op": "set", "path": "markup/tshirt", "value": 1},
        {"op": "set", "path": "markup/hoodie", "value": 0},
        {"op": "delete", "path": "markup/tshirt"},
        {"op": "set", "path": "n_users", "value": 3},
        {"op": "set", "path": "x", "value": [2]},
        {"op": "merge", "path": "", "value": {"a": {"b": 5}}},
        # Invalid in between, valid at the end: only the state after the event counts.
        {"ops": [{"op": "set", "path": "a/b", "value": "x"}, {"op": "set", "path": "a/b", "value": 3}]},
    ],
)
def test_a_valid_change_is_applied(body: dict[str, Any]) -> None:
    assert _reason(START, body) is None


def test_a_rejected_event_leaves_the_state_and_the_fold_goes_on() -> None:
    start = Version(START, 0, T0, "0")
    bodies = [
        b'{"op": "set", "path": "markup/tshirt", "value": 0.7}',
        b'{"op": "set", "path": "markup/tshirt", "value": 7}',
        b'{"op": "set", "path": "n_x", "value": 1}',
    ]
    result = fold(start, events_from(bodies, 1), CHECKED, applied_at=T0)
    assert result.version.sequence == 3 and result.applied == 2
    assert [(r.event.sequence, r.reason) for r in result.rejected] == [
        (2, "schema: markup/tshirt: 7 is greater than the maximum of 1 (maximum)")
    ]
    assert thaw(result.version.state) == {**thaw(START), "markup": {"tshirt": 0.7}, "n_x": 1}


paths = st.sampled_from(["a", "a/b", "c", "c/k", "c/k/z", "markup", "markup/tshirt", "n_1", "x", "x/0", "zz", "other"])
values = st.one_of(json_values, st.floats(-1, 2, allow_nan=False), st.integers(-2, 3))


@st.composite
def operation(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["set", "set", "delete", "merge"]))
    op: dict[str, Any] = {"op": kind, "path": draw(paths)}
    if kind == "set":
        op["value"] = draw(values)
    elif kind == "merge":
        op["value"] = draw(st.dictionaries(st.sampled_from(["b", "k", "tshirt", "q"]), values, max_size=2))
    return op


@given(st.lists(st.lists(operation(), min_size=1, max_size=3), min_size=1, max_size=12))
@settings(max_examples=300, deadline=None)
def test_checking_the_changed_paths_is_checking_the_whole_state(events: list[list[dict[str, Any]]]) -> None:
    """From a valid state, an event is applied exactly when the whole state after it is still valid."""
    version = Version(freeze({"c": None}), 0, T0, "0")
    folder = Folder(version, CHECKED, policy="skip")
    for i, ops in enumerate(events, 1):
        before = folder.freeze(T0).state
        fed = folder.feed([event(i, json.dumps({"ops": ops}).encode())])
        after = folder.freeze(T0).state
        if fed.applied:
            assert _whole_state_valid(after), (ops, thaw(after))
        elif fed.rejected and fed.rejected[0].reason.startswith("schema:"):
            # Rejected by the schema: the same event without it would have left an invalid state.
            unchecked = config_reducer()(before, event(i, json.dumps({"ops": ops}).encode()))
            assert not _whole_state_valid(unchecked), (ops, fed.rejected[0].reason)
            assert after is before


@given(st.lists(st.lists(operation(), min_size=1, max_size=2), min_size=1, max_size=10))
@settings(max_examples=150, deadline=None)
def test_batch_and_event_by_event_agree_on_state_and_rejections(events: list[list[dict[str, Any]]]) -> None:
    bodies = [json.dumps(o[0] if len(o) == 1 else {"ops": o}).encode() for o in events]
    start = Version(freeze({"c": "s"}), -1, None, "0")
    batched = fold(start, events_from(bodies), CHECKED, applied_at=T0, policy="skip")
    state, reasons = start.state, []
    for e in events_from(bodies):
        try:
            state = CHECKED.apply(state, e)
        except Rejected as exc:
            reasons.append((e.sequence, str(exc)))
    assert batched.version.state == state
    assert [(r.event.sequence, r.reason) for r in batched.rejected] == reasons


def test_a_large_state_is_not_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check costs the changed path, whatever the state holds (1,000,000 keys would take as long)."""
    big = pmap({**{f"n_{i}": i for i in range(200_000)}, "c": "x"})
    import statepump.core.schema as module

    seen: list[int] = []

    def counting(value: Any) -> Any:
        seen.append(len(value))
        return thaw(value)

    monkeypatch.setattr(module, "thaw", counting)
    CHECKED(big, event(1, b'{"op": "set", "path": "n_5", "value": 7}'))  # the hot path: the decoded value
    CHECKED(big, event(2, b'{"ops": [{"op": "set", "path": "a", "value": {"b": 8}}]}'))  # the general one
    with pytest.raises(SchemaViolation):
        CHECKED(big, event(3, b'{"ops": [{"op": "set", "path": "n_7", "value": -1}]}'))
    assert seen == [1]  # only the one small container the general path checked, never the state


def test_identity_is_the_hash_of_the_canonical_json() -> None:
    same = Schema.from_document(json.loads(json.dumps(DOCUMENT, indent=4, sort_keys=False)))
    assert same.identity == SCHEMA.identity and SCHEMA.identity.startswith("sha256:") and len(SCHEMA.identity) == 71
    assert Schema.from_document({**DOCUMENT, "required": []}).identity != SCHEMA.identity
    assert CHECKED.schema == SCHEMA.identity and config_reducer().schema is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a schema must be a JSON object, not list"),
        ('{"properties": {"a": {"type": "nope"}}}', "not a valid JSON Schema at properties/a/type"),
        ('{"properties": {"a": {"pattern": "("}}}', 'not a usable JSON Schema: "(" is not a "regex"'),
        ('{"properties": {"a": {"$ref": "https://example.com/s.json"}}}', "is not a local reference"),
        ('{"properties": {"a": {"$ref": "#/definitions/missing"}}}', "does not exist"),
        ('{"anyOf": [{"required": ["a"]}]}', "the root uses anyOf"),
        ('{"type": "array"}', "the root must allow an object"),
        ('{"$schema": "https://example.com/my-own-draft"}', "not a valid JSON Schema"),
    ],
)
def test_a_bad_schema_file_is_one_line_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "schema.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        Schema.load(path)
    message = str(caught.value)
    assert message.startswith(f"--schema {path}: ") and problem in message and "\n" not in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--schema .*nope.json: cannot read it"):
        Schema.load(tmp_path / "nope.json")


def test_violation_is_a_rejection_not_a_poison() -> None:
    assert issubclass(SchemaViolation, Rejected)
