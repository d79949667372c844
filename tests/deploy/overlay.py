"""A small offline rendering of a kustomize overlay, for the deploy tests (kubectl is not a dependency).

It does what the overlays in deploy/ use and refuses anything else, so a test
never passes on a feature it silently skipped. Compared once by hand, it
renders deploy/kubernetes-relay as ``kubectl kustomize`` 1.32 (kustomize
v5.5.0) does, but for the generated ConfigMaps' hashed names, the images' new
names and the namespace. It renders ``resources`` (a
directory with its own kustomization, or a YAML file), and ``patches`` whose
target is a kind and a name and whose patch is an RFC 6902 list (``test``,
``add``, ``replace``, ``remove``). Images, the namespace and generated
ConfigMap names are left as the files write them, as the base's tests read
them.

>>> doc = {"a": {"b/c": [1, 2]}}
>>> apply_json_patch(doc, [{"op": "add", "path": "/a/b~1c/-", "value": 3}, {"op": "remove", "path": "/a/b~1c/0"}])
{'a': {'b/c': [2, 3]}}
>>> apply_json_patch(doc, [{"op": "test", "path": "/a/b~1c/0", "value": 9}])
Traceback (most recent call last):
...
ValueError: test failed at /a/b~1c/0: 1 != 9
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.files import yaml_documents

_HANDLED = {"apiVersion", "kind", "namespace", "resources", "patches", "images", "configMapGenerator"}


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/': {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _step(node: Any, part: str, path: str) -> Any:
    if isinstance(node, list):
        return node[int(part)]
    if isinstance(node, dict) and part in node:
        return node[part]
    raise ValueError(f"{path}: no {part!r}")


def apply_json_patch(doc: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """``doc`` with the RFC 6902 ``operations`` applied (a copy; ``doc`` is unchanged)."""
    result = copy.deepcopy(doc)
    for operation in operations:
        op, path = operation["op"], operation["path"]
        *parents, last = _pointer(path)
        node: Any = result
        for part in parents:
            node = _step(node, part, path)
        if op == "test":
            if _step(node, last, path) != operation["value"]:
                raise ValueError(f"test failed at {path}: {_step(node, last, path)!r} != {operation['value']!r}")
        elif op == "add":
            value = copy.deepcopy(operation["value"])
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), value)
            else:
                node[last] = value
        elif op == "replace":
            _step(node, last, path)  # it must exist
            node[int(last) if isinstance(node, list) else last] = copy.deepcopy(operation["value"])
        elif op == "remove":
            _step(node, last, path)
            del node[int(last) if isinstance(node, list) else last]
        else:
            raise ValueError(f"{path}: JSON patch operation {op!r} is not rendered here")
    return result


def kustomization_of(directory: Path) -> dict[str, Any]:
    [doc] = yaml_documents(directory / "kustomization.yaml")
    return doc


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kustomize build directory`` would emit, as far as this module goes (see above)."""
    k = kustomization_of(directory)
    unknown = set(k) - _HANDLED
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml: {sorted(unknown)} are not rendered here")
    objects: list[dict[str, Any]] = []
    for resource in k.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir() and directory.resolve().is_relative_to(path):
            # kustomize refuses it too ("cycle detected: candidate root ... contains visited root").
            raise ValueError(f"{directory}: the base {resource!r} contains this overlay; put the overlay beside it")
        objects += render(path) if path.is_dir() else yaml_documents(path)
    for patch in k.get("patches", []):
        target = patch["target"]
        if set(target) != {"kind", "name"} or "path" in patch:
            raise ValueError(f"patch target {target}: only an inline patch on a kind and a name is rendered here")
        matches = [
            i for i, o in enumerate(objects) if (o["kind"], o["metadata"]["name"]) == (target["kind"], target["name"])
        ]
        if len(matches) != 1:
            raise ValueError(f"patch target {target}: {len(matches)} objects match")
        operations = yaml.safe_load(patch["patch"])
        objects[matches[0]] = apply_json_patch(objects[matches[0]], operations)
    return objects
