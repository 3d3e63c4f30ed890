"""Application Auto Scaling policies shared by the SageMaker endpoint groups: a variant's
instances and an inference component's copies follow the same target-tracking shape."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws


def on_target(target: aws.appautoscaling.Target) -> dict[str, Any]:
    """The scalable target a policy acts on, as the Policy's arguments name it."""
    return {
        "service_namespace": target.service_namespace,
        "scalable_dimension": target.scalable_dimension,
        "resource_id": target.resource_id,
    }


def target_tracking(
    resource_name: str,
    *,
    name: pulumi.Input[str],
    target: aws.appautoscaling.Target,
    metric: str,
    target_value: float,
    scale_in_cooldown: int,
    scale_out_cooldown: int,
    opts: pulumi.ResourceOptions,
) -> aws.appautoscaling.Policy:
    """A target-tracking policy on one of SageMaker's predefined invocation metrics."""
    return aws.appautoscaling.Policy(
        resource_name,
        name=name,
        policy_type="TargetTrackingScaling",
        **on_target(target),
        target_tracking_scaling_policy_configuration={
            "predefined_metric_specification": {"predefined_metric_type": metric},
            "target_value": target_value,
            "scale_in_cooldown": scale_in_cooldown,
            "scale_out_cooldown": scale_out_cooldown,
        },
        opts=opts,
    )
