"""Where the deploy files are, and loading them for the deploy tests.

>>> sorted(console_scripts())
['snapshotter', 'statepump']
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUSTOMIZATION = KUBERNETES / "kustomization.yaml"


def pyproject() -> dict[str, Any]:
    """The parsed pyproject.toml of the repository."""
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def console_scripts() -> set[str]:
    """The console commands the package installs ([project.scripts])."""
    return set(pyproject()["project"]["scripts"])


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a file, each a mapping (anything else is an error)."""
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    for doc in docs:
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: a document is a {type(doc).__name__}, not a mapping")
    return docs


def kubernetes_objects() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object in deploy/kubernetes, with the file it is in (kustomization.yaml excluded)."""
    return [
        (path, doc)
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path != KUSTOMIZATION
        for doc in yaml_documents(path)
    ]


def kustomization() -> dict[str, Any]:
    """The parsed deploy/kubernetes/kustomization.yaml."""
    [doc] = yaml_documents(KUSTOMIZATION)
    return doc


def toml_file(path: Path) -> dict[str, Any]:
    """A parsed TOML file."""
    with path.open("rb") as f:
        return tomllib.load(f)
