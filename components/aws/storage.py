"""Encryption and storage: customer-managed KMS keys and private, encrypted S3 buckets."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from components.aws.iam import policy_document


def kms_key(
    logical: str,
    description: str,
    tags: Mapping[str, str],
    parent: pulumi.Resource | pulumi.ResourceOptions,
    policy: pulumi.Input[str] | None = None,
) -> aws.kms.Key:
    """A customer-managed key with yearly rotation; without `policy`, AWS's default key policy.
    `parent` is the key's parent, or the full options it is created with (a parent and aliases)."""
    return aws.kms.Key(
        logical,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=policy,
        tags=dict(tags),
        opts=_options(parent),
    )


def encrypted_bucket(
    logical: str,
    *,
    kms_key_arn: pulumi.Input[str],
    tags: Mapping[str, str],
    parent: pulumi.Resource | None = None,
    opts: pulumi.ResourceOptions | None = None,
    versioned: bool = True,
    region: str,
    bucket_name: str | None = None,
) -> aws.s3.Bucket:
    """A private bucket: SSE-KMS by default, owner-enforced, public access blocked, TLS only.
    Its settings are children of the bucket, so they follow it (and its aliases) wherever it moves.
    `bucket_name` fixes its physical name (one that others are told, as the state bucket is)."""
    bucket = aws.s3.Bucket(logical, bucket=bucket_name, tags=dict(tags), opts=opts or _options(parent))
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
        policy=_tls_only(bucket),
        opts=bucket_opts,
    )
    return bucket


def _tls_only(bucket: aws.s3.Bucket) -> pulumi.Output[str]:
    """Deny every request to the bucket or its objects that does not use TLS."""
    deny = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    return policy_document([deny])


def _options(parent: pulumi.Resource | pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    return parent if isinstance(parent, pulumi.ResourceOptions) else pulumi.ResourceOptions(parent=parent)
