"""The inference component of a scale-to-zero SageMaker endpoint, and the scaling that takes it to 0 and back.

AWS's documented pattern ("Scale an endpoint to zero instances"): an endpoint scales to zero
instances only when it hosts inference components and its configuration's managed instance
scaling allows 0. The component's copies are an Application Auto Scaling target with minimum 0;
target tracking on invocations per copy scales in (its cooldown is the registry's
`idle_seconds`) and out; once no copy is left SageMaker removes the last instance. Target
tracking cannot scale out of 0 copies, so a step-scaling policy adds one copy when the
`NoCapacityInvocationFailures` alarm fires (a request met no copy); that request and those
during the start (minutes: an instance, the weights, the container) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.autoscaling import on_target, target_tracking
from components.aws.inference_component import InferenceComponent
from components.aws.naming import SLO_ALARMS, child, sagemaker_endpoint_name, slo_alarm_name
from components.context import StackContext, short_name
from components.grouping import ResourceGroup
from llmops.naming import COMPONENT_VARIANT, inference_component_name
from llmops.registry import Deployment
from llmops.sizing import SizingResult

COMPONENT_HOST_MEMORY_MB = 1024  # host RAM one copy reserves; the weights live on its accelerators
STARTUP_TIMEOUT = 1800  # seconds a replica (or copy) may take to download weights and pass its health check


@dataclass
class ScaleToZeroComponentArgs:
    context: StackContext
    deployment: Deployment
    sizing: SizingResult
    endpoint: aws.sagemaker.Endpoint
    model: aws.sagemaker.Model  # the one version it serves
    tags: dict[str, str]


class ScaleToZeroComponent(ResourceGroup):
    """One inference component (the endpoint's one version), its copies scaled between 0 and
    `max_replicas`, and the alarm that wakes it (see the module docstring)."""

    component_name: str

    def __init__(self, name: str, args: ScaleToZeroComponentArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/sagemaker:ScaleToZeroComponent", name, opts)
        ctx, dep, sizing = args.context, args.deployment, args.sizing
        stz = dep.scale_to_zero
        assert stz is not None
        endpoint_name = sagemaker_endpoint_name(ctx, dep.name)
        self.component_name = inference_component_name(endpoint_name)
        ic = InferenceComponent(
            child(name, "component", autonamed=False),
            {
                "region": ctx.settings.region,
                "name": self.component_name,
                "endpoint_name": args.endpoint.name,
                "variant_name": COMPONENT_VARIANT,
                "model_name": args.model.name,
                "accelerators": sizing.tensor_parallel,
                "min_memory_mb": COMPONENT_HOST_MEMORY_MB,
                "startup_timeout": STARTUP_TIMEOUT,
                "copy_count": 1,  # serves from the first deploy (smoke, evaluation); idle scales it to 0
                "tags": args.tags,
                # A new version rolls back on the endpoint's SLO alarms (components/aws/monitoring.py).
                "rollback_alarms": [slo_alarm_name(endpoint_name, slo) for slo in SLO_ALARMS[:2]],
            },
            self.child_opts(depends_on=[args.endpoint]),
        )
        target = aws.appautoscaling.Target(
            child(name, "component-scaling", autonamed=False),
            service_namespace="sagemaker",
            scalable_dimension="sagemaker:inference-component:DesiredCopyCount",
            resource_id=f"inference-component/{self.component_name}",
            min_capacity=0,
            max_capacity=dep.max_replicas,
            tags=args.tags,
            opts=self.child_opts(depends_on=[ic]),
        )
        self._tracking(name, target, dep, stz.idle_seconds)
        self._wake(name, target, args)
        self.register_outputs({"componentName": self.component_name})

    def _tracking(self, name: str, target: aws.appautoscaling.Target, dep: Deployment, idle_seconds: int) -> None:
        """Copies follow invocations per copy; scale-in waits the idle time (down to 0 copies)."""
        scaling = dep.model.serving.autoscaling
        target_tracking(
            child(name, "component-tracking", autonamed=False),
            name=short_name(self.component_name, "invocations", max_len=255),
            target=target,
            metric="SageMakerInferenceComponentInvocationsPerCopy",
            target_value=float(scaling.target_invocations_per_replica),
            scale_in_cooldown=idle_seconds,
            scale_out_cooldown=scaling.scale_out_cooldown_seconds,
            opts=self.child_opts(),
        )

    def _wake(self, name: str, target: aws.appautoscaling.Target, args: ScaleToZeroComponentArgs) -> None:
        """Out of zero: a request that met no copy raises the alarm, whose step policy adds one."""
        ctx, dep = args.context, args.deployment
        wake = aws.appautoscaling.Policy(
            child(name, "component-wake", autonamed=False),
            name=short_name(self.component_name, "wake", max_len=255),
            policy_type="StepScaling",
            **on_target(target),
            step_scaling_policy_configuration={
                "adjustment_type": "ChangeInCapacity",
                "metric_aggregation_type": "Maximum",
                "cooldown": 60,
                "step_adjustments": [{"metric_interval_lower_bound": "0", "scaling_adjustment": 1}],
            },
            opts=self.child_opts(),
        )
        aws.cloudwatch.MetricAlarm(
            child(name, "component-wake-alarm", autonamed=False),
            name=short_name(self.component_name, "no-capacity", max_len=255),
            alarm_description=f"{dep.name} ({ctx.stack}): a request found no copy; add one (scale out from zero)",
            namespace="AWS/SageMaker",
            metric_name="NoCapacityInvocationFailures",
            dimensions={"InferenceComponentName": self.component_name},
            statistic="Sum",
            period=60,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            # AWS's example alarms above 1; at or above 1 the first refused request wakes it.
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[wake.arn],
            tags=args.tags,
            opts=self.child_opts(),
        )
