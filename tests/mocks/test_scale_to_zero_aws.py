"""Scale to zero on SageMaker: the resource graph of an inference-component endpoint.

Runs the shipped program (dev, staging, prod) and the fixture registry under mocks.
Proves: in dev, which scales to zero by default, each SageMaker endpoint serving one
version is an inference-component endpoint: a configuration naming no model, with the
execution role and managed instance scaling down to 0 instances; one inference component
(the dynamic provider) carrying the version's Model; copies as a scalable target with
minimum 0, a target-tracking policy whose scale-in cooldown is the idle time, and a step
policy that adds one copy, fired by the `NoCapacityInvocationFailures` alarm on that
component; the endpoint keeps its URN and physical name, and its stack output names the
component. An EKS endpoint and a SageMaker endpoint with a traffic split in dev stay as
they are; staging and prod (no default, prod refuses) build no component at all; a
registry asking scale to zero for an EKS endpoint is a located error.
Cannot prove: how SageMaker and Application Auto Scaling behave (the provider's calls are
tested against botocore's Stubber in tests/unit/test_inference_component.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.registry.problems import RegistryError
from llmops.settings import StackSettings

from .fixtures import LONG_NAME, models, write_registry
from .harness import Graph, Registered, run_platform, run_program

pytestmark = pytest.mark.mocks

COMPONENT = "pulumi-python:dynamic/aws/sagemaker:InferenceComponent"
GROUP = "llmops:aws/sagemaker:ScaleToZeroComponent"
CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
TARGET = "aws:appautoscaling/target:Target"
POLICY = "aws:appautoscaling/policy:Policy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DEV_IDLE = 1800  # stacks/Pulumi.dev.yaml: llmops:scaleToZero.defaultIdleSeconds


def _under(graph: Graph, group: Registered, type_: str) -> list[Registered]:
    return [r for r in graph.children_of(group.urn) if r.type == type_]


@pytest.fixture(scope="module")
def dev() -> Graph:
    return run_program("dev")


@pytest.mark.parametrize(("model", "version"), [("llama-3-1-8b-instruct", "v2"), ("qwen2-5-7b-instruct", "v1")])
def test_dev_sagemaker_endpoints_scale_to_zero_through_an_inference_component(
    dev: Graph, model: str, version: str
) -> None:
    name = f"llmops-{model}"
    endpoint_name = f"llmops-dev-{model}"
    component_name = f"{endpoint_name}-ic"
    (group,) = [g for g in dev.of_type(GROUP) if g.name == name]

    config = dev.one(CONFIG, f"{name}-config-components")
    (variant,) = config.inputs["productionVariants"]
    assert "modelName" not in variant and config.inputs["executionRoleArn"].endswith(f"{name}-role-a1b2c3d")
    assert variant["managedInstanceScaling"]["status"] == "ENABLED"
    assert variant["managedInstanceScaling"]["minInstanceCount"] == 0
    endpoint = dev.one("aws:sagemaker/endpoint:Endpoint", f"{name}-endpoint")
    assert endpoint.inputs["name"] == endpoint_name and "deploymentConfig" not in endpoint.inputs
    assert endpoint.inputs["endpointConfigName"].startswith(f"{name}-config-components")

    (ic,) = _under(dev, group, COMPONENT)
    assert ic.inputs["name"] == component_name and ic.inputs["endpoint_name"] == endpoint_name
    assert ic.inputs["variant_name"] == variant["variantName"]
    model_version = dev.one("aws:sagemaker/model:Model", f"{name}-model-{version}")
    assert ic.inputs["model_name"].startswith(model_version.name) and model_version.urn in ic.dependencies

    (target,) = _under(dev, group, TARGET)
    assert target.inputs["resourceId"] == f"inference-component/{component_name}"
    assert target.inputs["scalableDimension"] == "sagemaker:inference-component:DesiredCopyCount"
    assert (
        target.inputs["minCapacity"] == 0
        and target.inputs["maxCapacity"] == variant["managedInstanceScaling"]["maxInstanceCount"]
    )
    assert ic.urn in target.dependencies

    policies = {p.inputs["policyType"]: p for p in _under(dev, group, POLICY)}
    tracking = policies["TargetTrackingScaling"].inputs["targetTrackingScalingPolicyConfiguration"]
    assert tracking["scaleInCooldown"] == DEV_IDLE
    assert (
        tracking["predefinedMetricSpecification"]["predefinedMetricType"]
        == "SageMakerInferenceComponentInvocationsPerCopy"
    )
    step = policies["StepScaling"].inputs["stepScalingPolicyConfiguration"]
    assert step["adjustmentType"] == "ChangeInCapacity"
    assert step["stepAdjustments"] == [{"metricIntervalLowerBound": "0", "scalingAdjustment": 1}]
    assert all(p.inputs["resourceId"] == target.inputs["resourceId"] for p in policies.values())

    (alarm,) = _under(dev, group, ALARM)
    assert alarm.inputs["metricName"] == "NoCapacityInvocationFailures" and alarm.inputs["namespace"] == "AWS/SageMaker"
    assert alarm.inputs["dimensions"] == {"InferenceComponentName": component_name}
    assert alarm.inputs["threshold"] == 1 and alarm.inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm.inputs["alarmActions"] == [
        f"arn:aws:appautoscaling:us-east-1:123456789012:policy/{component_name}-wake"
    ]
    assert policies["StepScaling"].urn in alarm.dependencies
    # The SLO alarms watch the component: SageMaker reports an inference component's invocations by its name.
    latency = dev.one(ALARM, f"llmops-monitoring-{model}-latency").inputs["metricQueries"][0]["metric"]
    assert latency["dimensions"] == {"InferenceComponentName": component_name}
    memory = dev.one(ALARM, f"llmops-monitoring-{model}-gpu-memory").inputs["metricQueries"][0]["metric"]
    assert (memory["namespace"], memory["metricName"]) == (
        "/aws/sagemaker/InferenceComponents",
        "GPUMemoryUtilizationNormalized",
    )
    # Variant-level scaling is gone: the component's copies are what scales.
    assert not [r for r in dev.of_type(TARGET) if r.inputs["resourceId"].startswith(f"endpoint/{endpoint_name}/")]


def test_dev_endpoints_the_platform_cannot_scale_to_zero_stay_as_they_are(dev: Graph) -> None:
    groups = {g.name for g in dev.of_type(GROUP)}
    assert groups == {"llmops-llama-3-1-8b-instruct", "llmops-qwen2-5-7b-instruct"}  # not mistral (EKS)
    assert dev.of_type("kubernetes:apps/v1:Deployment"), "the EKS endpoint still serves on Deployments"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_staging_and_prod_build_no_inference_component(stack: str) -> None:
    graph = run_program(stack)
    assert not graph.of_type(GROUP) and not graph.of_type(COMPONENT)
    assert graph.of_type(TARGET) and all(t.inputs["minCapacity"] >= 1 for t in graph.of_type(TARGET))


def test_a_split_keeps_model_variants_and_the_longest_name_fits(
    tmp_path: Path, stacks: dict[str, StackSettings]
) -> None:
    """chat-sm splits 90/10 in dev: SageMaker serves a split only as model variants, so the default passes it by."""
    graph = run_platform("dev", stacks["dev"], write_registry(tmp_path, models()), tmp_path)
    groups = {g.name for g in graph.of_type(GROUP)}
    assert groups == {f"llmops-{LONG_NAME}"}
    (ic,) = graph.of_type(COMPONENT)
    assert len(ic.inputs["name"]) <= 63
    assert next(r for r in graph.of_type(TARGET) if "chat-sm" in r.inputs["resourceId"]).inputs["minCapacity"] == 1


def test_scale_to_zero_asked_for_an_eks_endpoint_is_a_located_error(tmp_path: Path) -> None:
    entries = models()
    entries["code-eks"]["deployments"]["dev"]["scale_to_zero"] = {"idle_seconds": 600}
    with pytest.raises(RegistryError) as caught:
        write_registry(tmp_path, entries)
    lines = (tmp_path / "models" / "code-eks.yaml").read_text().splitlines()
    line = 1 + next(i for i, text in enumerate(lines) if "scale_to_zero:" in text)
    assert f"models/code-eks.yaml:{line}: deployments.dev.scale_to_zero: scale to zero in 'dev': EKS endpoints" in str(
        caught.value
    )
