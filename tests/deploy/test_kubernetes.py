"""deploy/kubernetes: schema-valid manifests that keep the promises deploy/README.md makes.

Schemas come from kubernetes-validate, which ships the Kubernetes JSON schemas
of every supported release, so this runs offline. Validation is strict
(unknown fields are errors), against the oldest release the manifests need
(1.29: native sidecars) and the newest the validator knows.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from statepump.core.consumergroups import pool_names
from tests.deploy.commands import SECRET_SETTINGS, SHARED_SETTINGS, problems, setting_of_env, setting_of_toml_key
from tests.deploy.files import (
    DEPLOY,
    KUBERNETES,
    console_scripts,
    kubernetes_objects,
    kustomization,
    toml_file,
    yaml_documents,
)

OLDEST_KUBERNETES = "1.29"
VERSIONS = [OLDEST_KUBERNETES, kubernetes_validate.latest_version()]
OBJECTS = kubernetes_objects()
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in OBJECTS if doc["kind"] == kind]


def only(kind: str) -> dict[str, Any]:
    [doc] = by_kind(kind)
    return doc


def pod_specs() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(object name, pod template metadata, pod spec) of every workload."""
    for doc in by_kind("Deployment"):
        yield doc["metadata"]["name"], doc["spec"]["template"]["metadata"], doc["spec"]["template"]["spec"]
    for doc in by_kind("CronJob"):
        template = doc["spec"]["jobTemplate"]["spec"]["template"]
        yield doc["metadata"]["name"], template["metadata"], template["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def statepump_containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) for every container that runs the statepump image."""
    for _, _, spec in pod_specs():
        for container in containers(spec):
            if container["image"] == "statepump":
                yield spec, container


def sidecar() -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = only("Deployment")
    spec = deployment["spec"]["template"]["spec"]
    [container] = [c for c in containers(spec) if argv(c)[:2] == ["statepump", "run"]]
    return spec, container


def flag_value(argv: list[str], flag: str) -> str:
    index = argv.index(flag)
    return argv[index + 1]


def mount_for(container: dict[str, Any], path: str) -> dict[str, Any]:
    """The volume mount of a container under which path lies."""
    matches = [
        mount
        for mount in container.get("volumeMounts", [])
        if path == mount["mountPath"] or path.startswith(mount["mountPath"].rstrip("/") + "/")
    ]
    assert matches, f"{container['name']}: nothing mounted at {path}"
    return max(matches, key=lambda mount: len(mount["mountPath"]))


def volume(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [v for v in spec["volumes"] if v["name"] == name]
    assert len(found) == 1, f"volume {name}: {len(found)} definitions"
    return found[0]


def argv(container: dict[str, Any]) -> list[str]:
    """What the container runs: its command followed by its args."""
    return [*container.get("command", []), *container.get("args", [])]


# ------------------------------------------------------------------ schema


def test_there_is_one_of_each_object_the_deployment_needs() -> None:
    kinds = sorted(doc["kind"] for _, doc in OBJECTS)
    assert kinds == [
        "CronJob",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Namespace",
        "ServiceAccount",
        "ServiceAccount",
    ]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "obj", [doc for _, doc in OBJECTS], ids=[f"{p.name}:{d['kind']}/{d['metadata']['name']}" for p, d in OBJECTS]
)
def test_manifest_is_valid_against_the_kubernetes_schema(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_rejects_an_unknown_field_and_a_wrong_type() -> None:
    cronjob = copy.deepcopy(only("CronJob"))
    cronjob["spec"]["concurencyPolicy"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError, match="concurencyPolicy"):
        kubernetes_validate.validate(cronjob, OLDEST_KUBERNETES, strict=True)
    deployment = copy.deepcopy(only("Deployment"))
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, OLDEST_KUBERNETES, strict=True)


# ----------------------------------------------------------- kustomization


def test_kustomization_lists_every_manifest_and_generates_what_they_reference() -> None:
    k = kustomization()
    files = {p.name for p, _ in OBJECTS}
    assert set(k["resources"]) == files
    generated = {g["name"] for g in k["configMapGenerator"]}
    for generator in k["configMapGenerator"]:
        for name in generator.get("files", []):
            assert (KUBERNETES / name).is_file(), name
    referenced: set[str] = set()
    for _, _, spec in pod_specs():
        referenced |= {v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v}
        for container in containers(spec):
            referenced |= {e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e}
    assert referenced == generated
    [namespace] = by_kind("Namespace")
    assert k["namespace"] == namespace["metadata"]["name"]
    images = {i["name"] for i in k["images"]}
    assert images == {c["image"] for _, c in statepump_containers()} == {"statepump"}
    assert "secretGenerator" not in k


def test_the_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = only("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# -------------------------------------------------------- sidecar and socket


def test_sidecar_is_a_native_sidecar_started_before_the_app() -> None:
    spec, container = sidecar()
    assert container in spec["initContainers"]
    assert container["restartPolicy"] == "Always"
    assert spec["containers"], "the Deployment has an app container besides the sidecar"


def test_socket_is_on_an_emptydir_shared_by_the_sidecar_and_the_app() -> None:
    spec, container = sidecar()
    socket = flag_value(argv(container), "--socket")
    sidecar_mount = mount_for(container, socket)
    assert "emptyDir" in volume(spec, sidecar_mount["name"])
    assert not sidecar_mount.get("readOnly", False)
    for app in spec["containers"]:
        app_mount = mount_for(app, socket)
        assert app_mount["name"] == sidecar_mount["name"]
        assert app_mount["mountPath"] == sidecar_mount["mountPath"]
        assert {"name": "STATEPUMP_SOCKET", "value": socket} in app["env"]


def test_probes_ask_statepump_health_on_the_sidecars_socket() -> None:
    _, container = sidecar()
    socket = flag_value(argv(container), "--socket")
    ready = container["readinessProbe"]["exec"]["command"]
    alive = container["livenessProbe"]["exec"]["command"]
    started = container["startupProbe"]["exec"]["command"]
    assert ready == ["statepump", "health", "--ready", "--socket", socket]
    assert alive == ["statepump", "health", "--socket", socket]
    assert started == alive
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        # An exec probe starts a Python process: give it time on a busy node.
        assert container[probe]["timeoutSeconds"] >= 5


def test_settings_file_comes_from_the_configmap_and_names_only_known_settings() -> None:
    for spec, container in statepump_containers():
        config = flag_value(argv(container), "--config")
        mount = mount_for(container, config)
        assert mount.get("readOnly") is True
        assert volume(spec, mount["name"])["configMap"]["name"] == "statepump-config"
        relative = config[len(mount["mountPath"].rstrip("/")) + 1 :]
        [generator] = [g for g in kustomization()["configMapGenerator"] if g["name"] == "statepump-config"]
        assert relative in generator["files"]
    settings = toml_file(KUBERNETES / "statepump.toml")
    assert settings, "statepump.toml is empty"
    for key in settings:
        assert setting_of_toml_key(key) in SHARED_SETTINGS, f"statepump.toml: unknown key {key!r}"


# ------------------------------------------------- scaling: the autoscaler and the pool


def test_the_autoscaler_owns_the_web_deployments_replicas_within_the_pools_readers() -> None:
    hpa = only("HorizontalPodAutoscaler")
    deployment = only("Deployment")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", "web")
    assert deployment["metadata"]["name"] == "web"
    # With an autoscaler, a replicas field would reset the count on every `kubectl apply`.
    assert "replicas" not in deployment["spec"]
    pool = pool_names(toml_file(KUBERNETES / "statepump.toml")["consumer_group"])
    # Every replica is a direct reader: 5 per partition and group of the pool, no more; and a rolling
    # update's surge pods need free slots before the old pods stop (maxUnavailable 0), or it never ends.
    surge = deployment["spec"]["strategy"]["rollingUpdate"]
    assert surge["maxUnavailable"] == 0
    assert 5 * len(pool) == 90
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] == 5 * len(pool) - surge["maxSurge"]
    assert hpa["spec"]["behavior"]["scaleUp"]["policies"], "an unbounded herd costs the hub's egress at once"


def test_the_sidecar_gets_the_pod_name_as_its_node_id_and_the_snapshotter_its_own_group() -> None:
    _, container = sidecar()
    [node] = [e for e in container["env"] if e["name"] == "STATEPUMP_NODE_ID"]
    assert node["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert setting_of_env("STATEPUMP_NODE_ID") == "node-id"
    assert "--consumer-group" not in argv(container)  # the pool comes from statepump.toml
    pool = pool_names(toml_file(KUBERNETES / "statepump.toml")["consumer_group"])
    [snapshotter] = only("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    own = flag_value(argv(snapshotter), "--consumer-group")
    assert own.lower() not in {name.lower() for name in pool}  # it never takes a web pod's slot


# ---------------------------------------------------------------- cron job


def test_snapshotter_cronjob_never_overlaps_and_bounds_each_run() -> None:
    cronjob = only("CronJob")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert 1 <= job["backoffLimit"] <= 6
    every = re.fullmatch(r"\*/(\d+) \* \* \* \*", spec["schedule"])
    assert every, f"schedule {spec['schedule']!r}: expected '*/N * * * *'"
    assert 0 < job["activeDeadlineSeconds"] < int(every.group(1)) * 60
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    [container] = pod["containers"]
    assert argv(container)[0] == "snapshotter"


# -------------------------------------------------------------- commands


def test_every_command_is_a_console_script_with_known_flags() -> None:
    scripts = console_scripts()
    seen = 0
    for _, container in statepump_containers():
        commands = [argv(container)]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe in container:
                commands.append(container[probe]["exec"]["command"])
        for command in commands:
            assert problems(command, scripts) == [], command
            seen += 1
    assert seen == 5  # sidecar + 3 probes + snapshotter


def test_environment_variables_set_known_settings() -> None:
    names: list[str] = []
    for _, _, spec in pod_specs():
        for container in containers(spec):
            names += [e["name"] for e in container.get("env", [])]
    for generator in kustomization()["configMapGenerator"]:
        names += [literal.partition("=")[0] for literal in generator.get("literals", [])]
    statepump_names = [n for n in names if n.startswith("STATEPUMP_")]
    assert statepump_names
    for name in statepump_names:
        assert setting_of_env(name) in SHARED_SETTINGS, name


# ---------------------------------------------------------------- security


@pytest.mark.parametrize("workload", [name for name, _, _ in pod_specs()])
def test_pods_run_as_non_root_with_a_read_only_root_filesystem(workload: str) -> None:
    [(_, _, spec)] = [w for w in pod_specs() if w[0] == workload]
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] > 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    for container in containers(spec):
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["capabilities"]["drop"] == ["ALL"], container["name"]
        assert "runAsUser" not in security or security["runAsUser"] > 0
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) >= {"cpu", "memory"}, (container["name"], kind)


@pytest.mark.parametrize("workload", [name for name, _, _ in pod_specs()])
def test_pods_use_workload_identity(workload: str) -> None:
    [(_, metadata, spec)] = [w for w in pod_specs() if w[0] == workload]
    assert metadata["labels"]["azure.workload.identity/use"] == "true"
    accounts = {sa["metadata"]["name"]: sa for sa in by_kind("ServiceAccount")}
    account = accounts[spec["serviceAccountName"]]
    assert GUID.match(account["metadata"]["annotations"]["azure.workload.identity/client-id"])


def test_each_workload_has_its_own_identity() -> None:
    assert len({spec["serviceAccountName"] for _, _, spec in pod_specs()}) == 2


SECRET_TEXT = re.compile(r"AccountKey=|SharedAccessKey|SharedAccessSignature|[?&]sig=|BEGIN [A-Z ]*PRIVATE KEY", re.I)


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_no_secrets_in_manifests() -> None:
    assert not by_kind("Secret")
    for _, _, spec in pod_specs():
        assert not [v for v in spec.get("volumes", []) if "secret" in v]
        for container in containers(spec):
            for env in container.get("env", []):
                assert "secretKeyRef" not in env.get("valueFrom", {}), env
            assert not [e for e in container.get("envFrom", []) if "secretRef" in e]
            flags = {token[2:].partition("=")[0] for token in argv(container) if token.startswith("--")}
            assert not flags & SECRET_SETTINGS
    texts = [s for _, doc in OBJECTS for s in _strings(doc)]
    texts += list(_strings(kustomization()))
    texts.append((KUBERNETES / "statepump.toml").read_text())
    for text in texts:
        assert not SECRET_TEXT.search(text), text
    for key in toml_file(KUBERNETES / "statepump.toml"):
        assert setting_of_toml_key(key) not in SECRET_SETTINGS


def test_the_secret_check_would_notice_a_connection_string() -> None:
    leaked = "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=b"
    assert SECRET_TEXT.search(leaked)
    assert SECRET_TEXT.search("https://a.blob.core.windows.net/c?sv=2022&sig=abc")


def test_every_yaml_file_under_deploy_parses() -> None:
    paths = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert paths
    for path in paths:
        assert yaml_documents(Path(path)), path
