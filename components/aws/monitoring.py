"""MonitoringStack on AWS: SLO alarms to an encrypted SNS topic, dashboards, Prometheus on EKS.

SageMaker endpoints get three CloudWatch alarms from their registry SLOs (p95
ModelLatency, 5XX error ratio, GPU memory); the latency and error alarms are also
the endpoints' blue/green rollback alarms (same names, `slo_alarm_name`). EKS
endpoints get the same SLOs as PrometheusRules (`llmops.observability`) in a
kube-prometheus-stack, whose Grafana shows the repository's serving dashboard.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws.account import account_id, partition
from components.aws.eks_endpoint import IN_FLIGHT_METRIC, runtime_of
from components.aws.iam import policy_document
from components.aws.kubernetes import helm_release, k8s_labels
from components.aws.naming import child, sagemaker_endpoint_name, slo_alarm_name, variant_name
from components.aws.storage import kms_key
from components.context import short_name
from components.contracts import MonitoringStackArgs, MonitoringStackOutputs
from llmops.observability import DASHBOARD_PATH, prometheus_rules
from llmops.registry import Deployment

PROMETHEUS_STACK_CHART = ("https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack", "72.6.2")
PROMETHEUS_ADAPTER_CHART = ("https://prometheus-community.github.io/helm-charts", "prometheus-adapter", "4.14.1")
MONITORING_NAMESPACE = "monitoring"
PROMETHEUS_RELEASE = "kube-prometheus-stack"
PERIOD = 60  # seconds per CloudWatch datapoint
EVALUATION_PERIODS = 5  # breaching for five minutes, like the Prometheus rules' `for: 5m`


def build_monitoring(component: MonitoringStackOutputs, name: str, args: MonitoringStackArgs) -> None:
    ctx = args.context
    tags = ctx.tags()
    opts = pulumi.ResourceOptions(parent=component)
    region = ctx.settings.region
    default_platform = ctx.settings.default_endpoint_platform
    sagemaker = {m: d for m, d in sorted(args.deployments.items()) if (d.platform or default_platform) == "sagemaker"}
    eks = {m: d for m, d in sorted(args.deployments.items()) if (d.platform or default_platform) == "eks"}

    # CloudWatch publishes alarms into the topic, so the key must let it encrypt.
    account = account_id(component, args.cluster.data_key_arn if args.cluster is not None else None)
    key_policy = policy_document(
        [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": pulumi.Output.concat(f"arn:{partition(region)}:iam::", account, ":root")},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchPublishes",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            },
        ]
    )
    key = kms_key(child(name, "alarms-key"), f"SLO alarm notifications of {ctx.stack}", tags, component, key_policy)
    topic = aws.sns.Topic(child(name, "alarms", limit=256), kms_master_key_id=key.arn, tags=tags, opts=opts)
    if ctx.alarm_address is not None:
        aws.sns.TopicSubscription(
            f"{name}-alarm-email", topic=topic.arn, protocol="email", endpoint=ctx.alarm_address, opts=opts
        )
    component.alarm_topic_arn = topic.arn

    widgets: list[dict[str, Any]] = []
    for model, dep in sagemaker.items():
        endpoint = sagemaker_endpoint_name(ctx, model)
        ep = args.endpoints.get(model)
        gpus = ep.sizing.gpus if ep is not None and ep.sizing is not None else 1
        _sagemaker_alarms(component, name, ctx.tags(model=model, team=dep.model.owner), dep, endpoint, gpus, topic)
        widgets += _widgets(dep, endpoint, region, y=len(widgets) // 3 * 6)
    dashboard_name = short_name("llmops", ctx.environment, max_len=255)
    aws.cloudwatch.Dashboard(
        f"{name}-dashboard",
        dashboard_name=dashboard_name,
        dashboard_body=json.dumps(
            {"widgets": widgets or [_text_widget(f"No SageMaker endpoints in {ctx.stack}.")]}, sort_keys=True
        ),
        opts=opts,
    )
    component.dashboard_name = pulumi.Output.from_input(dashboard_name)

    cluster = args.cluster
    if cluster is not None and cluster.kube_provider is not None:
        _prometheus(component, name, args, list(eks.values()), cluster.kube_provider)


def _sagemaker_alarms(
    component: MonitoringStackOutputs,
    name: str,
    tags: dict[str, str],
    dep: Deployment,
    endpoint: str,
    gpus: int,
    topic: aws.sns.Topic,
) -> None:
    slo = dep.model.monitoring.slo
    variants = [variant_name(v.version) for v in dep.variants]
    opts = pulumi.ResourceOptions(parent=component)
    common: dict[str, Any] = {
        "comparison_operator": "GreaterThanThreshold",
        "evaluation_periods": EVALUATION_PERIODS,
        "datapoints_to_alarm": EVALUATION_PERIODS,
        "treat_missing_data": "notBreaching",
        "alarm_actions": [topic.arn],
        "ok_actions": [topic.arn],
        "tags": tags,
        "opts": opts,
    }

    def metric(i: int, namespace: str, metric_name: str, stat: str, variant: str) -> dict[str, Any]:
        return {
            "id": f"m{i}",
            "return_data": False,
            "metric": {
                "namespace": namespace,
                "metric_name": metric_name,
                "stat": stat,
                "period": PERIOD,
                "dimensions": {"EndpointName": endpoint, "VariantName": variant},
            },
        }

    # Worst variant's p95 model latency; CloudWatch reports ModelLatency in microseconds.
    latency = [metric(i, "AWS/SageMaker", "ModelLatency", "p95", v) for i, v in enumerate(variants)]
    aws.cloudwatch.MetricAlarm(
        child(name, f"{dep.name}-latency", autonamed=False),
        name=slo_alarm_name(endpoint, "p95-latency"),
        alarm_description=f"{dep.name}: p95 model latency above the SLO of {slo.p95_latency_ms:g} ms",
        threshold=slo.p95_latency_ms * 1000,
        metric_queries=[
            *latency,
            {
                "id": "p95",
                "expression": f"MAX([{', '.join(m['id'] for m in latency)}])",
                "label": "p95 ModelLatency (us)",
                "return_data": True,
            },
        ],
        **common,
    )
    # Server errors over invocations, across variants.
    errors = [metric(i, "AWS/SageMaker", "Invocation5XXErrors", "Sum", v) for i, v in enumerate(variants)]
    calls = [metric(len(variants) + i, "AWS/SageMaker", "Invocations", "Sum", v) for i, v in enumerate(variants)]
    aws.cloudwatch.MetricAlarm(
        child(name, f"{dep.name}-errors", autonamed=False),
        name=slo_alarm_name(endpoint, "error-rate"),
        alarm_description=f"{dep.name}: 5XX error ratio above the SLO of {slo.error_rate:g}",
        threshold=slo.error_rate,
        metric_queries=[
            *errors,
            *calls,
            {
                "id": "ratio",
                "expression": f"IF(SUM([{', '.join(m['id'] for m in calls)}]) > 0, "
                f"SUM([{', '.join(m['id'] for m in errors)}]) / SUM([{', '.join(m['id'] for m in calls)}]), 0)",
                "label": "5XX error ratio",
                "return_data": True,
            },
        ],
        **common,
    )
    # GPUMemoryUtilization is a percentage per GPU, summed over the instance's GPUs.
    gpus = max(1, gpus)
    memory = [
        metric(i, "/aws/sagemaker/Endpoints", "GPUMemoryUtilization", "Maximum", v) for i, v in enumerate(variants)
    ]
    aws.cloudwatch.MetricAlarm(
        child(name, f"{dep.name}-gpu-memory", autonamed=False),
        name=slo_alarm_name(endpoint, "gpu-memory"),
        alarm_description=f"{dep.name}: GPU memory above {slo.gpu_memory_utilization:.0%} on {gpus} GPU(s)",
        threshold=slo.gpu_memory_utilization * 100 * gpus,
        metric_queries=[
            *memory,
            {
                "id": "gpu",
                "expression": f"MAX([{', '.join(m['id'] for m in memory)}])",
                "label": "GPUMemoryUtilization (%)",
                "return_data": True,
            },
        ],
        **common,
    )


def _widgets(dep: Deployment, endpoint: str, region: str, y: int) -> list[dict[str, Any]]:
    variants = [variant_name(v.version) for v in dep.variants]

    def series(namespace: str, metric: str, stat: str) -> list[list[Any]]:
        return [[namespace, metric, "EndpointName", endpoint, "VariantName", v, {"stat": stat}] for v in variants]

    def widget(x: int, title: str, metrics: list[list[Any]]) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 8,
            "height": 6,
            "properties": {"title": f"{dep.name}: {title}", "region": region, "period": PERIOD, "metrics": metrics},
        }

    return [
        widget(0, "p95 latency (us)", series("AWS/SageMaker", "ModelLatency", "p95")),
        widget(
            8,
            "invocations and 5XX",
            series("AWS/SageMaker", "Invocations", "Sum") + series("AWS/SageMaker", "Invocation5XXErrors", "Sum"),
        ),
        widget(16, "GPU memory (%)", series("/aws/sagemaker/Endpoints", "GPUMemoryUtilization", "Maximum")),
    ]


def _text_widget(text: str) -> dict[str, Any]:
    return {"type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": {"markdown": text}}


def _prometheus(
    component: MonitoringStackOutputs,
    name: str,
    args: MonitoringStackArgs,
    eks: list[Deployment],
    provider: Any,
) -> None:
    ctx = args.context
    labels = k8s_labels(ctx, model="platform", team="platform")
    k8s_opts = pulumi.ResourceOptions(parent=component, provider=provider)
    stack = helm_release(
        component,
        name,
        PROMETHEUS_RELEASE,
        PROMETHEUS_STACK_CHART,
        MONITORING_NAMESPACE,
        {
            "prometheus": {
                "prometheusSpec": {
                    # Pick up every ServiceMonitor and PrometheusRule, not only the chart's own.
                    "serviceMonitorSelectorNilUsesHelmValues": False,
                    "ruleSelectorNilUsesHelmValues": False,
                    "retention": "15d",
                    "storageSpec": {
                        "volumeClaimTemplate": {
                            "spec": {
                                "storageClassName": "gp3-encrypted",
                                "accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "100Gi"}},
                            }
                        }
                    },
                }
            },
            "grafana": {
                # Internal and read-only: no login form, no basic auth, anonymous viewers.
                "grafana.ini": {
                    "auth": {"disable_login_form": True},
                    "auth.basic": {"enabled": False},
                    "auth.anonymous": {"enabled": True, "org_role": "Viewer"},
                },
                "sidecar": {"dashboards": {"enabled": True, "label": "grafana_dashboard", "searchNamespace": "ALL"}},
                "service": {"type": "ClusterIP"},
            },
            "alertmanager": {"enabled": True},
        },
        k8s_opts,
    )
    after_crds = pulumi.ResourceOptions(parent=component, provider=provider, depends_on=[stack])
    k8s.core.v1.ConfigMap(
        f"{name}-grafana-dashboard",
        metadata={
            "name": "llmops-serving-dashboard",
            "namespace": MONITORING_NAMESPACE,
            "labels": {**labels, "grafana_dashboard": "1"},
        },
        data={"llm-serving.json": DASHBOARD_PATH.read_text()},
        opts=after_crds,
    )
    # Serving pods: scrape every llmops Service, labelling series with the model.
    k8s.apiextensions.CustomResource(
        f"{name}-serving-monitor",
        api_version="monitoring.coreos.com/v1",
        kind="ServiceMonitor",
        metadata={"name": "llmops-serving", "namespace": MONITORING_NAMESPACE, "labels": labels},
        spec={
            "namespaceSelector": {"any": True},
            "selector": {"matchLabels": {"llmops.io/serving": "true"}},
            "endpoints": [
                {
                    "port": "http",
                    "path": "/metrics",
                    "interval": "15s",
                    "relabelings": [
                        {
                            "sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_name"],
                            "targetLabel": "model",
                        }
                    ],
                }
            ],
        },
        opts=after_crds,
    )
    # DCGM labels each GPU with the pod using it: keep those labels (honorLabels).
    k8s.apiextensions.CustomResource(
        f"{name}-dcgm-monitor",
        api_version="monitoring.coreos.com/v1",
        kind="ServiceMonitor",
        metadata={"name": "dcgm-exporter", "namespace": MONITORING_NAMESPACE, "labels": labels},
        spec={
            "namespaceSelector": {"matchNames": ["kube-system"]},
            "selector": {"matchLabels": {"app.kubernetes.io/name": "dcgm-exporter"}},
            "endpoints": [{"port": "metrics", "interval": "15s", "honorLabels": True}],
        },
        opts=after_crds,
    )
    for dep in eks:
        rules = prometheus_rules([dep], runtime_metrics="tgi" if runtime_of(dep) == "tgi" else "vllm")
        k8s.apiextensions.CustomResource(
            f"{name}-{dep.name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={
                "name": f"llmops-slo-{dep.name}",
                "namespace": MONITORING_NAMESPACE,
                "labels": k8s_labels(ctx, model=dep.name, team=dep.model.owner),
            },
            spec=rules,
            opts=after_crds,
        )
    # Per-pod in-flight requests as custom metrics, for the endpoints' HPAs.
    helm_release(
        component,
        name,
        "prometheus-adapter",
        PROMETHEUS_ADAPTER_CHART,
        MONITORING_NAMESPACE,
        {
            "prometheus": {"url": f"http://{PROMETHEUS_RELEASE}-prometheus.{MONITORING_NAMESPACE}.svc", "port": 9090},
            "rules": {
                "default": False,
                "custom": [
                    {
                        "seriesQuery": f'{series}{{namespace!="",pod!=""}}',
                        "resources": {
                            "overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
                        },
                        "name": {"matches": ".*", "as": metric},
                        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
                    }
                    for series, metric in (
                        ("vllm:num_requests_running", IN_FLIGHT_METRIC["vllm"]),
                        ("tgi_batch_current_size", IN_FLIGHT_METRIC["tgi"]),
                    )
                ],
            },
        },
        after_crds,
    )
    component.prometheus_url = pulumi.Output.from_input(
        f"http://{PROMETHEUS_RELEASE}-prometheus.{MONITORING_NAMESPACE}.svc.cluster.local:9090"
    )
