"""The real Pulumi program (`__main__.py`) runs under mocks for every shipped AWS stack file.

Feeds each `stacks/Pulumi.<stack>.yaml`'s config to the program the way the
engine does (structured values as JSON text) and runs it against the real
registry, so a `pulumi preview` of these stacks can fail only for want of AWS
credentials and provider plugins, never for a program error. Checks the graph
holds the platform's components and one endpoint per model the stack's
environment deploys, and that the policy pack, at the stack's enforcement
levels, finds nothing mandatory (a preview would stop on that).

Cannot prove: anything the AWS or Kubernetes providers would reject.
"""

from __future__ import annotations

import json

import pytest

from llmops.footprint import stack_footprint
from llmops.registry import load_registry
from llmops.settings import StackSettings
from llmops.sizing import stack_deployments
from policies.evaluate import Resource, evaluate

from .conftest import AWS_STACKS
from .fixtures import with_staging_records
from .harness import REPO, run_program

pytestmark = pytest.mark.mocks


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_the_program_runs_for_every_shipped_stack_file(stack: str, stacks: dict[str, StackSettings]) -> None:
    graph = run_program(stack)
    settings = stacks[stack]
    registry = load_registry(REPO / "models", stacks)
    deployed = {d.name for d in registry.deployed_to(settings.environment)}

    (platform,) = graph.of_type("llmops:platform:Platform")
    assert platform.inputs["environment"] == settings.environment
    assert platform.inputs["target"] == "aws"
    assert len(graph.of_type("llmops:gpu_cluster:GpuCluster")) == 1
    assert len(graph.of_type("llmops:monitoring:MonitoringStack")) == 1
    endpoints = {r.inputs["model"] for r in graph.of_type("llmops:model_endpoint:ModelEndpoint")}
    assert endpoints == deployed
    # Where a model serves on EKS, the stack's GPU pools become node groups, whatever the registry holds;
    # the shipped prod serves everything on SageMaker, so it has no cluster at all.
    footprint = stack_footprint(settings, stack_deployments(registry, settings))
    assert footprint.eks is (stack != "prod")
    assert len(graph.of_type("aws:eks/nodeGroup:NodeGroup")) == (1 + len(settings.cluster.gpu_pools)) * footprint.eks
    assert len(graph.of_type("aws:eks/cluster:Cluster")) == footprint.eks
    assert graph.of_type("aws:sns/topic:Topic")

    config = json.loads((REPO / "policies" / "config" / f"{settings.environment}.json").read_text())
    resources = [
        Resource(
            r.type,
            r.name,
            with_staging_records(r.inputs),
            r.urn,
            r.parent or None,
            property_dependencies=r.property_dependencies,
        )
        for r in graph.resources
    ]
    mandatory = [v for v in evaluate(resources, config, stack=stack) if v.level == "mandatory"]
    assert not mandatory, "\n".join(str(v) for v in mandatory)
