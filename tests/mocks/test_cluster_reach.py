"""The EKS cluster CI can reach, and only the shared infrastructure a stack's models use.

Runs the Platform under mocks on fixture registries. Proves: the cluster authenticates by
access entries, with one for each CI role the bootstrap makes (deploy as cluster admin,
preview and drift reading, experiment viewing) and for each configured admin; the API
endpoint follows `cluster.endpointAccess`; a stack whose models all serve and train on
SageMaker gets no EKS cluster, node groups or Kubernetes resources (unless `cluster.create:
always`), and no NAT gateway when none of them downloads from the Hub, while SageMaker
endpoints still run in the VPC and capture into the stack's bucket.
Cannot prove: that AWS accepts the entries or that a runner reaches the endpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmops.settings import StackSettings

from .fixtures import models, write_registry
from .harness import Graph, run_platform

pytestmark = pytest.mark.mocks

POLICY = "arn:aws:eks::aws:cluster-access-policy/"


def _settings(stacks: dict[str, StackSettings], stack: str, **cluster: Any) -> StackSettings:
    data = stacks[stack].model_dump(by_alias=True)
    data["cluster"] = {**data["cluster"], **cluster}
    return StackSettings.model_validate(data)


def _access(graph: Graph) -> dict[str, str]:
    """principal ARN -> the access policy associated with its entry."""
    entries = {r.inputs["principalArn"] for r in graph.of_type("aws:eks/accessEntry:AccessEntry")}
    associations = graph.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert {a.inputs["principalArn"] for a in associations} == entries
    for a in associations:
        assert a.inputs["accessScope"] == {"type": "cluster"}
    return {a.inputs["principalArn"]: a.inputs["policyArn"].removeprefix(POLICY) for a in associations}


def test_ci_roles_and_admins_reach_the_cluster(
    stacks: dict[str, StackSettings], fixture_registry: Any, fixture_root: Path
) -> None:
    admin = "arn:aws:iam::123456789012:role/platform-admins"
    graph = run_platform("dev", _settings(stacks, "dev", admins=[admin]), fixture_registry, fixture_root)
    (cluster,) = graph.of_type("aws:eks/cluster:Cluster")
    assert cluster.inputs["accessConfig"]["authenticationMode"] == "API"
    assert cluster.inputs["accessConfig"]["bootstrapClusterCreatorAdminPermissions"] is False
    ci = "arn:aws:iam::123456789012:role/llmops-ci/llmops-ci-"
    assert _access(graph) == {
        f"{ci}deploy-dev": "AmazonEKSClusterAdminPolicy",
        f"{ci}preview": "AmazonEKSAdminViewPolicy",
        f"{ci}drift": "AmazonEKSAdminViewPolicy",
        f"{ci}experiment": "AmazonEKSViewPolicy",
        admin: "AmazonEKSClusterAdminPolicy",
    }
    # Kubernetes resources wait for the access entries: the provider depends on them.
    (provider,) = graph.of_type("pulumi:providers:kubernetes")
    associations = graph.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert {a.urn for a in associations} <= set(provider.dependencies)


def test_the_endpoint_access_follows_the_stack_setting(
    stacks: dict[str, StackSettings], fixture_registry: Any, fixture_root: Path
) -> None:
    default = run_platform("dev", stacks["dev"], fixture_registry, fixture_root)
    (cluster,) = default.of_type("aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is True  # GitHub-hosted runners reach it
    restricted = _settings(stacks, "dev", endpointAccess={"publicCidrs": ["203.0.113.0/24"]})
    (cluster,) = run_platform("dev", restricted, fixture_registry, fixture_root).of_type("aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    private = _settings(stacks, "dev", endpointAccess={"mode": "private"}, ciAccess=False)
    graph = run_platform("dev", private, fixture_registry, fixture_root)
    (cluster,) = graph.of_type("aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is False
    assert cluster.inputs["vpcConfig"]["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in cluster.inputs["vpcConfig"]
    assert _access(graph) == {}  # ciAccess: false and no admins


def _sagemaker_only(tmp_path: Path, stacks: dict[str, StackSettings], *, hub: bool) -> Any:
    entries = {name: m for name, m in models().items() if m["serving"].get("platform") != "eks"}
    entries = {n: m for n, m in entries.items() if (m.get("training") or {}).get("platform") != "eks"}
    assert entries and len(entries) < len(models())
    if not hub:
        for m in entries.values():
            m["versions"] = {
                v: {"s3": {"uri": f"s3://example-models/{m['name']}/{v}/", "version_id": "v1"}} for v in m["versions"]
            }
    return write_registry(tmp_path, entries)


@pytest.mark.parametrize("hub", [True, False])
def test_an_all_sagemaker_stack_has_no_cluster(stacks: dict[str, StackSettings], tmp_path: Path, hub: bool) -> None:
    registry = _sagemaker_only(tmp_path, stacks, hub=hub)
    settings = _settings(stacks, "staging", endpointAccess={"publicCidrs": ["203.0.113.0/24"]})
    graph = run_platform("staging", settings, registry, tmp_path)
    types = {r.type for r in graph.resources}
    assert "aws:eks/cluster:Cluster" not in types and "aws:eks/nodeGroup:NodeGroup" not in types
    assert not [t for t in types if t.startswith("kubernetes:") or t == "pulumi:providers:kubernetes"]
    # SageMaker still runs in the VPC and captures into the stack's bucket.
    models_ = graph.of_type("aws:sagemaker/model:Model")
    assert models_ and all(m.inputs["vpcConfig"]["subnets"] for m in models_)
    assert graph.of_type("aws:ec2/vpc:Vpc") and graph.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    # The Hub is on the internet: NAT only where a model downloads from it.
    assert bool(graph.of_type("aws:ec2/natGateway:NatGateway")) is hub
    assert bool(graph.of_type("aws:ec2/internetGateway:InternetGateway")) is hub
    for table in graph.of_type("aws:ec2/routeTable:RouteTable"):
        assert hub or table.inputs.get("routes", []) == []
    # A setting asks for the cluster anyway.
    kept = run_platform("staging", _settings(stacks, "staging", create="always"), registry, tmp_path)
    assert len(kept.of_type("aws:eks/cluster:Cluster")) == 1
    assert kept.of_type("aws:ec2/natGateway:NatGateway")


def test_the_experiment_role_may_query_prometheus_through_the_api_server_proxy_only(
    stacks: dict[str, StackSettings], fixture_registry: Any, fixture_root: Path
) -> None:
    """What `cost --measured` and `rightsize` need on EKS, and no more: the experiment role's entry
    carries the usage-readers group, bound to `get` on the proxy of the one Service (by the name the
    client's proxy path uses), and the serving scrape labels runtime series with their version."""
    from components.aws.monitoring import PROMETHEUS_URL
    from llmops.usage.cluster_access import USAGE_READERS, proxy_path

    graph = run_platform("dev", stacks["dev"], fixture_registry, fixture_root)
    groups = {
        r.inputs["principalArn"].rsplit("/", 1)[-1]: r.inputs.get("kubernetesGroups")
        for r in graph.of_type("aws:eks/accessEntry:AccessEntry")
    }
    assert groups["llmops-ci-experiment"] == [USAGE_READERS]
    assert all(g in (None, []) for name, g in groups.items() if name != "llmops-ci-experiment")
    (role,) = graph.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
    (rule,) = role.inputs["rules"]
    # The API server authorizes services/proxy by the path's `<service>:<port>` segment.
    proxied = proxy_path(PROMETHEUS_URL).split("/services/", 1)[1].removesuffix("/proxy")
    assert rule["resources"] == ["services/proxy"] and rule["verbs"] == ["get"] and proxied in rule["resourceNames"]
    assert role.inputs["metadata"]["namespace"] == proxy_path(PROMETHEUS_URL).split("/")[4]
    (binding,) = graph.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert binding.inputs["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": USAGE_READERS}
    ]
    monitors = {
        m.inputs["metadata"]["name"]: m for m in graph.of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    }
    (endpoint,) = monitors["llmops-serving"].inputs["spec"]["endpoints"]
    labels = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert labels["version"] == ["__meta_kubernetes_pod_label_llmops_io_version"]
