"""An AWS review stack (`pr-<N>-<env>`), as `llmops ci review open --environment staging` writes it, under mocks.

Proves, from what the real `__main__.py` registers for the stack file `open` writes
(staging's settings + `llmops:models` + `llmops:reviewStack`): only the changed model's
endpoint exists (staging's other models are absent); it runs on the smallest allowed
catalog instance that fits, even where the registry pins a bigger one for staging (every
allowed instance it fits on is cheaper); every variant has exactly one replica and its
autoscaler cannot grow; every taggable resource and Kubernetes object carries the review
tags `pr`, `head-sha`, `created-at`, `ttl`; fixed physical names are scoped by the review
stack, so they never collide with staging's own; staging's policy pack passes it, and
its cost facts count only the changed model.

Cannot prove: that AWS accepts these inputs (no provider runs) or that the endpoint serves
(no AWS account is reachable from here).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from llmops.catalog import load_catalog
from llmops.ci.mock_runtime import run_program
from llmops.ci.review import REVIEW_IDLE_SECONDS, write_aws_stack_file
from llmops.registry import SCHEMA_HEADER, load_registry
from llmops.settings import ReviewStackSettings, load_all_stacks, load_stack_settings
from llmops.sizing import SizingError, size_deployment, stack_allowed
from policies.evaluate import Resource, evaluate

from .harness import REPO, Graph

pytestmark = pytest.mark.mocks

MODEL, OTHERS = "llama-3-1-8b-instruct", ("llama-3-1-70b-instruct", "mistral-7b-instruct")
PINNED = "ml.g5.12xlarge"  # staging pins this instance for MODEL in the copy below; review ignores it
REVIEW = ReviewStackSettings(pr=7, head_sha="0123456789abcdef" * 2 + "01234567", created_at="20261130T120000Z", ttl=24)
STACK = "pr-7-staging"
ENDPOINT_COMPONENT = "llmops:model_endpoint:ModelEndpoint"
SCALE_TO_ZERO = "llmops:aws/sagemaker:ScaleToZeroComponent"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the program, registry and stack files, with MODEL pinned to a large instance and 3 replicas."""
    root = tmp_path_factory.mktemp("review-aws")
    shutil.copy(REPO / "__main__.py", root / "__main__.py")
    shutil.copytree(REPO / "models", root / "models")
    shutil.copytree(REPO / "stacks", root / "stacks")
    path = root / "models" / f"{MODEL}.yaml"
    entry = yaml.safe_load(path.read_text())
    entry["deployments"]["staging"].update({"instance": PINNED, "min_replicas": 2, "max_replicas": 3})
    path.write_text(SCHEMA_HEADER + "\n" + yaml.safe_dump(entry, sort_keys=False))
    write_aws_stack_file(root, root / "stacks" / "Pulumi.staging.yaml", STACK, [MODEL], REVIEW)
    return root


@pytest.fixture(scope="module")
def graph(root: Path) -> Graph:
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return run_program(root, STACK)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def test_the_stack_file_is_staging_narrowed_to_the_changed_model(root: Path) -> None:
    settings = load_stack_settings(root / "stacks" / f"Pulumi.{STACK}.yaml")
    staging = load_stack_settings(root / "stacks" / "Pulumi.staging.yaml")
    assert settings.review_stack == REVIEW and settings.models == [MODEL]
    assert (settings.environment, settings.region, settings.policy) == (
        staging.environment,
        "us-east-1",
        staging.policy,
    )
    assert not settings.review.enabled  # a review stack opens no review stacks of its own
    raw = yaml.safe_load((root / "stacks" / f"Pulumi.{STACK}.yaml").read_text())
    assert raw["secretsprovider"] == "awskms://alias/llmops-staging?region=us-east-1"


def test_only_the_changed_model_is_served(graph: Graph) -> None:
    endpoints = {r.name for r in graph.of_type(ENDPOINT_COMPONENT)}
    assert endpoints == {f"llmops-{MODEL}"}
    models = {(r.inputs.get("tags") or {}).get("model") for r in graph.resources if r.type.startswith("aws:")}
    assert MODEL in models and not models & set(OTHERS)


def test_the_endpoint_runs_on_the_smallest_instance_that_fits(root: Path, graph: Graph) -> None:
    (config,) = graph.of_type("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    chosen = {v["instanceType"] for v in config.inputs["productionVariants"]}
    assert len(chosen) == 1 and PINNED not in chosen
    (instance,) = chosen
    settings = load_stack_settings(root / "stacks" / f"Pulumi.{STACK}.yaml")
    registry = load_registry(root / "models", load_all_stacks(root / "stacks"))
    deployment = registry.models[MODEL].deployment("staging")
    catalog = load_catalog()
    allowed = stack_allowed(deployment, settings) or []
    assert instance in allowed
    fitting = []
    for candidate in allowed:  # every allowed instance the model fits on, sized as the program sizes
        try:
            size_deployment(dataclasses.replace(deployment, instance=candidate), root / "models", "sagemaker")
        except SizingError:
            continue
        fitting.append(candidate)
    assert instance in fitting and PINNED in fitting and len(fitting) > 1
    assert all(catalog.get(instance).hourly_usd <= catalog.get(t).hourly_usd for t in fitting), (instance, fitting)


def test_every_variant_has_exactly_one_replica(graph: Graph) -> None:
    (config,) = graph.of_type("aws:sagemaker/endpointConfiguration:EndpointConfiguration")
    assert len(config.inputs["productionVariants"]) == 2  # staging serves v1 and v2
    assert {int(v["initialInstanceCount"]) for v in config.inputs["productionVariants"]} == {1}
    targets = graph.of_type("aws:appautoscaling/target:Target")
    assert targets and {(int(t.inputs["minCapacity"]), int(t.inputs["maxCapacity"])) for t in targets} == {(1, 1)}


def test_every_resource_carries_the_review_tags(graph: Graph) -> None:
    expected = {"pr": "7", "head-sha": REVIEW.head_sha, "created-at": "20261130T120000Z", "ttl": "24"}
    tagged = [r for r in graph.resources if r.type.startswith("aws:") and "tags" in r.inputs]
    labelled = [
        r
        for r in graph.resources
        if r.type.startswith("kubernetes:") and (r.inputs.get("metadata") or {}).get("labels")
    ]
    assert len(tagged) > 10
    for r in tagged:
        assert expected.items() <= dict(r.inputs["tags"]).items(), f"{r.type} {r.name}: {r.inputs['tags']}"
    for r in labelled:
        assert expected.items() <= dict(r.inputs["metadata"]["labels"]).items(), f"{r.type} {r.name}"


def test_fixed_names_are_the_review_stacks_own(graph: Graph) -> None:
    (endpoint,) = graph.of_type("aws:sagemaker/endpoint:Endpoint")
    assert endpoint.inputs["name"] == f"llmops-{STACK}-{MODEL}"  # staging's is llmops-staging-<model>
    for dashboard in graph.of_type("aws:cloudwatch/dashboard:Dashboard"):
        assert dashboard.inputs["dashboardName"] == f"llmops-{STACK}"


def test_the_policy_pack_passes_the_review_stack(graph: Graph) -> None:
    """Staging's policies (instance allowlist, quotas, budget, tags, encryption) judge it as they judge staging."""
    config = json.loads((REPO / "policies" / "config" / "staging.json").read_text())
    resources = [
        Resource(
            type=r.type,
            name=r.name,
            props=r.inputs,
            urn=r.urn,
            parent=r.parent or None,
            property_dependencies=r.property_dependencies,
        )
        for r in graph.resources
    ]
    violations = evaluate(resources, config, stack=STACK)
    assert not violations, "\n".join(str(v) for v in violations)
    (platform,) = graph.of_type("llmops:platform:Platform")
    # Its cost is its own: one small instance for the changed model, not staging's whole bill.
    assert [line["name"] for line in platform.inputs["costTop"] if line["kind"] == "endpoint"] == [MODEL]


def test_a_review_stack_scales_to_zero_what_its_platform_can(root: Path, graph: Graph) -> None:
    """The file carries the review default. MODEL's staging split (v1 90 / v2 10) cannot be one
    inference component, so it keeps model variants; a one-version model scales to zero."""
    settings = load_stack_settings(root / "stacks" / f"Pulumi.{STACK}.yaml")
    assert settings.scale_to_zero.default_idle_seconds == REVIEW_IDLE_SECONDS and settings.allows_scale_to_zero
    assert not graph.of_type(SCALE_TO_ZERO)

    import asyncio

    single = "llama-3-1-70b-instruct"  # one version in staging
    write_aws_stack_file(root, root / "stacks" / "Pulumi.staging.yaml", "pr-8-staging", [single], REVIEW)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        other = run_program(root, "pr-8-staging")
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    (group,) = other.of_type(SCALE_TO_ZERO)
    assert group.name == f"llmops-{single}"
    (tracking,) = [
        p.inputs["targetTrackingScalingPolicyConfiguration"]
        for p in other.children_of(group.urn)
        if p.type == "aws:appautoscaling/policy:Policy" and p.inputs["policyType"] == "TargetTrackingScaling"
    ]
    assert tracking["scaleInCooldown"] == REVIEW_IDLE_SECONDS
