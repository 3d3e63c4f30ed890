"""EKS endpoints split traffic by the committed weights, whatever the replica counts.

Runs the Platform under mocks on a registry whose EKS model serves 90/10 with one replica
each. Proves: the HTTPRoute on the model's Service sends 90 and 10 to two per-version
Services, each of which selects only its own version's pods (so no request of one share
reaches the other version), and a request pinned by `x-llmops-version` reaches that
version only, while the Deployments keep one replica each; a staged
zero-weight variant gets no backend. Cannot prove: that a Gateway API implementation in
the cluster honours the route (README "Traffic weights on EKS"); the split's accuracy under
real traffic is the implementation's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.settings import StackSettings

from .fixtures import models, write_registry
from .harness import run_platform

pytestmark = pytest.mark.mocks

ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


def test_a_90_10_split_with_one_replica_each_routes_90_10(stacks: dict[str, StackSettings], tmp_path: Path) -> None:
    entry = models()["code-eks"]
    entry["serving"].update(min_replicas=1, max_replicas=2)
    entry["serving"]["variants"] = [
        {"version": "a", "weight": 90},
        {"version": "b", "weight": 10},
        {"version": "c", "weight": 0},
    ]
    entry["deployments"] = {"dev": {"min_replicas": 1, "max_replicas": 2}}
    registry = write_registry(tmp_path, {"code-eks": entry})
    graph = run_platform("dev", stacks["dev"], registry, tmp_path)

    deployments = {
        d.inputs["metadata"]["labels"]["llmops.io/version"]: d.inputs["spec"]
        for d in graph.of_type("kubernetes:apps/v1:Deployment")
        if d.inputs["metadata"]["labels"].get("app.kubernetes.io/name") == "code-eks"
    }
    assert {v: spec["replicas"] for v, spec in deployments.items()} == {"a": 1, "b": 1, "c": 0}

    (route,) = graph.of_type(ROUTE)
    (model_service,) = [
        s for s in graph.of_type("kubernetes:core/v1:Service") if s.inputs["metadata"]["name"] == "code-eks"
    ]
    assert route.inputs["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "code-eks", "port": 80}]
    *pinned, weighted = route.inputs["spec"]["rules"]
    backends = {b["name"]: b["weight"] for b in weighted["backendRefs"]}
    services = {
        s.inputs["metadata"]["name"]: s.inputs["spec"]["selector"] for s in graph.of_type("kubernetes:core/v1:Service")
    }
    # A request pinned to a version (the smoke check's header) reaches only that version's Service.
    assert {
        rule["matches"][0]["headers"][0]["value"]: services[rule["backendRefs"][0]["name"]]["llmops.io/version"]
        for rule in pinned
    } == {"a": "a", "b": "b"}
    by_version = {services[name]["llmops.io/version"]: weight for name, weight in backends.items()}
    assert by_version == {"a": 90, "b": 10}  # the committed weights, not 1:1 as the replicas are
    # Each backend selects exactly one version's pods, which that version's Deployment labels.
    for name in backends:
        version = services[name]["llmops.io/version"]
        assert deployments[version]["template"]["metadata"]["labels"].items() >= services[name].items()
        other = {v for v in deployments if v != version}
        assert all(deployments[v]["template"]["metadata"]["labels"]["llmops.io/version"] != version for v in other)
    # The model's Service (the users' URL) is what the route attaches to.
    assert "llmops.io/version" not in model_service.inputs["spec"]["selector"]
