"""MonitoringStack: SLO alerts and dashboards for every endpoint of a stack.

aws: SNS topic, CloudWatch alarms and dashboard per endpoint; on EKS also
kube-prometheus-stack with PrometheusRules. local: a real Prometheus scraping
every local endpoint, with alert rules generated from the same SLOs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components.context import StackContext
from components.gpu_cluster import GpuCluster
from components.model_endpoint import ModelEndpoint
from llmops.registry import Deployment


@dataclass
class MonitoringStackArgs:
    context: StackContext
    endpoints: dict[str, ModelEndpoint] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    cluster: GpuCluster | None = None


class MonitoringStack(pulumi.ComponentResource):
    prometheus_url: pulumi.Output[str] | None = None
    alarm_topic_arn: pulumi.Output[str] | None = None
    dashboard_name: pulumi.Output[str] | None = None

    def __init__(self, name: str, args: MonitoringStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:monitoring:MonitoringStack", name, None, opts)
        if args.context.settings.target == "aws":
            from components.aws.monitoring import build_monitoring

            build_monitoring(self, name, args)
        else:
            from components.local.monitoring import build_monitoring

            build_monitoring(self, name, args)
        self.register_outputs(
            {
                k: v
                for k, v in {"prometheusUrl": self.prometheus_url, "alarmTopicArn": self.alarm_topic_arn}.items()
                if v is not None
            }
        )
