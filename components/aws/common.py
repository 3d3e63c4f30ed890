"""Building blocks every AWS builder shares: names, IAM documents, keys, buckets, pools.

Names: a child's logical name is also the stem of its physical name where the
provider auto-names it (pulumi-aws appends "-" and 7 hex characters,
pulumi-kubernetes "-" and 8 characters), so `child()` keeps the logical name
short enough for the AWS limit of the resource it names. Auto-naming is what
lets a replaced resource be created before the old one is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.context import StackContext, short_name
from llmops.catalog import load_catalog
from llmops.settings import NodePool

AWS_AUTONAME_SUFFIX = 8  # "-" + 7 random hex characters
K8S_AUTONAME_SUFFIX = 9  # "-" + 8 random characters
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
SERVING_NAMESPACE = "llmops"


def child(name: str, suffix: str, *, limit: int = 63, autonamed: bool = True) -> str:
    """The logical name of a child; auto-named physical names still fit `limit`."""
    return short_name(name, suffix, max_len=limit - (AWS_AUTONAME_SUFFIX if autonamed else 0))


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def account_id(parent: pulumi.Resource, known_arn: pulumi.Output[str] | None = None) -> pulumi.Output[str]:
    """The deploying account, for ARNs that must name it (log groups, key policies): read from
    the ARN of a resource the stack already has, or asked of AWS (an invoke per call)."""
    if known_arn is not None:
        return known_arn.apply(lambda arn: arn.split(":")[4])
    return aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent)).account_id


# --------------------------------------------------------------------------- IAM


def service_trust(*services: str) -> str:
    """An assume-role policy for AWS services."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": list(services) if len(services) > 1 else services[0]},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def irsa_trust(
    oidc_provider_arn: pulumi.Input[str], oidc_provider_url: pulumi.Input[str], namespace: str, service_account: str
) -> pulumi.Output[str]:
    """An assume-role policy for one Kubernetes service account (IAM roles for service accounts)."""

    def document(args: list[str]) -> str:
        arn, url = args
        issuer = url.removeprefix("https://")
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": arn},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                                f"{issuer}:aud": "sts.amazonaws.com",
                            }
                        },
                    }
                ],
            }
        )

    return pulumi.Output.all(oidc_provider_arn, oidc_provider_url).apply(document)


def statement(
    sid: str, actions: Sequence[str], resources: Sequence[pulumi.Input[str]], condition: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": list(resources)}
    if condition:
        out["Condition"] = dict(condition)
    return out


def log_statement(log_group: pulumi.Input[str]) -> dict[str, Any]:
    """Write access to one CloudWatch log group and its streams, as SageMaker jobs and endpoints need."""
    return statement(
        "Logs",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
        [log_group, pulumi.Output.concat(log_group, ":log-stream:*")],
    )


def metrics_statement(namespace: str | list[str]) -> dict[str, Any]:
    # PutMetricData has no resource scope; the namespace condition is what narrows it.
    return statement(
        "Metrics", ["cloudwatch:PutMetricData"], ["*"], {"StringLike": {"cloudwatch:namespace": namespace}}
    )


def policy_document(statements: Sequence[Mapping[str, Any]]) -> pulumi.Output[str]:
    """A policy document whose ARNs may still be outputs."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})


def ecr_pull(region: str, image_uris: Sequence[str]) -> list[dict[str, Any]]:
    """Pull the given images and nothing else (GetAuthorizationToken has no resource scope)."""
    repos = sorted({repository_arn(region, uri) for uri in image_uris})
    return [
        statement("EcrToken", ["ecr:GetAuthorizationToken"], ["*"]),
        statement(
            "EcrPull", ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"], repos
        ),
    ]


def repository_arn(region: str, image_uri: str) -> str:
    """`<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>` -> the repository's ARN."""
    registry, _, rest = image_uri.partition("/")
    repo = rest.split("@", 1)[0].rsplit(":", 1)[0]
    account = registry.split(".", 1)[0]
    return f"arn:{partition(region)}:ecr:{region}:{account}:repository/{repo}"


def s3_read(sid: str, uri: pulumi.Input[str], region: str) -> list[dict[str, Any]]:
    """Read one s3://bucket/prefix and list only under it."""
    bucket_arn = pulumi.Output.from_input(uri).apply(lambda u: f"arn:{partition(region)}:s3:::{_split_s3(u)[0]}")
    objects = pulumi.Output.from_input(uri).apply(
        lambda u: f"arn:{partition(region)}:s3:::{_split_s3(u)[0]}/{_split_s3(u)[1]}*"
    )
    prefix = pulumi.Output.from_input(uri).apply(lambda u: f"{_split_s3(u)[1]}*")
    return [
        statement(f"{sid}Read", ["s3:GetObject"], [objects]),
        statement(f"{sid}List", ["s3:ListBucket"], [bucket_arn], {"StringLike": {"s3:prefix": [prefix]}}),
    ]


def s3_read_write(sid: str, uri: pulumi.Input[str], region: str) -> list[dict[str, Any]]:
    """Read, write and list under one s3://bucket/prefix (checkpoints)."""
    read = s3_read(sid, uri, region)
    objects = read[0]["Resource"]
    return [*read, statement(f"{sid}Write", ["s3:PutObject", "s3:DeleteObject"], objects)]


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


# --------------------------------------------------------------------------- keys and buckets


def kms_key(
    logical: str,
    description: str,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    policy: pulumi.Input[str] | None = None,
) -> aws.kms.Key:
    """A customer-managed key with yearly rotation; without `policy`, AWS's default key policy."""
    return aws.kms.Key(
        logical,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=policy,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def encrypted_bucket(
    logical: str,
    *,
    kms_key_arn: pulumi.Input[str],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    versioned: bool = True,
    region: str,
) -> aws.s3.Bucket:
    """A private bucket: SSE-KMS by default, owner-enforced, public access blocked, TLS only."""
    opts = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(logical, tags=dict(tags), opts=opts)
    bucket_opts = pulumi.ResourceOptions(parent=bucket)
    aws.s3.BucketOwnershipControls(
        f"{logical}-ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=bucket_opts
    )
    aws.s3.BucketPublicAccessBlock(
        f"{logical}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=bucket_opts,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{logical}-encryption",
        bucket=bucket.id,
        rules=[
            {
                "apply_server_side_encryption_by_default": {
                    "sse_algorithm": "aws:kms",
                    "kms_master_key_id": kms_key_arn,
                },
                "bucket_key_enabled": True,
            }
        ],
        opts=bucket_opts,
    )
    if versioned:
        aws.s3.BucketVersioning(
            f"{logical}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=bucket_opts,
        )
    aws.s3.BucketPolicy(
        f"{logical}-tls-only",
        bucket=bucket.id,
        policy=policy_document(
            [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ]
        ),
        opts=bucket_opts,
    )
    return bucket


# --------------------------------------------------------------------------- GPU pools


def pool_for(ctx: StackContext, instance_type: str, gpus: int, gpu_memory_gib: float, *, what: str) -> NodePool:
    """The stack's GPU pool a workload runs on: the one offering the sized instance type,
    else the first whose instances have enough GPUs of enough memory."""
    pools = ctx.settings.cluster.gpu_pools
    for pool in pools:
        if instance_type in pool.instance_types:
            return pool
    catalog = {i.name: i for i in load_catalog().instances}
    for pool in pools:
        fits = [catalog[t] for t in pool.instance_types if t in catalog]
        if fits and all(i.gpus >= gpus and i.gpu_memory_gib >= gpu_memory_gib for i in fits):
            return pool
    raise ValueError(
        f"{what}: no GPU pool of stack {ctx.stack!r} offers {instance_type} or {gpus} GPU(s) of "
        f">= {gpu_memory_gib:g} GiB (pools: {', '.join(p.name for p in pools) or 'none'}); "
        "add one under llmops:cluster.gpuPools"
    )


def k8s_labels(ctx: StackContext, *, model: str, team: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Kubernetes labels carrying the same ownership keys as AWS tags."""
    return {
        **ctx.tags(model=model, team=team),
        "app.kubernetes.io/managed-by": "llmops",
        **(extra or {}),
    }


# --------------------------------------------------------------------------- SageMaker names


SLO_ALARMS = ("p95-latency", "error-rate", "gpu-memory")


def sagemaker_endpoint_name(ctx: StackContext, model: str) -> str:
    """The endpoint's fixed name (its invocation URL): one per model and environment."""
    return short_name("llmops", ctx.environment, model, max_len=63)


def slo_alarm_name(endpoint_name: str, slo: str) -> str:
    """The CloudWatch alarm of one SLO; the endpoint rolls a deployment back on it."""
    return f"{endpoint_name}-{slo}"


def variant_name(version: str) -> str:
    return short_name(version, max_len=63)


def helm_release(
    component: pulumi.Resource,
    name: str,
    release: str,
    chart: tuple[str, str, str],
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """A Helm release of a pinned chart; atomic, so a failed upgrade rolls back."""
    repo, chart_name, version = chart
    return k8s.helm.v3.Release(
        f"{name}-{release}",
        name=release,
        chart=chart_name,
        version=version,
        repository_opts={"repo": repo},
        namespace=namespace,
        values=values,
        atomic=True,
        cleanup_on_fail=True,
        timeout=900,
        opts=opts,
    )
