"""MonitoringStack: SLO alerts and dashboards for every endpoint of a stack.

aws: SNS topic, CloudWatch alarms and dashboard per endpoint; on EKS also
kube-prometheus-stack with PrometheusRules. kube: the same PrometheusRules and
ServiceMonitors on the prometheus-operator CRDs (no Prometheus runs). local: a real
Prometheus scraping every local endpoint, with alert rules generated from the same SLOs.
"""

from __future__ import annotations

import pulumi

from components.aws.monitoring import build_monitoring as build_aws_monitoring
from components.contracts import MonitoringStackArgs, MonitoringStackOutputs
from components.kube.monitoring import build_kube_monitoring
from components.local.monitoring import build_monitoring as build_local_monitoring

__all__ = ["MonitoringStack", "MonitoringStackArgs"]


class MonitoringStack(MonitoringStackOutputs):
    def __init__(self, name: str, args: MonitoringStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:monitoring:MonitoringStack", name, None, opts)
        target = args.context.settings.target
        builders = {"aws": build_aws_monitoring, "kube": build_kube_monitoring, "local": build_local_monitoring}
        builders[target](self, name, args)
        self.register_outputs(
            {
                k: v
                for k, v in {
                    "prometheusUrl": self.prometheus_url,
                    "dashboardUrl": self.dashboard_url,
                    "alarmTopicArn": self.alarm_topic_arn,
                }.items()
                if v is not None
            }
        )
