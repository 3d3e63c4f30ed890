"""The AWS resource graph of the whole Platform, per shipped AWS stack, for a fixture registry.

Proves, from what the program registers under Pulumi mocks (the inputs a real
`pulumi up` would send): sizing reaches instance types and GPU counts; registry
weights and replica bounds reach variants, Deployments and autoscalers; SLOs
reach alarm thresholds; no IAM statement grants everything; buckets, volumes,
keys and secrets are encrypted; nothing is reachable from the internet; every
taggable resource carries the ownership tags; generated names fit AWS limits;
children hang under their components; and the policy pack finds nothing wrong.

Cannot prove: that AWS accepts these inputs (no provider runs), that the pinned
images and charts exist, or anything about runtime behaviour.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pulumi_aws
import pytest

from components.aws.eks_endpoint import variant_replicas
from components.aws.naming import sagemaker_endpoint_name, slo_alarm_name
from components.aws.placement import pool_for
from components.context import REQUIRED_TAGS, StackContext
from llmops.catalog import has_instance_storage
from llmops.naming import inference_component_name
from llmops.observability import prometheus_rules
from llmops.registry import Deployment, Registry
from llmops.settings import StackSettings
from llmops.sizing import SizingResult, size_for_stack
from policies.evaluate import Resource, evaluate

from .conftest import AWS_STACKS
from .fixtures import LONG_NAME, with_staging_records
from .harness import REPO, Graph, Registered

pytestmark = pytest.mark.mocks

SM_MODEL = "aws:sagemaker/model:Model"
SM_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
SM_ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
SCALING_TARGET = "aws:appautoscaling/target:Target"
SCALING_POLICY = "aws:appautoscaling/policy:Policy"
COMPONENT = "pulumi-python:dynamic/aws/sagemaker:InferenceComponent"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SERVICE = "kubernetes:core/v1:Service"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ENDPOINT_COMPONENT = "llmops:model_endpoint:ModelEndpoint"


def _deployments(registry: Registry, settings: StackSettings) -> list[Deployment]:
    from llmops.sizing import stack_deployments

    return stack_deployments(registry, settings)  # as the stack serves them (dev's scale-to-zero default)


def _platform_of(dep: Deployment, settings: StackSettings) -> str:
    return dep.platform or settings.default_endpoint_platform


def _sizing(dep: Deployment, settings: StackSettings, root: Path) -> SizingResult:
    return size_for_stack(dep, settings, root / "models")


def _under(graph: Graph, component_type: str, component_name: str) -> list[Registered]:
    """Resources anywhere below one component."""
    return [
        r
        for r in graph.resources
        if any(a.type == component_type and a.name == component_name for a in graph.ancestors(r))
    ]


def _of(resources: list[Registered], type_: str) -> list[Registered]:
    return [r for r in resources if r.type == type_]


def _documents(graph: Graph) -> list[tuple[Registered, dict[str, Any]]]:
    """Every IAM-style JSON document the program writes (identity, trust, key and bucket policies)."""
    out = []
    for r in graph.resources:
        for key in ("policy", "assumeRolePolicy"):
            value = r.inputs.get(key)
            if isinstance(value, str) and value.strip().startswith("{"):
                out.append((r, json.loads(value)))
    return out


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_instance_types_and_gpu_counts_follow_sizing(
    stack: str,
    graphs: dict[str, Graph],
    stacks: dict[str, StackSettings],
    fixture_registry: Registry,
    fixture_root: Path,
) -> None:
    graph, settings = graphs[stack], stacks[stack]
    ctx = StackContext(stack, settings, fixture_root)
    for dep in _deployments(fixture_registry, settings):
        sizing = _sizing(dep, settings, fixture_root)
        children = _under(graph, ENDPOINT_COMPONENT, f"llmops-{dep.name}")
        if _platform_of(dep, settings) == "sagemaker":
            (config,) = _of(children, SM_CONFIG)
            assert {v["instanceType"] for v in config.inputs["productionVariants"]} == {sizing.instance_type}
            models = _of(children, SM_MODEL)
            assert len(models) == len(dep.variants)
            for model in models:
                assert model.inputs["primaryContainer"]["environment"]["SM_NUM_GPUS"] == str(sizing.tensor_parallel)
        else:
            pool = pool_for(ctx, sizing.instance_type, sizing.tensor_parallel, sizing.gpu_memory_gib, what=dep.name)
            assert sizing.instance_type in pool.instance_types
            for deployment in _of(children, DEPLOYMENT):
                pod = deployment.inputs["spec"]["template"]["spec"]
                (server,) = pod["containers"]
                for bound in ("requests", "limits"):
                    assert server["resources"][bound]["nvidia.com/gpu"] == str(sizing.tensor_parallel)
                assert pod["nodeSelector"] == pool.selector
                assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in pod[
                    "tolerations"
                ]
    # Every GPU pool of the stack is one node group carrying the pool's selector and the GPU taint.
    groups = {g.inputs["labels"].get("llmops.io/pool"): g for g in graph.of_type(NODE_GROUP)}
    for pool in settings.cluster.gpu_pools:
        group = groups[pool.name]
        assert group.inputs["instanceTypes"] == pool.instance_types
        assert group.inputs["labels"] == pool.selector
        assert group.inputs["capacityType"] == ("SPOT" if pool.spot else "ON_DEMAND")
        assert group.inputs["amiType"] == "AL2023_x86_64_NVIDIA"
        assert {k: int(v) for k, v in group.inputs["scalingConfig"].items()} == {
            "minSize": pool.min_size,
            "maxSize": pool.max_size,
            "desiredSize": pool.desired_size,
        }
        assert group.inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_variant_weights_and_autoscaling_bounds_follow_the_registry(
    stack: str, graphs: dict[str, Graph], stacks: dict[str, StackSettings], fixture_registry: Registry
) -> None:
    graph, settings = graphs[stack], stacks[stack]
    for dep in _deployments(fixture_registry, settings):
        children = _under(graph, ENDPOINT_COMPONENT, f"llmops-{dep.name}")
        if dep.scale_to_zero is not None:  # one inference component: tests/mocks/test_scale_to_zero_aws.py
            (target,) = _of(children, SCALING_TARGET)
            assert stack == "dev" and target.inputs["scalableDimension"].startswith("sagemaker:inference-component:")
            continue
        if _platform_of(dep, settings) == "sagemaker":
            (config,) = _of(children, SM_CONFIG)
            weights = {v["variantName"]: int(v["initialVariantWeight"]) for v in config.inputs["productionVariants"]}
            assert weights == {re.sub(r"[^a-z0-9-]", "-", v.version.lower()): v.weight for v in dep.variants}
            counts = {int(v["initialInstanceCount"]) for v in config.inputs["productionVariants"]}
            assert counts == {dep.min_replicas}
            targets = _of(children, SCALING_TARGET)
            assert len(targets) == len(dep.variants)
            for target in targets:
                assert (int(target.inputs["minCapacity"]), int(target.inputs["maxCapacity"])) == (
                    dep.min_replicas,
                    dep.max_replicas,
                )
                assert target.inputs["scalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
            for policy in _of(children, SCALING_POLICY):
                tracking = policy.inputs["targetTrackingScalingPolicyConfiguration"]
                assert tracking["predefinedMetricSpecification"]["predefinedMetricType"] == (
                    "SageMakerVariantInvocationsPerInstance"
                )
                assert tracking["targetValue"] == dep.model.serving.autoscaling.target_invocations_per_replica
        else:
            replicas = {d.inputs["metadata"]["labels"]["llmops.io/version"]: int(d.inputs["spec"]["replicas"])
                        for d in _of(children, DEPLOYMENT)}  # fmt: skip
            assert replicas == {v.version: variant_replicas(v.weight, dep.min_replicas) for v in dep.variants}
            # Replicas split in the ratio of the weights (each non-zero weight gets one at least).
            served = {v.version: v.weight for v in dep.variants if v.weight}
            assert all(replicas[v] >= 1 for v in served)
            heaviest = max(served, key=lambda v: served[v])
            assert all(replicas[heaviest] >= replicas[v] for v in served)
            for hpa in _of(children, HPA):
                version = hpa.inputs["metadata"]["labels"]["llmops.io/version"]
                spec = hpa.inputs["spec"]
                assert int(spec["minReplicas"]) == replicas[version]
                assert replicas[version] <= int(spec["maxReplicas"]) <= dep.max_replicas


def test_weights_turn_into_replica_ratios() -> None:
    assert [variant_replicas(w, 10) for w in (60, 30, 10)] == [6, 3, 1]
    assert [variant_replicas(w, 3) for w in (90, 10, 0)] == [3, 1, 0]


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_alarm_thresholds_follow_the_slos(
    stack: str,
    graphs: dict[str, Graph],
    stacks: dict[str, StackSettings],
    fixture_registry: Registry,
    fixture_root: Path,
) -> None:
    graph, settings = graphs[stack], stacks[stack]
    ctx = StackContext(stack, settings, fixture_root)
    alarms = {a.inputs["name"]: a for a in graph.of_type(ALARM)}
    rules = {
        r.inputs["metadata"]["name"]: r for r in graph.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    }
    for dep in _deployments(fixture_registry, settings):
        slo = dep.model.monitoring.slo
        if _platform_of(dep, settings) == "sagemaker":
            endpoint = sagemaker_endpoint_name(ctx, dep.name)
            # An inference component's GPU memory is normalized to its own GPUs (0-100).
            gpus = 1 if dep.scale_to_zero else _sizing(dep, settings, fixture_root).gpus
            latency = alarms[slo_alarm_name(endpoint, "p95-latency")]
            errors = alarms[slo_alarm_name(endpoint, "error-rate")]
            memory = alarms[slo_alarm_name(endpoint, "gpu-memory")]
            # ModelLatency is reported in microseconds.
            assert latency.inputs["threshold"] == pytest.approx(slo.p95_latency_ms * 1000)
            assert {q["metric"]["stat"] for q in latency.inputs["metricQueries"] if "metric" in q} == {"p95"}
            assert {q["metric"]["metricName"] for q in latency.inputs["metricQueries"] if "metric" in q} == {
                "ModelLatency"
            }
            assert errors.inputs["threshold"] == pytest.approx(slo.error_rate)
            names = {q["metric"]["metricName"] for q in errors.inputs["metricQueries"] if "metric" in q}
            assert names == {"Invocation5XXErrors", "Invocations"}
            assert memory.inputs["threshold"] == pytest.approx(slo.gpu_memory_utilization * 100 * gpus)
            for alarm in (latency, errors, memory):
                dims = [q["metric"]["dimensions"] for q in alarm.inputs["metricQueries"] if "metric" in q]
                if dep.scale_to_zero:  # SageMaker reports a component's series by its name
                    assert {d["InferenceComponentName"] for d in dims} == {inference_component_name(endpoint)}
                else:
                    assert {d["EndpointName"] for d in dims} == {endpoint}
                assert alarm.inputs["alarmActions"] and alarm.inputs["comparisonOperator"] == "GreaterThanThreshold"
        else:
            rule = rules[f"llmops-slo-{dep.name}"]
            assert rule.inputs["spec"] == prometheus_rules([dep], runtime_metrics="vllm")
            exprs = [r["expr"] for r in rule.inputs["spec"]["groups"][0]["rules"]]
            assert exprs[0].endswith(f"> {slo.p95_latency_ms:g}")
            assert exprs[1].endswith(f"> {slo.error_rate:g}")
            assert exprs[2].endswith(f"> {slo.gpu_memory_utilization:g}")


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_endpoints_roll_back_on_their_own_slo_alarms(
    stack: str, graphs: dict[str, Graph], stacks: dict[str, StackSettings]
) -> None:
    graph = graphs[stack]
    alarm_names = {a.inputs["name"] for a in graph.of_type(ALARM)}
    endpoints = graph.of_type(SM_ENDPOINT)
    assert endpoints
    components = {c.inputs["endpoint_name"]: c for c in graph.of_type(COMPONENT)}
    for endpoint in endpoints:
        if endpoint.inputs["name"] in components:  # a new version rolls through the inference component
            rollback = set(components[endpoint.inputs["name"]].inputs["rollback_alarms"])
            assert stack == "dev" and "deploymentConfig" not in endpoint.inputs
            assert rollback and rollback <= alarm_names
            continue
        config = endpoint.inputs["deploymentConfig"]
        rollback = {a["alarmName"] for a in config["autoRollbackConfiguration"]["alarms"]}
        assert rollback and rollback <= alarm_names
        routing = config["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
        assert routing["type"] == ("CANARY" if stacks[stack].production else "LINEAR")


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_no_iam_statement_allows_every_action_on_every_resource(stack: str, graphs: dict[str, Graph]) -> None:
    documents = _documents(graphs[stack])
    assert any(r.type == "aws:iam/rolePolicy:RolePolicy" for r, _ in documents)
    for resource, document in documents:
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement.get("Resource", [])
            resources = resources if isinstance(resources, list) else [resources]
            if statement["Effect"] != "Allow":
                continue
            assert not ("*" in actions and "*" in resources), f"{resource.name}: {statement}"
            if resource.type == "aws:iam/rolePolicy:RolePolicy":
                # Identity policies name their actions: no service-wide wildcards either.
                assert not any(a.endswith(":*") for a in actions), f"{resource.name}: {statement}"


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_every_bucket_volume_and_secret_is_encrypted(stack: str, graphs: dict[str, Graph]) -> None:
    graph = graphs[stack]
    sse = graph.of_type("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    encrypted = {
        r.parent for r in sse if r.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    }
    buckets = graph.of_type("aws:s3/bucket:Bucket")
    assert buckets and {b.urn for b in buckets} <= encrypted
    for obj in graph.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):
        assert obj.inputs["serverSideEncryption"] == "aws:kms" and obj.inputs["kmsKeyId"]
    for template in graph.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        assert all(m["ebs"]["encrypted"] == "true" for m in template.inputs["blockDeviceMappings"])
    (cluster,) = graph.of_type("aws:eks/cluster:Cluster")
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"]
    assert cluster.inputs["encryptionConfig"]["provider"]["keyArn"].startswith("arn:aws:kms:")
    for config in graph.of_type(SM_CONFIG):
        assert config.inputs["dataCaptureConfig"]["kmsKeyId"]
        types = {v["instanceType"] for v in config.inputs["productionVariants"]}
        # NVMe instance storage is hardware-encrypted; SageMaker refuses a key for it.
        assert ("kmsKeyArn" in config.inputs) == (not all(has_instance_storage(t) for t in types))
    for pipeline in graph.of_type("aws:sagemaker/pipeline:Pipeline"):
        steps = json.loads(pipeline.inputs["pipelineDefinition"])["Steps"]
        (train,) = [s for s in steps if s["Type"] == "Training"]
        assert train["Arguments"]["OutputDataConfig"]["KmsKeyId"]
        instance = train["Arguments"]["ResourceConfig"]["InstanceType"]
        assert ("VolumeKmsKeyId" in train["Arguments"]["ResourceConfig"]) == (not has_instance_storage(instance))
    for topic in graph.of_type("aws:sns/topic:Topic"):
        assert topic.inputs["kmsMasterKeyId"]
    for key in graph.of_type("aws:kms/key:Key"):
        assert key.inputs["enableKeyRotation"] is True
    (storage_class,) = graph.of_type("kubernetes:storage.k8s.io/v1:StorageClass")
    assert storage_class.inputs["parameters"]["encrypted"] == "true"
    assert storage_class.inputs["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_nothing_is_reachable_from_the_internet(
    stack: str, graphs: dict[str, Graph], stacks: dict[str, StackSettings]
) -> None:
    graph = graphs[stack]
    services = graph.of_type(SERVICE)
    assert services
    assert all(s.inputs["spec"]["type"] == "ClusterIP" for s in services)
    (cluster,) = graph.of_type("aws:eks/cluster:Cluster")
    # The API endpoint: reachable in the VPC, and from outside only from the configured networks.
    access = stacks[stack].cluster.endpoint_access
    assert cluster.inputs["vpcConfig"]["endpointPrivateAccess"] is True
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is (access.mode == "public")
    assert cluster.inputs["vpcConfig"].get("publicAccessCidrs") == (
        access.public_cidrs if access.mode == "public" else None
    )
    for block in graph.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        assert all(
            block.inputs[f] is True
            for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        )
    assert len(graph.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")) == len(
        graph.of_type("aws:s3/bucket:Bucket")
    )
    for subnet in graph.of_type("aws:ec2/subnet:Subnet"):
        assert subnet.inputs.get("mapPublicIpOnLaunch", False) is False
    for group in graph.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert not group.inputs.get("ingress")
    for model in graph.of_type(SM_MODEL):
        assert model.inputs["vpcConfig"]["subnets"] and model.inputs["vpcConfig"]["securityGroupIds"]
        env = model.inputs["primaryContainer"]["environment"]
        from_s3 = "modelDataSource" in model.inputs["primaryContainer"]
        assert env["HF_MODEL_ID"].startswith("/") == from_s3
        assert model.inputs["enableNetworkIsolation"] is from_s3
    for release in graph.of_type("kubernetes:helm.sh/v3:Release"):
        if release.inputs["name"] == "kube-prometheus-stack":
            grafana = release.inputs["values"]["grafana"]
            assert grafana["service"]["type"] == "ClusterIP"
            assert grafana["grafana.ini"]["auth"]["disable_login_form"] is True


def _taggable(type_: str) -> bool:
    """Whether the installed pulumi-aws resource class takes `tags` (read from its signature)."""
    import inspect

    _, module, cls = type_.split(":")
    resource = getattr(getattr(pulumi_aws, module.split("/")[0]), cls)
    return "tags" in inspect.signature(resource._internal_init).parameters


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_every_taggable_resource_carries_the_ownership_tags(
    stack: str, graphs: dict[str, Graph], stacks: dict[str, StackSettings], fixture_registry: Registry
) -> None:
    graph, env = graphs[stack], stacks[stack].environment
    owners = {m.name: m.owner for m in fixture_registry.models.values()}
    checked = 0
    for r in graph.resources:
        if r.type.startswith("aws:") and _taggable(r.type):
            tags = r.inputs.get("tags") or {}
        elif r.type.startswith("kubernetes:") and "metadata" in r.inputs and r.type != "pulumi:providers:kubernetes":
            tags = r.inputs["metadata"].get("labels") or {}
        else:
            continue
        checked += 1
        assert set(REQUIRED_TAGS) <= set(tags), f"{r.type} {r.name}: {tags}"
        assert tags["environment"] == env and tags["managed-by"] == "llmops"
        # A model's resources say whose they are: the model and its owning team.
        owner = next(
            (a.name.removeprefix("llmops-").removesuffix("-training") for a in graph.ancestors(r)
             if a.type in (ENDPOINT_COMPONENT, "llmops:training_job:TrainingJob")),
            None,
        )  # fmt: skip
        if owner is not None:
            assert (tags["model"], tags["team"]) == (owner, owners[owner]), f"{r.type} {r.name}"
    assert checked > 50


# AWS and Kubernetes limits on the names the program sets or lets the provider generate
# (pulumi-aws appends 8 characters to a logical name, pulumi-kubernetes 9).
NAME_LIMITS: dict[str, tuple[str, int]] = {
    "aws:s3/bucket:Bucket": ("bucket", 63),
    "aws:iam/role:Role": ("name", 64),
    "aws:sagemaker/model:Model": ("name", 63),
    SM_CONFIG: ("name", 63),
    SM_ENDPOINT: ("name", 63),
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": ("modelPackageGroupName", 63),
    "aws:sagemaker/pipeline:Pipeline": ("pipelineName", 256),
    "aws:eks/cluster:Cluster": ("name", 100),
    NODE_GROUP: ("nodeGroupName", 63),
    "aws:ec2/launchTemplate:LaunchTemplate": ("name", 128),
    "aws:ec2/securityGroup:SecurityGroup": ("name", 255),
    ALARM: ("name", 255),
    "aws:cloudwatch/dashboard:Dashboard": ("dashboardName", 255),
    "aws:sns/topic:Topic": ("name", 256),
    SCALING_POLICY: ("name", 256),
    "kubernetes:helm.sh/v3:Release": ("name", 53),
}
AUTONAME = {"aws": 8, "kubernetes": 9}


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_generated_names_respect_aws_limits(stack: str, graphs: dict[str, Graph]) -> None:
    graph = graphs[stack]
    assert any(LONG_NAME in r.name for r in graph.resources)  # the longest model name is in the graph
    for r in graph.resources:
        if r.type in NAME_LIMITS:
            prop, limit = NAME_LIMITS[r.type]
            physical = r.inputs.get(prop) or r.name + "x" * AUTONAME[r.type.split(":")[0]]
            assert len(physical) <= limit, f"{r.type} {r.name}: {physical!r} is over {limit}"
        if r.type.startswith("kubernetes:") and "metadata" in r.inputs:
            name = r.inputs["metadata"].get("name") or r.name + "x" * AUTONAME["kubernetes"]
            assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", name), f"{r.type} {name!r}"
            for value in r.inputs["metadata"].get("labels", {}).values():
                assert len(value) <= 63, f"{r.type} {r.name}: label value {value!r}"
    for config in graph.of_type(SM_CONFIG):
        for variant in config.inputs["productionVariants"]:
            assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", variant["variantName"])


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_children_hang_under_their_components_and_carry_their_names(stack: str, graphs: dict[str, Graph]) -> None:
    graph = graphs[stack]
    by_urn = graph.by_urn()
    (platform,) = graph.of_type("llmops:platform:Platform")
    assert platform.parent not in by_urn  # the stack itself
    for r in graph.resources:
        if r is platform:
            continue
        assert r.parent in by_urn, f"{r.type} {r.name} has no component parent"
        assert graph.ancestors(r)[-1] is platform
        components = [a for a in graph.ancestors(r) if a.type.startswith("llmops:")]
        if r.custom and not r.type.startswith("pulumi:providers:") and r.parent == components[0].urn:
            # Derived from a component's name (a resource group keeps the names its resources had
            # under the capability component); cut names keep its start and end in a stable hash.
            assert any(
                r.name.startswith(c.name) or re.fullmatch(rf"{re.escape(c.name[:20])}.*-[0-9a-f]{{8}}", r.name)
                for c in components
            ), f"{r.name} under {components[0].name}"
    # Kubernetes children go through the cluster's provider, not an ambient kubeconfig.
    (provider,) = graph.of_type("pulumi:providers:kubernetes")
    for r in graph.resources:
        if r.type.startswith("kubernetes:"):
            assert r.provider.startswith(provider.urn), f"{r.type} {r.name}"


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_the_policy_pack_passes_the_graph(
    stack: str, graphs: dict[str, Graph], stacks: dict[str, StackSettings]
) -> None:
    graph, env = graphs[stack], stacks[stack].environment
    config = json.loads((REPO / "policies" / "config" / f"{env}.json").read_text())
    resources = [
        Resource(
            type=r.type,
            name=r.name,
            props=with_staging_records(r.inputs),
            urn=r.urn,
            parent=r.parent or None,
            property_dependencies=r.property_dependencies,
        )
        for r in graph.resources
    ]
    violations = evaluate(resources, config, stack=stack)
    assert not violations, "\n".join(str(v) for v in violations)
