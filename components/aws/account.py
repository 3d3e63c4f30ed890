"""Where the stack deploys: the ARN partition of a region and the deploying account."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


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
