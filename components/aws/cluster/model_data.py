"""The stack's model data: one KMS key and one capture bucket that every endpoint writes requests into."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.naming import child
from components.aws.storage import encrypted_bucket, kms_key
from components.context import StackContext
from components.grouping import ResourceGroup

CAPTURE_DAYS = 90


@dataclass
class ModelDataStoreArgs:
    context: StackContext


class ModelDataStore(ResourceGroup):
    """A customer-managed key and an encrypted capture bucket (a prefix per model, each endpoint's
    role limited to its own), captured data kept `CAPTURE_DAYS` days."""

    key_arn: pulumi.Output[str]
    capture_bucket: pulumi.Output[str]
    capture_bucket_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ModelDataStoreArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/cluster:ModelDataStore", name, opts)
        ctx, tags = args.context, args.context.tags()
        key = kms_key(child(name, "data-key"), f"Model data of {ctx.stack}", tags, self.child_opts())
        capture = encrypted_bucket(
            child(name, "capture"),
            kms_key_arn=key.arn,
            tags=tags,
            opts=self.child_opts(),
            versioned=False,
            region=ctx.settings.region,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-capture-expiry",
            bucket=capture.id,
            rules=[
                {"id": "expire-captured-data", "status": "Enabled", "filter": {}, "expiration": {"days": CAPTURE_DAYS}}
            ],
            opts=pulumi.ResourceOptions(parent=capture),
        )
        self.key_arn, self.capture_bucket, self.capture_bucket_arn = key.arn, capture.bucket, capture.arn
        self.register_outputs({"keyArn": self.key_arn, "captureBucket": self.capture_bucket})
