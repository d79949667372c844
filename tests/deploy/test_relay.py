"""deploy/kubernetes-relay: the relay variant keeps the promises deploy/README.md ("Relays") makes.

The overlay is rendered offline (tests/deploy/overlay.py) and every object is
validated against the Kubernetes schemas as the base is; each command line
is parsed by the real ``statepump`` parser and loaded into settings with the
TOML file and environment the container gets, so a flag that does not exist,
or a combination the commands refuse, fails here and not in a cluster.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from statepump.cli import build_parser
from statepump.core.consumergroups import pool_names
from statepump.settings import COMMAND_FIELDS, Settings, load
from statepump.sources.relay import Upstream
from tests.deploy.commands import problems
from tests.deploy.files import DEPLOY, KUBERNETES, console_scripts, kustomization, toml_file, yaml_documents
from tests.deploy.overlay import kustomization_of, render
from tests.deploy.test_kubernetes import SECRET_TEXT, VERSIONS, _strings, argv, containers, flag_value, mount_for

RELAY = DEPLOY / "kubernetes-relay"
OBJECTS = render(RELAY)
BASE = render(KUBERNETES)
NAMESPACE = kustomization()["namespace"]
SETTINGS_FILE = KUBERNETES / "statepump.toml"
README = (DEPLOY / "README.md").read_text()


def find(kind: str, name: str) -> dict[str, Any]:
    [doc] = [o for o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name]
    return doc


def pod(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = find("Deployment", name)["spec"]["template"]["spec"]
    return spec


def relay_container() -> dict[str, Any]:
    [container] = pod("relay")["containers"]
    found: dict[str, Any] = container
    return found


def web_sidecar() -> dict[str, Any]:
    [container] = [c for c in containers(pod("web")) if argv(c)[:2] == ["statepump", "run"]]
    return container


def secret_volume(spec: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, list[str]]:
    """(the Secret's name, the keys projected) of the volume holding ``path`` in ``container``."""
    mount = mount_for(container, path)
    assert mount.get("readOnly") is True, path
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert "secret" in volume, f"{path} is not from a Secret"
    keys = [item["key"] for item in volume["secret"]["items"]]
    relative = path[len(mount["mountPath"].rstrip("/")) + 1 :]
    assert relative in [item["path"] for item in volume["secret"]["items"]], path
    return volume["secret"]["secretName"], keys


def environment(container: dict[str, Any]) -> dict[str, str]:
    """The STATEPUMP_* variables the container gets: its env (a pod name for a fieldRef) and ConfigMap literals."""
    env: dict[str, str] = {}
    literals = {g["name"]: g.get("literals", []) for g in kustomization()["configMapGenerator"]}
    for source in container.get("envFrom", []):
        for literal in literals[source["configMapRef"]["name"]]:
            name, _, value = literal.partition("=")
            env[name] = value
    for variable in container.get("env", []):
        env[variable["name"]] = variable.get("value", "relay-7d9c-0")
    return env


def settings_of(container: dict[str, Any]) -> Settings:
    """What ``statepump run`` would run with: the real parser, the container's environment, its TOML file."""
    command = argv(container)
    assert command[:2] == ["statepump", "run"]
    # argparse exits on an unknown flag; as a test failure that names it, not a SystemExit.
    try:
        args = build_parser().parse_args(command[1:])
    except SystemExit:
        pytest.fail(f"statepump's parser refuses {command}")
    assert isinstance(args, argparse.Namespace)
    given = {name: getattr(args, name) for name in COMMAND_FIELDS["run"] if getattr(args, name, None) is not None}
    if "config" in given:
        # The file the ConfigMap mounted there is made from.
        assert given["config"] == "/etc/statepump/statepump.toml"
        given["config"] = str(SETTINGS_FILE)
    return load(given, environ=environment(container))


# ------------------------------------------------------------------ schema and layout


def test_the_variant_adds_the_relays_to_the_base_and_changes_only_the_web_pods() -> None:
    def names(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted((o["kind"], o["metadata"]["name"]) for o in objects)

    added = sorted(set(names(OBJECTS)) - set(names(BASE)))
    assert added == [
        ("Deployment", "relay"),
        ("NetworkPolicy", "relay"),
        ("PodDisruptionBudget", "relay"),
        ("Service", "relay"),
    ]
    assert set(names(BASE)) <= set(names(OBJECTS))
    changed = sorted((o["kind"], o["metadata"]["name"]) for o in BASE if o not in OBJECTS)
    assert changed == [("Deployment", "web"), ("HorizontalPodAutoscaler", "web")]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("obj", OBJECTS, ids=[f"{o['kind']}/{o['metadata']['name']}" for o in OBJECTS])
def test_every_object_of_the_variant_is_valid_against_the_kubernetes_schema(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_the_overlay_uses_the_base_image_namespace_and_lists_its_files() -> None:
    k = kustomization_of(RELAY)
    assert k["namespace"] == NAMESPACE
    # The base's renaming reaches only the base's objects: the relays need the same, so that one
    # `images:` entry of a user's overlay renames both.
    assert k["images"] == kustomization()["images"]
    files = {p.name for p in RELAY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(k["resources"]) == {"../kubernetes", *files}
    for path in RELAY.glob("*.yaml"):
        assert yaml_documents(path)
    assert {c["image"] for c in containers(pod("relay"))} == {"statepump"}


def test_no_secret_is_in_the_variant_only_references_to_secrets_made_out_of_band() -> None:
    assert not [o for o in OBJECTS if o["kind"] == "Secret"]
    for text in [s for o in OBJECTS for s in _strings(o)] + [p.read_text() for p in RELAY.glob("*.yaml")]:
        assert not SECRET_TEXT.search(text), text
    for spec in (pod("relay"), pod("web")):
        for container in containers(spec):
            for variable in container.get("env", []):
                assert "secretKeyRef" not in variable.get("valueFrom", {})


# ------------------------------------------------------------------------- relays


def test_at_least_two_relays_a_disruption_budget_and_a_rollout_that_keeps_them() -> None:
    relay = find("Deployment", "relay")
    assert relay["spec"]["replicas"] >= 2
    assert relay["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = relay["spec"]["template"]["metadata"]["labels"]
    assert relay["spec"]["selector"]["matchLabels"].items() <= labels.items()
    budget = find("PodDisruptionBudget", "relay")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= budget["spec"]["minAvailable"] < relay["spec"]["replicas"]  # a drain can still evict one
    # Each relay is one hub receiver of the pool: 5 per group, and the surge pod needs one too.
    pool = pool_names(toml_file(SETTINGS_FILE)["consumer_group"])
    surge = relay["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert relay["spec"]["replicas"] + surge <= 5 * len(pool)


def test_relays_read_the_hub_and_serve_the_feed_over_tls_with_a_token() -> None:
    container = relay_container()
    command = argv(container)
    assert problems(command, console_scripts()) == [], command
    settings = settings_of(container)
    assert settings.namespace and settings.upstream is None  # a hub reader
    assert settings.listen_any
    host, port = settings.listen_address or ("", 0)
    assert host == "0.0.0.0"
    [named] = [p for p in container["ports"] if p["containerPort"] == port]
    spec = pod("relay")
    token, token_keys = secret_volume(spec, container, str(settings.relay_token_file))
    assert (token, token_keys) == ("statepump-relay-token", ["token"])
    tls_cert, _ = secret_volume(spec, container, str(settings.tls_cert))
    tls_key, tls_keys = secret_volume(spec, container, str(settings.tls_key))
    assert tls_cert == tls_key == "statepump-relay-tls"
    assert "ca.crt" not in tls_keys  # a relay needs its own chain and key, not the clients' bundle
    service = find("Service", "relay")
    assert (
        service["spec"]["selector"].items()
        <= find("Deployment", "relay")["spec"]["template"]["metadata"]["labels"].items()
    )
    [service_port] = service["spec"]["ports"]
    assert service_port["targetPort"] == named["name"]


def test_relays_are_ready_only_when_caught_up_and_spread_over_nodes() -> None:
    container = relay_container()
    socket = flag_value(argv(container), "--socket")
    assert container["readinessProbe"]["exec"]["command"] == ["statepump", "health", "--ready", "--socket", socket]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert problems(container[probe]["exec"]["command"], console_scripts()) == []
        assert container[probe]["timeoutSeconds"] >= 5
    [volume] = [v for v in pod("relay")["volumes"] if v["name"] == mount_for(container, socket)["name"]]
    assert "emptyDir" in volume
    [spread] = pod("relay")["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"


def test_relays_run_with_the_base_pods_security_and_the_readers_identity() -> None:
    spec = pod("relay")
    web = next(o for o in BASE if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"] == web["securityContext"]
    assert spec["serviceAccountName"] == web["serviceAccountName"]  # Data Receiver + Blob Data Reader
    container = relay_container()
    assert container["securityContext"] == web["initContainers"][0]["securityContext"]
    assert set(container["resources"]["requests"]) >= {"cpu", "memory"}
    assert set(container["resources"]["limits"]) >= {"cpu", "memory"}
    labels = find("Deployment", "relay")["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"


# ---------------------------------------------------------------------- web pods


def test_web_sidecars_follow_the_relays_service_over_tls_with_the_token_and_no_hub() -> None:
    container = web_sidecar()
    command = argv(container)
    assert problems(command, console_scripts()) == [], command
    settings = settings_of(container)
    # No hub: not the connection string's, not the namespace of the statepump-azure ConfigMap.
    assert settings.namespace is None and settings.connection_string is None
    assert settings.upstream_fallback == "none"
    assert "envFrom" not in container
    service = find("Service", "relay")
    [service_port] = service["spec"]["ports"]
    upstreams = [Upstream.parse(u) for u in settings.upstreams]
    assert upstreams
    for upstream in upstreams:
        assert upstream.tls
        assert upstream.host in {f"relay.{NAMESPACE}.svc", f"relay.{NAMESPACE}.svc.cluster.local"}
        assert upstream.port == service_port["port"]
    spec = pod("web")
    assert secret_volume(spec, container, str(settings.relay_token_file)) == ("statepump-relay-token", ["token"])
    # The relays' CA only: a web pod never holds the relays' private key.
    assert secret_volume(spec, container, str(settings.upstream_ca)) == ("statepump-relay-tls", ["ca.crt"])
    for volume in spec["volumes"]:
        assert "tls.key" not in str(volume.get("secret", {}))


def test_web_sidecars_fold_the_relays_hub_and_partition() -> None:
    relay, web = settings_of(relay_container()), settings_of(web_sidecar())
    assert (web.resolved_eventhub(), web.partition) == (relay.resolved_eventhub(), relay.partition)


def test_web_pods_keep_the_base_sidecar_socket_and_probes_and_drop_the_azure_identity() -> None:
    base_web = next(o for o in BASE if o["kind"] == "Deployment" and o["metadata"]["name"] == "web")
    base_sidecar = base_web["spec"]["template"]["spec"]["initContainers"][0]
    container = web_sidecar()
    for key in ("readinessProbe", "livenessProbe", "startupProbe", "restartPolicy", "securityContext"):
        assert container[key] == base_sidecar[key], key
    assert flag_value(argv(container), "--socket") == flag_value(argv(base_sidecar), "--socket")
    assert pod("web")["containers"] == base_web["spec"]["template"]["spec"]["containers"]
    labels = find("Deployment", "web")["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "false"  # nothing of Azure is read from a web pod


def test_only_web_pods_reach_the_relays_port() -> None:
    policy = find("NetworkPolicy", "relay")
    relay_labels = find("Deployment", "relay")["spec"]["template"]["metadata"]["labels"]
    web_labels = find("Deployment", "web")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= relay_labels.items()
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    assert source["podSelector"]["matchLabels"].items() <= web_labels.items()
    assert [p["port"] for p in rule["ports"]] == [p["name"] for p in relay_container()["ports"]]


def test_web_replicas_may_exceed_the_pools_readers() -> None:
    hpa = find("HorizontalPodAutoscaler", "web")
    pool = pool_names(toml_file(SETTINGS_FILE)["consumer_group"])
    assert hpa["spec"]["maxReplicas"] > 5 * len(pool)


# ------------------------------------------------------------------------ README


def test_the_readme_says_when_to_use_direct_readers_a_pool_or_relays() -> None:
    match = re.search(r"^## Relays.*?(?=^## )", README, flags=re.S | re.M)
    assert match, "deploy/README.md has no Relays section"
    section = match.group(0)
    for words in ("direct readers", "pool", "relay", "5 per", "egress", "kubectl apply -k", "statepump-relay-tls"):
        assert words in section, words
    assert "deploy/kubernetes-relay" in section
    # The Secrets it tells you to create are the ones the pods mount.
    for name in ("statepump-relay-token", "statepump-relay-tls"):
        assert f"secret generic {name}" in section or f"secret tls {name}" in section, name


def test_the_overlay_renderer_refuses_what_it_does_not_render(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(ValueError, match="namePrefix"):
        render(tmp_path)


def test_the_overlay_renderer_refuses_an_overlay_inside_its_base(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "kustomization.yaml").write_text("resources:\n  - ..\n")
    with pytest.raises(ValueError, match="contains this overlay"):
        render(tmp_path / "inner")
