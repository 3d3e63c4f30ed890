"""IAM documents: trust policies (AWS services, IRSA) and least-privilege statements.

Every statement names the resources it allows; the few actions AWS gives no
resource scope (ECR tokens, PutMetricData) say so where they are built.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from components.aws.account import partition


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
