"""deploy/README.md: the walk-through's commands and overlay agree with the files they use."""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from tests.deploy.bicep import TEMPLATE
from tests.deploy.commands import problems
from tests.deploy.files import DEPLOY, console_scripts, kubernetes_objects, kustomization

README = (DEPLOY / "README.md").read_text()


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def shell_lines() -> list[str]:
    """Logical lines of the sh blocks: continuations joined, heredoc bodies left out."""
    lines: list[str] = []
    for block in shell_blocks():
        joined = block.replace("\\\n", " ")
        in_heredoc = False
        for line in joined.splitlines():
            if in_heredoc:
                in_heredoc = line.strip() != "EOF"
                continue
            if "<<EOF" in line:
                in_heredoc = True
            if line.strip():
                lines.append(line)
    return lines


def statepump_commands() -> list[list[str]]:
    """Every statepump/snapshotter invocation in the sh blocks (also after `kubectl exec ... --`)."""
    found: list[list[str]] = []
    for line in shell_lines():
        words = shlex.split(line, comments=True)
        for index, word in enumerate(words):
            starts_command = index == 0 or words[index - 1] in {"--", "sudo"}
            if starts_command and word.rsplit("/", 1)[-1] in console_scripts():
                found.append(words[index:])
    return found


def overlay() -> dict[str, Any]:
    [body] = re.findall(r"<<EOF\n(.*?)\nEOF", README, flags=re.S)
    # What the shell would substitute: the Bicep outputs and the registry name.
    body = re.sub(r"\$\(out (\w+)\)", lambda m: f"value-of-{m.group(1)}", body).replace("$ACR", "myregistry")
    loaded: dict[str, Any] = yaml.safe_load(body)
    return loaded


def test_walk_through_has_the_deployment_commands() -> None:
    for command in (
        "az deployment group create",
        "az acr build",
        "kubectl apply -k",
        "systemctl enable --now statepump.service",
        "systemctl enable --now statepump-snapshotter.timer",
    ):
        assert command in README, command


def test_statepump_commands_in_the_walk_through_use_known_flags() -> None:
    commands = statepump_commands()
    assert len(commands) >= 2
    for argv in commands:
        assert problems(argv, console_scripts()) == [], argv


def test_walk_through_reads_only_outputs_the_template_has() -> None:
    used = set(re.findall(r"\bout (\w+)", "\n".join(shell_blocks())))
    assert used
    assert used <= set(TEMPLATE["outputs"])


def test_overlay_replaces_exactly_what_the_base_leaves_as_examples() -> None:
    mine = overlay()
    base = kustomization()
    assert mine["resources"] == ["../deploy/kubernetes"]
    base_images = {f"{i['newName']}" for i in base["images"]}
    app_images = {
        c["image"].rpartition(":")[0]
        for _, doc in kubernetes_objects()
        if doc["kind"] == "Deployment"
        for c in doc["spec"]["template"]["spec"]["containers"]
    }
    assert {i["name"] for i in mine["images"]} == base_images | app_images
    [generator] = mine["configMapGenerator"]
    [base_generator] = [g for g in base["configMapGenerator"] if g["name"] == generator["name"]]
    assert generator["behavior"] == "replace"
    keys = [literal.partition("=")[0] for literal in generator["literals"]]
    assert keys == [literal.partition("=")[0] for literal in base_generator["literals"]]
    accounts = {doc["metadata"]["name"]: doc for _, doc in kubernetes_objects() if doc["kind"] == "ServiceAccount"}
    patched = set()
    for patch in mine["patches"]:
        assert patch["target"]["kind"] == "ServiceAccount"
        account = accounts[patch["target"]["name"]]
        [operation] = yaml.safe_load(patch["patch"])
        assert operation["op"] == "replace"
        key = operation["path"].removeprefix("/metadata/annotations/").replace("~1", "/")
        assert key in account["metadata"]["annotations"]
        patched.add(account["metadata"]["name"])
    assert patched == set(accounts)
