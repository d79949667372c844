"""deploy/azure/main.bicep: structure, least-privilege role assignments, and agreement with the manifests.

No Bicep compiler can run here: the `bicep` CLI is a downloaded binary, and
neither PyPI nor npm carries one that works offline. pycep-parser (a
maintained pure-Python Bicep grammar, the one Checkov uses) parses the file
into JSON, so a syntax error fails the parse test, and the checks below read
the parsed declarations. What they cannot check is type correctness against
the resource providers' schemas; `az deployment group what-if` does that
(deploy/README.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from lark.exceptions import LarkError

from statepump.core.consumergroups import check_group_name, expand
from tests.deploy.bicep import BICEP, PARAMETERS, TEMPLATE, parse
from tests.deploy.files import DEPLOY, KUBERNETES, toml_file, yaml_documents

# Built-in role definition IDs, the same in every tenant. Source: Microsoft
# Learn, "Azure built-in roles for Analytics" (Event Hubs) and "... for Storage".
BUILT_IN_ROLES = {
    "Azure Event Hubs Data Receiver": "a638d3c7-ab3a-418d-83e6-5f17a39d4fde",
    "Azure Event Hubs Data Sender": "2b629674-e913-4c01-ae53-ef4638d8f975",
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
}
DEFAULT_CAPTURE_NAME_FORMAT = "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}"

RESOURCES: dict[str, Any] = TEMPLATE["resources"]
VARIABLES: dict[str, Any] = TEMPLATE["variables"]
PARAMETERS_DECLARED: dict[str, Any] = TEMPLATE["parameters"]


def config(symbol: str) -> dict[str, Any]:
    """A resource's body, looking through a condition (`if`) or a loop (`for`)."""
    body: dict[str, Any] = RESOURCES[symbol]["config"]
    while "loop_type" in body or "condition" in body:
        body = body["config"]
    return body


def of_type(resource_type: str) -> list[str]:
    return [symbol for symbol, r in RESOURCES.items() if r["type"] == resource_type]


def variable(name: str) -> Any:
    return VARIABLES[name]["value"]


def default(name: str) -> Any:
    return PARAMETERS_DECLARED[name]["default"]


def principal_of(assignment: dict[str, Any]) -> str:
    """The identity symbol behind a role assignment's principalId (x.properties.principalId / x.identity...)."""
    principal = assignment["properties"]["principalId"]
    if isinstance(principal, str):
        return principal  # a loop variable or parameter
    return str(principal["operator"]["operands"]["operand_1"])


def role_of(assignment: dict[str, Any]) -> str:
    function = assignment["properties"]["roleDefinitionId"]["function"]
    assert function["type"] == "subscription_resource_id"
    assert function["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    guid = variable(function["parameters"]["resource_name_1"])
    [name] = [n for n, g in BUILT_IN_ROLES.items() if g == guid]
    return name


def assignments() -> set[tuple[str, str, str]]:
    """(principal, role name, scope symbol) of every role assignment."""
    return {
        (principal_of(config(s)), role_of(config(s)), config(s)["scope"])
        for s in of_type("Microsoft.Authorization/roleAssignments")
    }


# ------------------------------------------------------------------ parsing


def test_parses_with_every_section() -> None:
    assert set(TEMPLATE) >= {"parameters", "variables", "resources", "outputs"}
    assert len(RESOURCES) >= 15


def test_the_parser_rejects_broken_bicep() -> None:
    broken = BICEP.read_text().replace("resource eventHub 'Microsoft", "resource eventHub Microsoft", 1)
    with pytest.raises(LarkError):
        parse(broken)


def test_identifiers_are_unique_across_parameters_variables_resources_and_outputs() -> None:
    names = [*PARAMETERS_DECLARED, *VARIABLES, *RESOURCES, *TEMPLATE["outputs"]]
    assert len(names) == len(set(names))


# -------------------------------------------------------------- resources


def test_event_hubs_namespace_is_standard_without_local_auth() -> None:
    [symbol] = of_type("Microsoft.EventHub/namespaces")
    namespace = config(symbol)
    assert namespace["sku"]["name"] == "Standard"
    assert namespace["properties"]["disableLocalAuth"] is True
    assert namespace["identity"]["type"] == "SystemAssigned"


def test_hub_has_partitions_retention_and_capture_with_the_default_name_format() -> None:
    [symbol] = of_type("Microsoft.EventHub/namespaces/eventhubs")
    properties = config(symbol)["properties"]
    assert properties["partitionCount"] == "partitionCount"
    assert properties["retentionDescription"]["retentionTimeInHours"] == "retentionHours"
    capture = properties["captureDescription"]
    assert capture["enabled"] is True
    assert capture["encoding"] == "Avro"
    destination = capture["destination"]
    assert destination["name"] == "EventHubArchive.AzureBlockBlob"
    assert variable(destination["properties"]["archiveNameFormat"]) == DEFAULT_CAPTURE_NAME_FORMAT
    assert variable(destination["properties"]["blobContainer"]) == "capture"


def test_storage_account_has_no_public_access_no_shared_keys_and_tls_1_2() -> None:
    [symbol] = of_type("Microsoft.Storage/storageAccounts")
    properties = config(symbol)["properties"]
    assert properties["allowBlobPublicAccess"] is False
    assert properties["allowSharedKeyAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True


def test_snapshots_and_capture_containers_are_private() -> None:
    containers = {
        variable(config(s)["name"]): config(s)
        for s in of_type("Microsoft.Storage/storageAccounts/blobServices/containers")
    }
    assert set(containers) == {"snapshots", "capture"}
    for container in containers.values():
        assert container["properties"]["publicAccess"] == "None"


def test_two_identities_federated_with_the_kubernetes_service_accounts() -> None:
    assert len(of_type("Microsoft.ManagedIdentity/userAssignedIdentities")) == 2
    accounts = {
        doc["metadata"]["name"]
        for doc in yaml_documents(KUBERNETES / "serviceaccounts.yaml")
        if doc["kind"] == "ServiceAccount"
    }
    [namespace] = yaml_documents(KUBERNETES / "namespace.yaml")
    assert default("kubernetesNamespace") == namespace["metadata"]["name"]
    federated = of_type("Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials")
    subjects = set()
    for symbol in federated:
        properties = config(symbol)["properties"]
        assert properties["audiences"] == ["api://AzureADTokenExchange"]
        assert properties["issuer"] == "aksOidcIssuerUrl"
        account_parameter = properties["subject"].rsplit("${", 1)[1].rstrip("}")
        assert properties["subject"] == f"system:serviceaccount:${{kubernetesNamespace}}:${{{account_parameter}}}"
        subjects.add(default(account_parameter))
    assert subjects == accounts


# ------------------------------------------------------- role assignments


def test_role_definition_ids_are_the_built_in_roles() -> None:
    roles = {name: value["value"] for name, value in VARIABLES.items() if name.startswith("role")}
    assert set(roles.values()) == set(BUILT_IN_ROLES.values())


def test_role_assignments_are_exactly_the_least_privilege_set() -> None:
    assert assignments() == {
        # Capture writes Avro files with the namespace's own identity.
        ("eventHubsNamespace", "Storage Blob Data Contributor", "captureBlobContainer"),
        # The web pods' sidecars read: the hub, snapshots, Capture files.
        ("pumpIdentity", "Azure Event Hubs Data Receiver", "eventHub"),
        ("pumpIdentity", "Storage Blob Data Reader", "snapshotBlobContainer"),
        ("pumpIdentity", "Storage Blob Data Reader", "captureBlobContainer"),
        # The snapshotter reads the same and writes only in the snapshot container.
        ("snapshotterIdentity", "Azure Event Hubs Data Receiver", "eventHub"),
        ("snapshotterIdentity", "Storage Blob Data Reader", "captureBlobContainer"),
        ("snapshotterIdentity", "Storage Blob Data Contributor", "snapshotBlobContainer"),
        # Publishers named by the deployer.
        ("principalId", "Azure Event Hubs Data Sender", "eventHub"),
    }


def test_role_assignment_names_are_deterministic_guids() -> None:
    for symbol in of_type("Microsoft.Authorization/roleAssignments"):
        name = config(symbol)["name"]
        assert name["function"]["type"] == "guid", symbol


# -------------------------------------------------- parameters and outputs


def test_parameters_file_sets_declared_parameters_and_every_required_one() -> None:
    given = json.loads(PARAMETERS.read_text())["parameters"]
    assert set(given) <= set(PARAMETERS_DECLARED)
    required = {name for name, p in PARAMETERS_DECLARED.items() if p.get("default") is None}
    # aksOidcIssuerUrl defaults to '' (no federation); the rest without a default must be given.
    assert required <= set(given)
    for name, entry in given.items():
        if isinstance(default(name), str | int) and name != "baseName":
            assert entry["value"] == default(name), f"{name}: parameters file disagrees with the default"


def test_outputs_give_what_the_manifests_and_units_need() -> None:
    outputs = set(TEMPLATE["outputs"])
    assert outputs >= {
        "eventHubsNamespaceFqdn",
        "hubName",
        "storageAccountUrl",
        "snapshotContainer",
        "captureContainer",
        "captureNameFormat",
        "pumpConsumerGroup",
        "snapshotterConsumerGroup",
        "pumpClientId",
        "snapshotterClientId",
    }


# ------------------------------------------------------ the pool of consumer groups


def interpolate(template: str, count: int, i: int | None = None) -> str:
    """Evaluate the few Bicep expressions the pool's names use, for ``pumpConsumerGroupCount = count``."""
    width = len(str(count))  # pumpConsumerGroupWidth: length(string(pumpConsumerGroupCount))
    assert variable("pumpConsumerGroupWidth") == {
        "function": {
            "type": "length",
            "parameters": {
                "arg_1": {"function": {"type": "string", "parameters": {"value_to_convert": "pumpConsumerGroupCount"}}}
            },
        }
    }
    values = {
        "pumpConsumerGroupPrefix": variable("pumpConsumerGroupPrefix"),
        "pumpConsumerGroupCount": str(count),
        "padLeft(1, pumpConsumerGroupWidth, '0')": "1".zfill(width),
        "padLeft(i, pumpConsumerGroupWidth, '0')": str(i).zfill(width),
    }
    return re.sub(r"\$\{([^}]*\)?)\}", lambda m: values[m[1]], template)


def pool_spec(count: int) -> str:
    """The template's output pumpConsumerGroup (the --consumer-group of the web pods) for ``count``."""
    output = TEMPLATE["outputs"]["pumpConsumerGroup"]["value"]
    assert output == "pumpConsumerGroupPool"
    return interpolate(variable("pumpConsumerGroupPool"), count)


def pool_created(count: int) -> list[str]:
    """The consumer groups the loop of pumpGroups creates for ``count``."""
    loop = RESOURCES["pumpGroups"]["config"]["loop_type"]["detail"]
    assert loop["item_name"] == "i"
    function = loop["array_name"]["function"]
    assert function["type"] == "range"
    assert function["parameters"] == {"start_index": 1, "count": "pumpConsumerGroupCount"}
    return [interpolate(config("pumpGroups")["name"], count, i) for i in range(1, count + 1)]


@pytest.mark.parametrize("count", [1, 9, 10, 18])
def test_the_pool_the_template_creates_is_the_one_its_output_names(count: int) -> None:
    created = pool_created(count)
    assert expand(pool_spec(count)) == created  # the pump's own parser reads the output
    assert len(set(created)) == count and all(check_group_name(name) for name in created)


def test_the_pool_fits_the_standard_tier_beside_default_and_the_snapshotter() -> None:
    decorators = {d["type"]: d["argument"] for d in PARAMETERS_DECLARED["pumpConsumerGroupCount"]["decorators"]}
    # 20 consumer groups per event hub on Standard, $Default and the snapshotter's among them.
    assert decorators["max_value"] == 20 - 2 == default("pumpConsumerGroupCount")
    assert variable("snapshotterConsumerGroupName") not in pool_created(decorators["max_value"])
    assert TEMPLATE["outputs"]["pumpDirectReaders"]["value"] == {
        "operator": {"type": "multiply", "operands": {"operand_1": 5, "operand_2": "pumpConsumerGroupCount"}}
    }


def test_names_agree_with_the_settings_files() -> None:
    for path in (KUBERNETES / "statepump.toml", DEPLOY / "systemd" / "statepump.toml"):
        settings = toml_file(path)
        assert settings["eventhub"] == default("eventHubName"), path
        assert settings["snapshot_container"] == variable("snapshotContainerName"), path
        assert settings["capture_container"] == variable("captureContainerName"), path
        assert settings["capture_name_format"] == DEFAULT_CAPTURE_NAME_FORMAT, path
        assert settings["consumer_group"] == pool_spec(default("pumpConsumerGroupCount")), path
    cronjob = yaml_documents(KUBERNETES / "cronjob.yaml")[0]
    command = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--consumer-group") + 1] == variable("snapshotterConsumerGroupName")
    unit = (DEPLOY / "systemd" / "statepump-snapshotter.service").read_text()
    assert f"--consumer-group {variable('snapshotterConsumerGroupName')} " in unit
