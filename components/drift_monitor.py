"""DriftMonitor: a scheduled comparison of a model's captured traffic with its dataset's eval split.

Both targets run the same module, `llmops.datasets.drift`, over capture files in
SageMaker's format. local: a supervised process that recomputes drift on an
interval and exports `llmops_drift_score` / `llmops_drift_detected` for the
stack's Prometheus (file-based discovery, so the monitor and Prometheus do not
depend on each other). aws: an EventBridge-scheduled SageMaker Processing job over
the capture bucket, publishing the same numbers as CloudWatch metrics with an
alarm on the monitoring stack's SNS topic.
"""

from __future__ import annotations

import pulumi

from components.aws.drift_job import build_drift_monitor as build_aws_drift_monitor
from components.contracts import DriftMonitorArgs, DriftMonitorOutputs
from components.local.drift import build_drift_monitor as build_local_drift_monitor

__all__ = ["DriftMonitor", "DriftMonitorArgs"]


class DriftMonitor(DriftMonitorOutputs):
    def __init__(self, name: str, args: DriftMonitorArgs, opts: pulumi.ResourceOptions | None = None):
        drift = args.deployment.model.monitoring.drift
        assert drift is not None, "DriftMonitor needs a model with monitoring.drift"
        facts = {
            "model": args.deployment.name,
            "team": args.deployment.model.owner,
            "environment": args.context.environment,
            "target": args.context.settings.target,
            "dataset": args.dataset,
            "intervalSeconds": drift.interval_seconds,
        }
        super().__init__("llmops:drift_monitor:DriftMonitor", name, facts, opts)
        build = build_aws_drift_monitor if args.context.settings.target == "aws" else build_local_drift_monitor
        build(self, name, args)
        self.register_outputs(
            {
                k: v
                for k, v in {
                    "metricsUrl": self.metrics_url,
                    "scheduleArn": self.schedule_arn,
                    "alarmName": self.alarm_name,
                }.items()
                if v is not None
            }
        )
