"""deploy/docker/Dockerfile: what can be checked without a Docker daemon (none runs here).

The Dockerfile is parsed with dockerfile-parse (build-arg substitution in FROM,
line continuations, stages); the checks are that the final stage is the slim
base with a non-root user and no build tooling, that it runs only the
package's console commands, and that the build stage copies everything
setuptools needs from the repository.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from tests.deploy.files import DEPLOY, REPO, console_scripts, pyproject, yaml_documents

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
DOCKERIGNORE = DEPLOY / "docker" / "Dockerfile.dockerignore"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "python3-dev", "libc6-dev", "git", "curl", "wget")


def parsed() -> DockerfileParser:
    # cache_content: read the file once; the parser never writes unless asked to.
    return DockerfileParser(path=str(DOCKERFILE), cache_content=True)


def stages(instructions: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Instructions grouped by stage (each group starts with its FROM)."""
    groups: list[list[dict[str, Any]]] = []
    for instruction in instructions:
        if instruction["instruction"] == "FROM":
            groups.append([])
        if groups:
            groups[-1].append(instruction)
    return groups


def of(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [str(i["value"]) for i in stage if i["instruction"] == name]


def exec_form(value: str) -> list[str]:
    """The argv of a CMD/ENTRYPOINT; shell form is refused (signals would go to /bin/sh)."""
    argv = json.loads(value)
    assert isinstance(argv, list)
    assert all(isinstance(a, str) for a in argv)
    return [str(a) for a in argv]


FILE = parsed()
STAGES = stages(FILE.structure)
FINAL = STAGES[-1]


def test_multi_stage_with_the_slim_python_base() -> None:
    assert FILE.is_multistage
    assert len(STAGES) == 2
    assert FILE.parent_images == ["python:3.11-slim", "python:3.11-slim"]
    assert of(STAGES[0], "FROM")[0].endswith(" AS build")


def test_final_stage_runs_as_a_fixed_non_root_uid_matching_the_manifests() -> None:
    [user] = of(FINAL, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert gid.isdigit()
    assert int(gid) > 0
    # The instruction that switches user comes after every RUN of the final stage.
    names = [i["instruction"] for i in FINAL]
    assert max(i for i, n in enumerate(names) if n == "RUN") < names.index("USER")
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml_documents(path):
            text = json.dumps(doc)
            if '"runAsUser"' in text:
                assert f'"runAsUser": {uid}' in text, path
                assert f'"runAsGroup": {gid}' in text, path


def test_final_stage_has_no_build_tools_and_no_package_installs() -> None:
    for run in of(FINAL, "RUN"):
        words = shlex.split(run)
        assert "pip" not in " ".join(words), run
        assert "apt-get" not in words, run
        assert "apk" not in words, run
        for tool in BUILD_TOOLS:
            assert tool not in words, (tool, run)
    copies = of(FINAL, "COPY")
    assert copies == ["--from=build /opt/statepump /opt/statepump"]


def test_final_stage_runs_only_console_commands_of_the_package() -> None:
    scripts = console_scripts()
    assert scripts == {"statepump", "snapshotter"}
    assert not of(FINAL, "ENTRYPOINT"), "no ENTRYPOINT: the first word of the command picks the console script"
    [cmd] = of(FINAL, "CMD")
    assert exec_form(cmd)[0] in scripts
    [env] = of(FINAL, "ENV")
    assert "PATH=/opt/statepump/bin:$PATH" in env.split()
    # Where pip puts console scripts in the venv the final stage copies.
    build_runs = " ".join(of(STAGES[0], "RUN"))
    assert "python -m venv /opt/statepump" in build_runs
    assert "/opt/statepump/bin/pip install ." in build_runs


def test_build_stage_copies_what_setuptools_needs_and_it_exists() -> None:
    project = pyproject()
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied: set[str] = set()
    for copy in of(STAGES[0], "COPY"):
        *sources, _destination = copy.split()
        copied |= set(sources)
    assert copied == needed
    for source in sorted(copied):
        assert (REPO / source).exists(), f"{source} is copied into the image but missing from the repository"


def test_build_stage_sources_alone_build_a_wheel_with_both_commands(tmp_path: Path) -> None:
    """The build stage's `pip install .`, minus Docker: build a wheel from only what it copies.

    Offline (no build isolation: setuptools and wheel come from the test extra),
    so it shows that the copied files are enough and that every console script's
    module ends up in the wheel, i.e. on the image's PATH.
    """
    source = tmp_path / "src"
    source.mkdir()
    for copy in of(STAGES[0], "COPY"):
        *sources, _destination = copy.split()
        for name in sources:
            origin = REPO / name
            assert origin.exists(), f"{name} is copied into the image but missing from the repository"
            if origin.is_dir():
                shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(origin, source / name)
    out = tmp_path / "out"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
        [entry_points] = [n for n in files if n.endswith(".dist-info/entry_points.txt")]
        declared = archive.read(entry_points).decode()
    for script, target in pyproject()["project"]["scripts"].items():
        assert f"{script} = {target}" in declared
        module = target.partition(":")[0].replace(".", "/")
        assert f"{module}.py" in files or f"{module}/__init__.py" in files, f"{script}: {module} not in the wheel"


def test_dockerignore_lets_through_exactly_what_the_build_copies() -> None:
    lines = [line for line in DOCKERIGNORE.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied: set[str] = set()
    for copy in of(STAGES[0], "COPY"):
        copied |= set(copy.split()[:-1])
    assert allowed == copied


@pytest.mark.parametrize("instruction", ["ADD", "HEALTHCHECK", "EXPOSE"])
def test_final_stage_avoids(instruction: str) -> None:
    assert not of(FINAL, instruction)


def test_the_root_dockerignore_sends_what_the_per_dockerfile_one_sends() -> None:
    root = Path(__file__).resolve().parents[2]

    def rules(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]

    assert rules(root / ".dockerignore") == rules(root / "deploy/docker/Dockerfile.dockerignore")
