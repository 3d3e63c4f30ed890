"""What each kind of registry change does to the AWS resource graph (URN-level diff).

Runs the Platform under mocks on the staging stack before and after one edit
to the fixture registry and compares the registered resources: which URNs
appear, which disappear, and which inputs change. Proves that a version bump
adds versioned SageMaker Models and EndpointConfigurations and updates the
Endpoint in place (same URN, same physical name), that a traffic split only
changes weights and replica counts, and that adding or removing a model
touches that model's resources alone.

Cannot prove: the order in which the engine applies the diff (create before
delete is the engine's default for these resources, asserted here through the
options the program sets) or how long SageMaker's blue/green shift takes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from llmops.settings import StackSettings

from .fixtures import SHA_B, hub_weights, models, write_registry
from .harness import Graph, Registered, run_platform

pytestmark = pytest.mark.mocks

STACK = "staging"
SM_MODEL = "aws:sagemaker/model:Model"
SM_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
SM_ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
# Stack-wide resources whose inputs list every model (facts, costs, dashboards): they change with any model.
AGGREGATES = {"llmops:platform:Platform", "aws:cloudwatch/dashboard:Dashboard"}


def _run(tmp_path: Path, stacks: dict[str, StackSettings], entries: dict[str, dict[str, Any]]) -> Graph:
    registry = write_registry(tmp_path, entries)
    return run_platform(STACK, stacks[STACK], registry, tmp_path)


def _diff(before: Graph, after: Graph) -> tuple[set[str], set[str], dict[str, tuple[Registered, Registered]]]:
    """URNs added, URNs removed, and resources kept whose inputs changed."""
    b, a = before.by_urn(), after.by_urn()
    changed = {u: (b[u], a[u]) for u in b.keys() & a.keys() if b[u].inputs != a[u].inputs}
    return a.keys() - b.keys(), b.keys() - a.keys(), changed


def _names(urns: set[str]) -> set[tuple[str, str]]:
    """(type, name) of URNs, for readable assertions."""
    return {(u.split("::")[2].split("$")[-1], u.split("::")[3]) for u in urns}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, stacks: dict[str, StackSettings]) -> Graph:
    return _run(tmp_path_factory.mktemp("before"), stacks, models())


def test_adding_a_model_adds_only_its_resources(
    baseline: Graph, tmp_path: Path, stacks: dict[str, StackSettings]
) -> None:
    entries = models()
    entry = copy.deepcopy(entries["chat-sm"])
    entry["name"] = "qa-sm"
    entry.pop("training")
    entries["qa-sm"] = entry
    after = _run(tmp_path, stacks, entries)
    added, removed, changed = _diff(baseline, after)
    assert not removed
    assert added and all("qa-sm" in name for _, name in _names(added))
    assert ("aws:sagemaker/endpoint:Endpoint", "llmops-qa-sm-endpoint") in _names(added)
    assert {r.type for r, _ in changed.values()} <= AGGREGATES


def test_a_version_bump_adds_versioned_models_and_configs_and_updates_the_endpoint_in_place(
    baseline: Graph, tmp_path: Path, stacks: dict[str, StackSettings]
) -> None:
    entries = models()
    variants = entries["chat-sm"]["serving"]["variants"]
    variants[1]["version"] = "v3"  # v2 -> v3, same weight, same weights
    versions = entries["chat-sm"]["versions"]
    versions["v3"] = versions.pop("v2")
    after = _run(tmp_path, stacks, entries)
    added, removed, changed = _diff(baseline, after)

    assert _names(added) == {
        (SM_MODEL, "llmops-chat-sm-model-v3"),
        ("llmops:aws/sagemaker:ModelVersion", "llmops-chat-sm-model-v3"),  # the version's own group
        (SM_CONFIG, "llmops-chat-sm-config-v1-v3"),
        ("aws:appautoscaling/target:Target", "llmops-chat-sm-scaling-v3"),
        ("aws:appautoscaling/policy:Policy", "llmops-chat-sm-scaling-policy-v3"),
    }
    assert _names(removed) == {
        (SM_MODEL, "llmops-chat-sm-model-v2"),
        ("llmops:aws/sagemaker:ModelVersion", "llmops-chat-sm-model-v2"),  # the version's own group
        (SM_CONFIG, "llmops-chat-sm-config-v1-v2"),
        ("aws:appautoscaling/target:Target", "llmops-chat-sm-scaling-v2"),
        ("aws:appautoscaling/policy:Policy", "llmops-chat-sm-scaling-policy-v2"),
    }
    # The Endpoint is the same resource with the same name, pointed at the new configuration.
    (endpoint_before,) = [r for r in baseline.of_type(SM_ENDPOINT) if r.name == "llmops-chat-sm-endpoint"]
    endpoint_before, endpoint_after = changed[endpoint_before.urn]
    assert endpoint_after.inputs["name"] == endpoint_before.inputs["name"]
    assert endpoint_after.inputs["endpointConfigName"].startswith("llmops-chat-sm-config-v1-v3")
    assert endpoint_after.inputs["deploymentConfig"]["blueGreenUpdatePolicy"]
    # The unchanged version's Model is untouched.
    assert not any(r.type == SM_MODEL for r, _ in changed.values())
    # New models and configurations are created before the endpoint moves to them, and never
    # deleted first: the endpoint depends on the config, the config on the models.
    (config,) = [r for r in after.of_type(SM_CONFIG) if r.name.endswith("-config-v1-v3")]
    (model,) = [r for r in after.of_type(SM_MODEL) if r.name.endswith("-model-v3")]
    assert model.urn in config.dependencies and config.urn in endpoint_after.dependencies
    assert not (config.delete_before_replace or model.delete_before_replace or endpoint_after.delete_before_replace)
    assert "name" not in config.inputs and "name" not in model.inputs  # auto-named: replaceable side by side
    # Also changed: the endpoint's facts (its variants) and its SLO alarms (they watch the new variant).
    assert {r.type for r, _ in changed.values()} <= AGGREGATES | {
        SM_ENDPOINT,
        "llmops:model_endpoint:ModelEndpoint",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
    }


def test_a_traffic_split_changes_weights_and_replicas_only(
    baseline: Graph, tmp_path: Path, stacks: dict[str, StackSettings]
) -> None:
    entries = models()
    entries["chat-sm"]["serving"]["variants"][0]["weight"] = 50
    entries["chat-sm"]["serving"]["variants"][1]["weight"] = 50
    eks = entries["code-eks"]["serving"]["variants"]
    eks[0]["weight"], eks[1]["weight"] = 30, 60
    after = _run(tmp_path, stacks, entries)
    added, removed, changed = _diff(baseline, after)
    assert not added and not removed

    sagemaker = {(r.type, r.name): (r, a) for r, a in changed.values() if r.type == SM_CONFIG}
    (before_config, after_config) = sagemaker[(SM_CONFIG, "llmops-chat-sm-config-v1-v2")]
    weights = {v["variantName"]: v["initialVariantWeight"] for v in after_config.inputs["productionVariants"]}
    assert weights == {"v1": 50, "v2": 50}
    strip = [
        {k: v for k, v in p.items() if k != "initialVariantWeight"} for p in before_config.inputs["productionVariants"]
    ]
    assert strip == [
        {k: v for k, v in p.items() if k != "initialVariantWeight"} for p in after_config.inputs["productionVariants"]
    ]

    replicas = {
        a.inputs["metadata"]["name"]: a.inputs["spec"]["replicas"]
        for r, a in changed.values()
        if r.type == "kubernetes:apps/v1:Deployment"
    }
    # staging runs code-eks at 3 replicas: 30/60/10 -> 1/2/1 (was 2/1/1).
    assert replicas == {"code-eks-a": 1, "code-eks-b": 2}
    kinds = {r.type for r, _ in changed.values()}
    assert kinds <= AGGREGATES | {
        SM_CONFIG,
        SM_ENDPOINT,
        "kubernetes:apps/v1:Deployment",
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
        "llmops:model_endpoint:ModelEndpoint",
    }
    assert not any(r.type == SM_MODEL for r, _ in changed.values())
    # On EKS the route's weights are the split (the replicas above are capacity only).
    (route,) = [a for r, a in changed.values() if r.type == "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"]
    assert [b["weight"] for b in route.inputs["spec"]["rules"][-1]["backendRefs"]] == [30, 60, 10]


def test_removing_a_model_removes_only_its_resources(
    baseline: Graph, tmp_path: Path, stacks: dict[str, StackSettings]
) -> None:
    entries = models()
    del entries["code-eks"]
    after = _run(tmp_path, stacks, entries)
    added, removed, changed = _diff(baseline, after)
    assert not added
    # code-eks was the only model on EKS: the cluster and what runs on it (llmops.footprint), the
    # in-cluster Prometheus included, go with it.
    cluster_urn = "$llmops:gpu_cluster:GpuCluster$"
    assert any(r.type == "aws:eks/cluster:Cluster" for r in baseline.resources if r.urn in removed)
    others = [
        urn
        for urn in removed
        if "code-eks" not in urn.split("::")[3]
        and cluster_urn not in urn
        and not urn.split("::")[2].split("$")[-1].startswith(("kubernetes:", "llmops:aws/monitoring:PrometheusStack"))
    ]
    assert removed and not others, others
    assert ("kubernetes:core/v1:Service", "llmops-code-eks-svc") in _names(removed)
    assert ("llmops:training_job:TrainingJob", "llmops-code-eks-training") in _names(removed)
    assert {r.type for r, _ in changed.values()} <= AGGREGATES


def test_a_shadow_adds_its_model_and_a_shadow_variant_sampling_its_percent(
    baseline: Graph, tmp_path: Path, stacks: dict[str, StackSettings]
) -> None:
    entries = models()
    serving = entries["chat-sm"]["serving"]
    serving["variants"] = [{"version": "v1", "weight": 100}]
    serving["shadow"] = {"version": "v3", "percent": 25}
    entries["chat-sm"]["versions"]["v3"] = hub_weights("chat-sm", SHA_B)
    after = _run(tmp_path, stacks, entries)
    configs = [r for r in after.resources if r.type == SM_CONFIG and r.name.startswith("llmops-chat-sm-config")]
    assert len(configs) == 1
    config = configs[0].inputs
    assert [(p["variantName"], p["initialVariantWeight"]) for p in config["productionVariants"]] == [("v1", 100)]
    (shadow,) = config["shadowProductionVariants"]
    # SageMaker copies shadow weight / production weight of the requests: 25 of 100.
    assert (shadow["variantName"], shadow["initialVariantWeight"], shadow["initialInstanceCount"]) == ("v3", 25, 1)
    models_by_name = {r.name: r for r in after.resources if r.type == SM_MODEL}
    assert "llmops-chat-sm-model-v3" in models_by_name
    assert models_by_name["llmops-chat-sm-model-v3"].inputs["tags"]["version"] == "v3"


def test_a_shadow_beside_a_canary_is_refused_on_sagemaker(tmp_path: Path, stacks: dict[str, StackSettings]) -> None:
    entries = models()
    entries["chat-sm"]["serving"]["shadow"] = {"version": "v3", "percent": 25}
    entries["chat-sm"]["versions"]["v3"] = hub_weights("chat-sm", SHA_B)
    with pytest.raises(Exception, match="SageMaker mirrors shadow traffic from one production variant"):
        _run(tmp_path, stacks, entries)
