"""ModelEndpoint on SageMaker: versioned models, one endpoint, blue/green updates, autoscaling.

How a registry change reaches the endpoint without dropping traffic:
- every variant version is its own `aws.sagemaker.Model` (`<name>-model-<version>`) and
  every set of versions its own `EndpointConfiguration` (`<name>-config-<versions>`), so a
  version bump *adds* resources instead of replacing them;
- the `Endpoint` keeps its logical and physical name and is updated in place to the new
  configuration; SageMaker runs that update blue/green (canary in production, linear
  elsewhere) and rolls back on the endpoint's SLO alarms;
- Pulumi deletes the old Model and EndpointConfiguration only after the Endpoint update
  has finished, i.e. once the new fleet serves. Models and configurations are auto-named
  and `delete_before_replace=False`, so one replaced in place (a traffic split, a new
  image) is also created before the old one is deleted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws.account import account_id, partition
from components.aws.autoscaling import target_tracking
from components.aws.hub_token import TOKEN_ENV, token_value
from components.aws.iam import (
    ecr_pull,
    log_statement,
    metrics_statement,
    policy_document,
    s3_read,
    service_trust,
    statement,
)
from components.aws.naming import SLO_ALARMS, child, sagemaker_endpoint_name, slo_alarm_name
from components.aws.sagemaker_sdk import runtime_framework, serving_image
from components.aws.scale_to_zero import (
    ScaleToZeroComponent,
    ScaleToZeroComponentArgs,
)
from components.aws.storage import encrypted_bucket, kms_key
from components.context import StackContext, short_name
from components.contracts import ModelEndpointArgs, ModelEndpointOutputs
from components.grouping import ResourceGroup
from llmops.catalog import has_instance_storage
from llmops.naming import COMPONENT_VARIANT, variant_name
from llmops.registry import Deployment, Variant, WeightsSource
from llmops.sizing import SizingResult

MODEL_DIR = "/opt/ml/model"  # where SageMaker mounts model data
TGI_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
TGI_QUANTIZE = {"fp8": "fp8", "int8": "eetq", "int4": "bitsandbytes-nf4"}
LMI_QUANTIZE = {"fp8": "fp8", "int8": "bitsandbytes8", "int4": "awq"}
VPC_ENI_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
]


def container_environment(dep: Deployment, sizing: SizingResult, source: WeightsSource) -> dict[str, str]:
    """What the serving container needs: weights, GPUs (= tensor-parallel degree), token limits."""
    serving = dep.model.serving
    model_id = source.huggingface.repo if source.huggingface else MODEL_DIR
    max_input = max(1, serving.max_context - serving.max_new_tokens)
    env = {"HF_MODEL_ID": model_id, "SM_NUM_GPUS": str(sizing.tensor_parallel)}
    framework, _ = runtime_framework(serving.runtime)
    if framework == "huggingface-llm":
        env |= {
            "MAX_INPUT_LENGTH": str(max_input),
            "MAX_TOTAL_TOKENS": str(serving.max_context),
            "MAX_BATCH_PREFILL_TOKENS": str(max(max_input, 512)),
            "MAX_CONCURRENT_REQUESTS": str(serving.concurrency),
            "MESSAGES_API_ENABLED": "true",
        }
        if source.huggingface and source.huggingface.revision:
            env["HF_MODEL_REVISION"] = source.huggingface.revision
        if serving.dtype in TGI_DTYPES:
            env["DTYPE"] = TGI_DTYPES[serving.dtype]
        if serving.dtype in TGI_QUANTIZE:
            env["QUANTIZE"] = TGI_QUANTIZE[serving.dtype]
    else:
        env |= {
            "OPTION_ROLLING_BATCH": "vllm" if serving.runtime == "vllm" else "auto",
            "OPTION_TENSOR_PARALLEL_DEGREE": str(sizing.tensor_parallel),
            "OPTION_MAX_MODEL_LEN": str(serving.max_context),
            "OPTION_MAX_ROLLING_BATCH_SIZE": str(serving.concurrency),
            "OPTION_DTYPE": serving.dtype if serving.dtype in ("bf16", "fp16", "fp32") else "auto",
        }
        if source.huggingface and source.huggingface.revision:
            env["HF_REVISION"] = source.huggingface.revision
        if serving.dtype in LMI_QUANTIZE:
            env["OPTION_QUANTIZE"] = LMI_QUANTIZE[serving.dtype]
    return env


def _sources(dep: Deployment) -> dict[str, WeightsSource]:
    """The weights of each version the endpoint hosts: its variants, and its shadow."""
    sources = {v.version: dep.variant_source(v) for v in dep.variants}
    if dep.shadow is not None:
        if len(dep.variants) != 1:
            raise ValueError(
                f"{dep.name} in {dep.environment}: SageMaker mirrors shadow traffic from one production "
                f"variant, and this split has {len(dep.variants)} ({', '.join(v.version for v in dep.variants)}): "
                "finish the canary before adding a shadow, or drop the shadow"
            )
        sources[dep.shadow.version] = dep.variant_source(dep.shadow)
    return sources


def _weights_uri(args: ModelEndpointArgs, source: WeightsSource) -> pulumi.Input[str] | None:
    if source.s3:
        return source.s3.uri if source.s3.archive else source.s3.uri.rstrip("/") + "/"
    if source.huggingface:
        return None
    raise ValueError(
        f"models/{args.deployment.name}.yaml: a SageMaker endpoint cannot serve local weights "
        f"({source.uri}); reference the trained artifact in S3 with source.s3 (the TrainingJob's "
        "artifact location) or a Hugging Face repository"
    )


def build_sagemaker_endpoint(component: ModelEndpointOutputs, name: str, args: ModelEndpointArgs) -> None:
    """The AWS children of a SageMaker ModelEndpoint: an execution role, a model per version,
    the endpoint with its configuration, and autoscaling (per variant, or of its inference component)."""
    ctx, dep, sizing = args.context, args.deployment, args.sizing
    region = ctx.settings.region
    tags = ctx.tags(model=dep.model.name, team=dep.model.owner)
    group = pulumi.ResourceOptions(parent=component)
    image = serving_image(dep.model.serving.runtime, region, sizing.instance_type)
    sources = _sources(dep)
    weights = {version: _weights_uri(args, src) for version, src in sources.items()}
    key_arn, capture_bucket, capture_arn = _model_data(component, name, args, tags)
    cluster = args.cluster
    vpc = cluster if cluster is not None and cluster.private_subnet_ids is not None else None

    role = ExecutionRole(
        name,
        ExecutionRoleArgs(
            context=ctx,
            deployment=dep,
            image=image,
            weights=sorted({str(u) for u in weights.values() if u is not None}),
            key_arn=key_arn,
            capture_arn=capture_arn,
            in_vpc=vpc is not None and vpc.security_group_id is not None,
            known_arn=cluster.data_key_arn if cluster is not None else None,
        ),
        group,
    )
    vpc_config: dict[str, Any] | None = None
    if vpc is not None and vpc.security_group_id is not None:
        vpc_config = {"subnets": vpc.private_subnet_ids, "security_group_ids": [vpc.security_group_id]}
    environments = _environments(component, args, sources)
    models = {
        v: ModelVersion(
            child(name, f"model-{v}"),
            ModelVersionArgs(
                role_arn=role.arn,
                image=image,
                environment=environments[v],
                weights_uri=weights[v],
                vpc_config=vpc_config,
                tags={**tags, "version": v},
                depends_on=[role.policy],
            ),
            group,
        ).model
        for v in sources
    }
    endpoint, details = _serve(name, args, models, (key_arn, capture_bucket), role.arn, image, group)
    component.endpoint_name = endpoint.name
    component.url = endpoint.name.apply(
        lambda n: f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{n}/invocations"
    )
    component.details = pulumi.Output.from_input(details)


def _serve(
    name: str,
    args: ModelEndpointArgs,
    models: dict[str, aws.sagemaker.Model],
    data: tuple[pulumi.Output[str], pulumi.Output[str]],
    role_arn: pulumi.Output[str],
    image: str,
    group: pulumi.ResourceOptions,
) -> tuple[aws.sagemaker.Endpoint, dict[str, Any]]:
    """The endpoint and what scales it: autoscaling per variant, or, to scale to zero, one
    inference component (the configuration names no model) whose copies scale to 0 and back."""
    ctx, dep, sizing = args.context, args.deployment, args.sizing
    tags = ctx.tags(model=dep.model.name, team=dep.model.owner)
    components = dep.scale_to_zero is not None
    endpoint = ServingEndpoint(
        name,
        ServingEndpointArgs(ctx, dep, sizing, models, *data, tags, role_arn=role_arn if components else None),
        group,
    ).endpoint
    details = _details(dep, image, sizing.instance_type)
    if components:
        version = models[dep.variants[0].version]
        scaled = ScaleToZeroComponent(name, ScaleToZeroComponentArgs(ctx, dep, sizing, endpoint, version, tags), group)
        details |= {"inferenceComponent": scaled.component_name, "scaleToZero": {"minCopies": 0}}
    else:
        EndpointAutoscaling(name, EndpointAutoscalingArgs(ctx, dep, endpoint, tags), group)
    return endpoint, details


def _environments(
    component: ModelEndpointOutputs, args: ModelEndpointArgs, sources: dict[str, WeightsSource]
) -> dict[str, dict[str, pulumi.Input[str]]]:
    """Each version's container environment; a gated hub repository's also holds the token, as a
    secret (a SageMaker container takes plain variables only: components/aws/hub_token.py)."""
    token = token_value(args.context, component) if any(s.gated for s in sources.values()) else None
    out: dict[str, dict[str, pulumi.Input[str]]] = {}
    for version, source in sources.items():
        out[version] = dict(container_environment(args.deployment, args.sizing, source))
        if token is not None and source.gated:
            out[version][TOKEN_ENV] = token
    return out


def _details(dep: Deployment, image: str, instance_type: str) -> dict[str, Any]:
    details: dict[str, Any] = {
        "platform": "sagemaker",
        "image": image,
        "instanceType": instance_type,
        "variants": {variant_name(v.version): v.weight for v in dep.variants},
    }
    if dep.shadow is not None:
        details["shadow"] = {"variant": variant_name(dep.shadow.version), "percent": dep.shadow.percent}
    return details


@dataclass
class ExecutionRoleArgs:
    context: StackContext
    deployment: Deployment
    image: str  # the serving image the role may pull, and nothing else
    weights: list[str]  # s3:// prefixes of the variants' weights, read-only
    key_arn: pulumi.Input[str]
    capture_arn: pulumi.Input[str]  # the capture bucket: this model's prefix only
    in_vpc: bool  # models attach to the VPC's subnets: network-interface actions
    known_arn: pulumi.Output[str] | None = None  # an ARN in the deploying account, to name it without an invoke


class ExecutionRole(ResourceGroup):
    """The SageMaker execution role of one endpoint and its inline policy: pull the serving image,
    read the weights, write logs and metrics, capture into the model's own prefix."""

    arn: pulumi.Output[str]
    policy: aws.iam.RolePolicy

    def __init__(self, name: str, args: ExecutionRoleArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/sagemaker:ExecutionRole", name, opts)
        ctx, dep = args.context, args.deployment
        role = aws.iam.Role(
            child(name, "role", limit=64),
            assume_role_policy=service_trust("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of {dep.name} ({ctx.stack})",
            tags=ctx.tags(model=dep.model.name, team=dep.model.owner),
            opts=self.child_opts(),
        )
        self.policy = aws.iam.RolePolicy(
            f"{name}-role-policy", role=role.id, policy=policy_document(self._statements(args)), opts=self.child_opts()
        )
        self.arn = role.arn
        self.register_outputs({"arn": self.arn})

    def _statements(self, args: ExecutionRoleArgs) -> list[dict[str, Any]]:
        ctx, dep = args.context, args.deployment
        region = ctx.settings.region
        account = account_id(self, args.known_arn)
        endpoint_name = sagemaker_endpoint_name(ctx, dep.name)
        log_group = pulumi.Output.concat(
            f"arn:{partition(region)}:logs:{region}:", account, f":log-group:/aws/sagemaker/Endpoints/{endpoint_name}"
        )
        capture = pulumi.Output.concat(args.capture_arn, f"/{dep.name}/*")
        statements: list[dict[str, Any]] = [
            *ecr_pull(region, [args.image]),
            log_statement(log_group),
            metrics_statement(["/aws/sagemaker/Endpoints", "AWS/SageMaker"]),
            statement("CaptureWrite", ["s3:PutObject"], [capture]),
            statement("CaptureBucket", ["s3:GetBucketLocation"], [args.capture_arn]),
            statement("CaptureKey", ["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"], [args.key_arn]),
        ]
        for i, uri in enumerate(args.weights):
            statements += s3_read(f"Weights{i}", uri, region)
        if args.in_vpc:
            # ENI actions take no resource ARNs before the interface exists.
            statements.append(statement("VpcNetworkInterfaces", VPC_ENI_ACTIONS, ["*"]))
        return statements


@dataclass
class ModelVersionArgs:
    role_arn: pulumi.Input[str]
    image: str
    environment: dict[str, pulumi.Input[str]]  # HF_TOKEN, where present, is a secret Output
    weights_uri: pulumi.Input[str] | None  # None: the container pulls from the Hub
    vpc_config: dict[str, Any] | None
    tags: dict[str, str]
    depends_on: list[pulumi.Resource]


class ModelVersion(ResourceGroup):
    """One variant version as its own SageMaker Model: a version bump adds a model instead of
    replacing one, and the old one goes only after the endpoint has moved off it."""

    model: aws.sagemaker.Model

    def __init__(self, name: str, args: ModelVersionArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/sagemaker:ModelVersion", name, opts)
        container: dict[str, Any] = {"image": args.image, "environment": args.environment}
        if args.weights_uri is not None:
            # A training run's model.tar.gz is one object that SageMaker unpacks; other weights are a prefix.
            archive = isinstance(args.weights_uri, str) and args.weights_uri.endswith(".tar.gz")
            kind, compression = ("S3Object", "Gzip") if archive else ("S3Prefix", "None")
            container["model_data_source"] = {
                "s3_data_source": {"s3_uri": args.weights_uri, "s3_data_type": kind, "compression_type": compression}
            }
        self.model = aws.sagemaker.Model(
            name,
            execution_role_arn=args.role_arn,
            primary_container=container,
            # Weights from S3 need no network; the Hub is reached through the VPC's NAT.
            enable_network_isolation=args.weights_uri is not None,
            vpc_config=args.vpc_config,
            tags=args.tags,
            opts=self.child_opts(depends_on=args.depends_on, delete_before_replace=False),
        )
        self.register_outputs({"modelName": self.model.name})


@dataclass
class ServingEndpointArgs:
    context: StackContext
    deployment: Deployment
    sizing: SizingResult
    models: dict[str, aws.sagemaker.Model]  # by version
    key_arn: pulumi.Input[str]
    capture_bucket: pulumi.Input[str]
    tags: dict[str, str]
    role_arn: pulumi.Input[str] | None = None  # set: an inference-component endpoint (scale to zero)


class ServingEndpoint(ResourceGroup):
    """The endpoint (fixed name: its invocation URL) and the configuration of its current set of
    versions, with request capture; updates run blue/green and roll back on the SLO alarms."""

    endpoint: aws.sagemaker.Endpoint

    def __init__(self, name: str, args: ServingEndpointArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/sagemaker:ServingEndpoint", name, opts)
        ctx, dep, sizing = args.context, args.deployment, args.sizing
        endpoint_name = sagemaker_endpoint_name(ctx, dep.name)
        components = args.role_arn is not None
        config = aws.sagemaker.EndpointConfiguration(
            # An inference-component configuration holds no version: a new one comes with the instance only.
            child(name, "config-components" if components else f"config-{_versions_key(dep.variants)}"),
            production_variants=_component_variant(dep, sizing) if components else _model_variants(dep, sizing, args),
            shadow_production_variants=None if components else _shadow_variants(dep, sizing, args.models),
            execution_role_arn=args.role_arn,
            # NVMe instance storage is hardware-encrypted and SageMaker refuses a key for it.
            kms_key_arn=None if has_instance_storage(sizing.instance_type) else args.key_arn,
            data_capture_config=_capture_config(args.capture_bucket, f"{dep.name}/", args.key_arn, ctx),
            tags=args.tags,
            opts=self.child_opts(delete_before_replace=False),
        )
        self.endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=endpoint_name,
            endpoint_config_name=config.name,
            # Components roll their own versions (UpdateInferenceComponent); blue/green is for model variants.
            deployment_config=None
            if components
            else _deployment_config(endpoint_name, production=ctx.settings.production),
            tags=args.tags,
            opts=self.child_opts(),
        )
        self.register_outputs({"endpointName": self.endpoint.name})


@dataclass
class EndpointAutoscalingArgs:
    context: StackContext
    deployment: Deployment
    endpoint: aws.sagemaker.Endpoint
    tags: dict[str, str]


class EndpointAutoscaling(ResourceGroup):
    """Per variant, a scalable target between the deployment's min and max replicas and a
    target-tracking policy on invocations per instance."""

    def __init__(self, name: str, args: EndpointAutoscalingArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/sagemaker:EndpointAutoscaling", name, opts)
        dep, endpoint = args.deployment, args.endpoint
        endpoint_name = sagemaker_endpoint_name(args.context, dep.name)
        scaling = dep.model.serving.autoscaling
        for v in dep.variants:
            vname = variant_name(v.version)
            target = aws.appautoscaling.Target(
                child(name, f"scaling-{v.version}", autonamed=False),
                service_namespace="sagemaker",
                scalable_dimension="sagemaker:variant:DesiredInstanceCount",
                resource_id=endpoint.name.apply(lambda n, vn=vname: f"endpoint/{n}/variant/{vn}"),
                min_capacity=dep.min_replicas,
                max_capacity=dep.max_replicas,
                tags=args.tags,
                opts=self.child_opts(depends_on=[endpoint]),
            )
            target_tracking(
                child(name, f"scaling-policy-{v.version}", autonamed=False),
                name=short_name(endpoint_name, vname, "invocations", max_len=255),
                target=target,
                metric="SageMakerVariantInvocationsPerInstance",
                target_value=float(scaling.target_invocations_per_replica),
                scale_in_cooldown=scaling.scale_in_cooldown_seconds,
                scale_out_cooldown=scaling.scale_out_cooldown_seconds,
                opts=self.child_opts(),
            )
        self.register_outputs({})


def _model_variants(dep: Deployment, sizing: SizingResult, args: ServingEndpointArgs) -> list[dict[str, Any]]:
    """One production variant per version, weighted, on its own SageMaker Model."""
    return [
        {
            "variant_name": variant_name(v.version),
            "model_name": args.models[v.version].name,
            "instance_type": sizing.instance_type,
            "initial_instance_count": dep.min_replicas,
            "initial_variant_weight": v.weight,
            "container_startup_health_check_timeout_in_seconds": 1800,
            "model_data_download_timeout_in_seconds": 1800,
        }
        for v in dep.variants
    ]


def _component_variant(dep: Deployment, sizing: SizingResult) -> list[dict[str, Any]]:
    """One variant without a model: SageMaker adds instances for the component's copies and, with
    `min_instance_count` 0, removes the last one once no copy is left."""
    return [
        {
            "variant_name": COMPONENT_VARIANT,
            "instance_type": sizing.instance_type,
            "initial_instance_count": 1,
            "managed_instance_scaling": {
                "status": "ENABLED",
                "min_instance_count": 0,
                "max_instance_count": dep.max_replicas,
            },
            "routing_configs": [{"routing_strategy": "LEAST_OUTSTANDING_REQUESTS"}],
        }
    ]


def _shadow_variants(
    dep: Deployment, sizing: SizingResult, models: dict[str, aws.sagemaker.Model]
) -> list[dict[str, Any]] | None:
    """SageMaker copies the sampled share of the production variant's requests to a shadow
    variant and drops its answers; the share is the shadow's weight over the production's (100)."""
    if dep.shadow is None:
        return None
    return [
        {
            "variant_name": variant_name(dep.shadow.version),
            "model_name": models[dep.shadow.version].name,
            "instance_type": sizing.instance_type,
            "initial_instance_count": max(1, math.ceil(dep.min_replicas * dep.shadow.percent / 100)),
            "initial_variant_weight": dep.shadow.percent,
            "container_startup_health_check_timeout_in_seconds": 1800,
            "model_data_download_timeout_in_seconds": 1800,
        }
    ]


def _capture_config(
    bucket: pulumi.Input[str], prefix: str, key_arn: pulumi.Input[str], ctx: StackContext
) -> dict[str, Any]:
    """Request and response capture into the model's prefix: all of it outside production, 10% in it."""
    return {
        "enable_capture": True,
        "initial_sampling_percentage": 10 if ctx.settings.production else 100,
        "destination_s3_uri": pulumi.Output.concat("s3://", bucket, f"/{prefix}"),
        "kms_key_id": key_arn,
        "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
        "capture_content_type_header": {"json_content_types": ["application/json"]},
    }


def _model_data(
    component: ModelEndpointOutputs, name: str, args: ModelEndpointArgs, tags: dict[str, str]
) -> tuple[pulumi.Output[str], pulumi.Output[str], pulumi.Output[str]]:
    """The KMS key and capture bucket: the stack's shared ones, or this endpoint's own without a cluster."""
    cluster = args.cluster
    if cluster is not None and cluster.data_key_arn is not None:
        assert cluster.capture_bucket is not None and cluster.capture_bucket_arn is not None
        return cluster.data_key_arn, cluster.capture_bucket, cluster.capture_bucket_arn
    ctx = args.context
    key = kms_key(child(name, "key"), f"{args.deployment.name} endpoint data ({ctx.stack})", tags, component)
    capture = encrypted_bucket(
        child(name, "capture"),
        kms_key_arn=key.arn,
        tags=tags,
        parent=component,
        versioned=False,
        region=ctx.settings.region,
    )
    return key.arn, capture.bucket, capture.arn


def _versions_key(variants: list[Variant]) -> str:
    """The configuration's identity: its set of versions (weights are updated in place)."""
    return "-".join(sorted(v.version for v in variants))


def _deployment_config(endpoint_name: str, *, production: bool) -> dict[str, Any]:
    """Blue/green: production shifts a 10% canary first; other environments shift linearly in halves.
    Either way a tripped SLO alarm rolls the endpoint back to the old fleet."""
    if production:
        routing: dict[str, Any] = {
            "type": "CANARY",
            "canary_size": {"type": "CAPACITY_PERCENT", "value": 10},
            "wait_interval_in_seconds": 600,
        }
    else:
        routing = {
            "type": "LINEAR",
            "linear_step_size": {"type": "CAPACITY_PERCENT", "value": 50},
            "wait_interval_in_seconds": 180,
        }
    return {
        "blue_green_update_policy": {
            "traffic_routing_configuration": routing,
            "termination_wait_in_seconds": 300,
            "maximum_execution_timeout_in_seconds": 3 * 3600,
        },
        "auto_rollback_configuration": {
            "alarms": [{"alarm_name": slo_alarm_name(endpoint_name, slo)} for slo in SLO_ALARMS[:2]]
        },
    }
