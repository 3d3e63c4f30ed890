"""MonitoringStack on AWS: SLO alarms to an encrypted SNS topic, dashboards, Prometheus on EKS.

SageMaker endpoints get three CloudWatch alarms from their registry SLOs (p95
ModelLatency, 5XX error ratio, GPU memory); the latency and error alarms are also
the endpoints' blue/green rollback alarms (same names, `slo_alarm_name`). EKS
endpoints get the same SLOs as PrometheusRules (`llmops.observability`) in a
kube-prometheus-stack, whose Grafana shows the repository's serving dashboard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws.account import account_id, partition
from components.aws.eks_endpoint import IN_FLIGHT_METRIC, runtime_of
from components.aws.iam import policy_document
from components.aws.kubernetes import helm_release, k8s_labels
from components.aws.naming import child, sagemaker_endpoint_name, slo_alarm_name
from components.aws.storage import kms_key
from components.context import StackContext, short_name
from components.contracts import MonitoringStackArgs, MonitoringStackOutputs
from components.grouping import ResourceGroup
from llmops.naming import inference_component_name, variant_name
from llmops.observability import DASHBOARD_PATH, prometheus_rules
from llmops.registry import Deployment
from llmops.usage.cluster_access import USAGE_READERS
from llmops.usage.eks import RUNTIMES

PROMETHEUS_STACK_CHART = ("https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack", "72.6.2")
PROMETHEUS_ADAPTER_CHART = ("https://prometheus-community.github.io/helm-charts", "prometheus-adapter", "4.14.1")
MONITORING_NAMESPACE = "monitoring"
PROMETHEUS_RELEASE = "kube-prometheus-stack"
PERIOD = 60  # seconds per CloudWatch datapoint
EVALUATION_PERIODS = 5  # breaching for five minutes, like the Prometheus rules' `for: 5m`
PROMETHEUS_SERVICE, PROMETHEUS_PORT = f"{PROMETHEUS_RELEASE}-prometheus", 9090
PROMETHEUS_URL = f"http://{PROMETHEUS_SERVICE}.{MONITORING_NAMESPACE}.svc.cluster.local:{PROMETHEUS_PORT}"


def build_monitoring(component: MonitoringStackOutputs, name: str, args: MonitoringStackArgs) -> None:
    """The AWS children of a MonitoringStack: an alarm topic, SLO alarms per SageMaker endpoint, one
    CloudWatch dashboard, and on EKS a Prometheus stack with the endpoints' rules.

    Split over stacks (`llmops.layout`), the platform stack keeps the topic, the dashboard and
    the Prometheus stack; a model stack builds its model's alarms and rules, on the platform's
    topic and Prometheus, under the same names (so `llmops migrate-stacks` moves them unchanged).
    """
    ctx = args.context
    opts = group = pulumi.ResourceOptions(parent=component)
    region = ctx.settings.region
    default_platform = ctx.settings.default_endpoint_platform
    sagemaker = {m: d for m, d in sorted(args.deployments.items()) if (d.platform or default_platform) == "sagemaker"}
    eks = {m: d for m, d in sorted(args.deployments.items()) if (d.platform or default_platform) == "eks"}

    known_arn = args.cluster.data_key_arn if args.cluster is not None else None
    topic_arn: pulumi.Output[str]
    if ctx.builds_platform:
        topic_arn = AlarmTopic(name, AlarmTopicArgs(ctx, known_arn), group).topic.arn
    elif args.alarm_topic_arn is not None:
        topic_arn = pulumi.Output.from_input(args.alarm_topic_arn)
    else:
        raise ValueError(f"{ctx.deployed_stack}: a model stack's monitoring needs its platform's alarm topic")
    component.alarm_topic_arn = topic_arn

    widgets: list[dict[str, Any]] = []
    for model, dep in sagemaker.items():
        endpoint = sagemaker_endpoint_name(ctx, model)
        ep = args.endpoints.get(model)
        gpus = ep.sizing.gpus if ep is not None and ep.sizing is not None else 1
        moved = pulumi.ResourceOptions.merge(group, pulumi.ResourceOptions(aliases=ctx.moved_aliases))
        SloAlarms(f"{name}-{model}", SloAlarmsArgs(ctx, dep, endpoint, gpus, topic_arn), moved)
        widgets += _widgets(dep, endpoint, region, y=len(widgets) // 3 * 6)
    if ctx.builds_platform:
        empty = (
            f"Each model's endpoints are on its own dashboard, {short_name('llmops', ctx.physical_scope)}-<model>."
            if ctx.part == "platform"
            else f"No SageMaker endpoints in {ctx.stack}."
        )
        dashboard_name = short_name("llmops", ctx.physical_scope, max_len=255)
        body = {"widgets": widgets or [_text_widget(empty)]}
        dashboard_logical = f"{name}-dashboard"
    elif args.deployments:  # a model stack's own dashboard (none once its model is retired)
        dashboard_name = short_name("llmops", ctx.physical_scope, *args.deployments, max_len=255)
        body = {"widgets": widgets or [_text_widget(f"{', '.join(args.deployments)} serves on EKS: see Grafana.")]}
        dashboard_logical = f"{name}-{'-'.join(args.deployments)}-dashboard"
    else:
        return
    aws.cloudwatch.Dashboard(
        dashboard_logical, dashboard_name=dashboard_name, dashboard_body=json.dumps(body, sort_keys=True), opts=opts
    )
    component.dashboard_name = pulumi.Output.from_input(dashboard_name)

    cluster = args.cluster
    if cluster is not None and cluster.kube_provider is not None:
        PrometheusStack(name, PrometheusStackArgs(ctx, list(eks.values()), cluster.kube_provider), group)
        component.prometheus_url = pulumi.Output.from_input(PROMETHEUS_URL)


@dataclass
class AlarmTopicArgs:
    context: StackContext
    known_arn: pulumi.Output[str] | None = None  # an ARN in the deploying account, to name it without an invoke


class AlarmTopic(ResourceGroup):
    """The SNS topic every SLO alarm notifies, encrypted with its own key (whose policy lets
    CloudWatch publish), and the on-call address subscribed to it when the stack has one."""

    topic: aws.sns.Topic

    def __init__(self, name: str, args: AlarmTopicArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/monitoring:AlarmTopic", name, opts)
        ctx, tags = args.context, args.context.tags()
        key = kms_key(
            child(name, "alarms-key"),
            f"SLO alarm notifications of {ctx.stack}",
            tags,
            self.child_opts(),
            _key_policy(self, ctx.settings.region, args.known_arn),
        )
        self.topic = aws.sns.Topic(
            child(name, "alarms", limit=256), kms_master_key_id=key.arn, tags=tags, opts=self.child_opts()
        )
        if ctx.alarm_address is not None:
            aws.sns.TopicSubscription(
                f"{name}-alarm-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=ctx.alarm_address,
                opts=self.child_opts(),
            )
        self.register_outputs({"topicArn": self.topic.arn})


def _key_policy(parent: pulumi.Resource, region: str, known_arn: pulumi.Output[str] | None) -> pulumi.Output[str]:
    """CloudWatch publishes alarms into the topic, so the key must let it encrypt."""
    account = account_id(parent, known_arn)
    return policy_document(
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


@dataclass
class SloAlarmsArgs:
    context: StackContext
    deployment: Deployment
    endpoint_name: str
    gpus: int  # per instance: GPUMemoryUtilization sums over them
    topic_arn: pulumi.Input[str]


class SloAlarms(ResourceGroup):
    """A SageMaker endpoint's three SLO alarms (worst variant's p95 latency, 5XX ratio, GPU memory),
    named as the endpoint's blue/green rollback alarms expect (`slo_alarm_name`)."""

    def __init__(self, name: str, args: SloAlarmsArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/monitoring:SloAlarms", name, opts)
        dep = args.deployment
        self._endpoint = args.endpoint_name
        self._series = _series(dep, args.endpoint_name)
        self._common: dict[str, Any] = {
            "comparison_operator": "GreaterThanThreshold",
            "evaluation_periods": EVALUATION_PERIODS,
            "datapoints_to_alarm": EVALUATION_PERIODS,
            "treat_missing_data": "notBreaching",
            "alarm_actions": [args.topic_arn],
            "ok_actions": [args.topic_arn],
            "tags": args.context.tags(model=dep.name, team=dep.model.owner),
            "opts": self.child_opts(),
        }
        slo = dep.model.monitoring.slo
        # Worst variant's p95 model latency; CloudWatch reports ModelLatency in microseconds.
        latency = self._metrics(0, "AWS/SageMaker", "ModelLatency", "p95")
        self._alarm(
            child(name, "latency", autonamed=False),
            "p95-latency",
            f"{dep.name}: p95 model latency above the SLO of {slo.p95_latency_ms:g} ms",
            slo.p95_latency_ms * 1000,
            [*latency, _expression("p95", f"MAX([{_ids(latency)}])", "p95 ModelLatency (us)")],
        )
        # Server errors over invocations, across variants.
        errors = self._metrics(0, "AWS/SageMaker", "Invocation5XXErrors", "Sum")
        calls = self._metrics(len(errors), "AWS/SageMaker", "Invocations", "Sum")
        ratio = f"IF(SUM([{_ids(calls)}]) > 0, SUM([{_ids(errors)}]) / SUM([{_ids(calls)}]), 0)"
        self._alarm(
            child(name, "errors", autonamed=False),
            "error-rate",
            f"{dep.name}: 5XX error ratio above the SLO of {slo.error_rate:g}",
            slo.error_rate,
            [*errors, *calls, _expression("ratio", ratio, "5XX error ratio")],
        )
        # GPUMemoryUtilization is a percentage per GPU, summed over the instance's GPUs; an inference
        # component publishes it normalized to its own GPUs (0-100).
        gpus = 1 if dep.scale_to_zero else max(1, args.gpus)
        memory = self._metrics(0, *_gpu_memory(dep), "Maximum")
        self._alarm(
            child(name, "gpu-memory", autonamed=False),
            "gpu-memory",
            f"{dep.name}: GPU memory above {slo.gpu_memory_utilization:.0%} on {gpus} GPU(s)",
            slo.gpu_memory_utilization * 100 * gpus,
            [*memory, _expression("gpu", f"MAX([{_ids(memory)}])", "GPUMemoryUtilization (%)")],
        )
        self.register_outputs({})

    def _alarm(self, logical: str, slo: str, description: str, threshold: float, queries: list[Any]) -> None:
        aws.cloudwatch.MetricAlarm(
            logical,
            name=slo_alarm_name(self._endpoint, slo),
            alarm_description=description,
            threshold=threshold,
            metric_queries=queries,
            **self._common,
        )

    def _metrics(self, first: int, namespace: str, metric_name: str, stat: str) -> list[dict[str, Any]]:
        """One metric query per variant, ids m<first>, m<first+1>, …"""
        return [
            {
                "id": f"m{first + i}",
                "return_data": False,
                "metric": {
                    "namespace": namespace,
                    "metric_name": metric_name,
                    "stat": stat,
                    "period": PERIOD,
                    "dimensions": dimensions,
                },
            }
            for i, dimensions in enumerate(self._series)
        ]


def _series(dep: Deployment, endpoint: str) -> list[dict[str, str]]:
    """The dimensions of each series the SLOs watch: one per variant, or the endpoint's inference
    component (a scale-to-zero endpoint: SageMaker reports its invocations per component)."""
    if dep.scale_to_zero is not None:
        return [{"InferenceComponentName": inference_component_name(endpoint)}]
    return [{"EndpointName": endpoint, "VariantName": variant_name(v.version)} for v in dep.variants]


def _gpu_memory(dep: Deployment) -> tuple[str, str]:
    """Where GPU memory is reported: per variant instance, or per inference component."""
    if dep.scale_to_zero is not None:
        return "/aws/sagemaker/InferenceComponents", "GPUMemoryUtilizationNormalized"
    return "/aws/sagemaker/Endpoints", "GPUMemoryUtilization"


def _ids(queries: list[dict[str, Any]]) -> str:
    return ", ".join(q["id"] for q in queries)


def _expression(query_id: str, expression: str, label: str) -> dict[str, Any]:
    return {"id": query_id, "expression": expression, "label": label, "return_data": True}


def _widgets(dep: Deployment, endpoint: str, region: str, y: int) -> list[dict[str, Any]]:
    dimensions = _series(dep, endpoint)

    def series(namespace: str, metric: str, stat: str) -> list[list[Any]]:
        return [[namespace, metric, *[x for kv in d.items() for x in kv], {"stat": stat}] for d in dimensions]

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
        widget(16, "GPU memory (%)", series(*_gpu_memory(dep), "Maximum")),
    ]


def _text_widget(text: str) -> dict[str, Any]:
    return {"type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": {"markdown": text}}


@dataclass
class PrometheusStackArgs:
    context: StackContext
    eks: list[Deployment]  # the stack's EKS endpoints: a PrometheusRule each
    provider: Any  # the cluster's Kubernetes provider
    # The kube target: the operator's CRDs, applied by the caller, stand in for the charts (which
    # need downloads); the rules, monitors and RBAC are the same objects, judged by a real API server.
    operator_crds: list[pulumi.Resource] | None = None


class PrometheusStack(ResourceGroup):
    """kube-prometheus-stack (Prometheus, Alertmanager, an internal read-only Grafana with the
    repository's serving dashboard), ServiceMonitors for serving pods and DCGM, the EKS
    endpoints' SLO rules, and prometheus-adapter exposing in-flight requests to the HPAs."""

    def __init__(self, name: str, args: PrometheusStackArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/monitoring:PrometheusStack", name, opts)
        ctx = self._ctx = args.context
        self._labels = k8s_labels(ctx, model="platform", team="platform")
        charts = args.operator_crds is None
        if not ctx.builds_platform:
            # A model stack: its rules only, on the platform's Prometheus (whose CRDs are in place).
            moved = pulumi.ResourceOptions(aliases=ctx.moved_aliases)
            self._rules(name, args.eks, pulumi.ResourceOptions.merge(self.child_opts(provider=args.provider), moved))
            self.register_outputs({"prometheusUrl": PROMETHEUS_URL})
            return
        crds: list[pulumi.Resource] = args.operator_crds or [
            helm_release(
                self,
                name,
                PROMETHEUS_RELEASE,
                PROMETHEUS_STACK_CHART,
                MONITORING_NAMESPACE,
                _prometheus_values(),
                self.child_opts(provider=args.provider),
            )
        ]
        after_crds = self.child_opts(provider=args.provider, depends_on=crds)
        k8s.core.v1.ConfigMap(
            f"{name}-grafana-dashboard",
            metadata={
                "name": "llmops-serving-dashboard",
                "namespace": MONITORING_NAMESPACE,
                "labels": {**self._labels, "grafana_dashboard": "1"},
            },
            data={"llm-serving.json": DASHBOARD_PATH.read_text()},
            opts=after_crds,
        )
        self._monitors(name, after_crds)
        self._rules(name, args.eks, after_crds)
        self._usage_reader(name, after_crds)
        if charts:
            # Per-pod in-flight requests as custom metrics, for the endpoints' HPAs.
            adapter = _adapter_values()
            helm_release(
                self, name, "prometheus-adapter", PROMETHEUS_ADAPTER_CHART, MONITORING_NAMESPACE, adapter, after_crds
            )
        self.register_outputs({"prometheusUrl": PROMETHEUS_URL})

    def _rules(self, name: str, eks: list[Deployment], opts: pulumi.ResourceOptions) -> None:
        """A PrometheusRule of SLO alerts per EKS endpoint."""
        for dep in eks:
            rules = prometheus_rules([dep], runtime_metrics="tgi" if runtime_of(dep) == "tgi" else "vllm")
            k8s.apiextensions.CustomResource(
                f"{name}-{dep.name}-rules",
                api_version="monitoring.coreos.com/v1",
                kind="PrometheusRule",
                metadata={
                    "name": f"llmops-slo-{dep.name}",
                    "namespace": MONITORING_NAMESPACE,
                    "labels": k8s_labels(self._ctx, model=dep.name, team=dep.model.owner),
                },
                spec=rules,
                opts=opts,
            )

    def _usage_reader(self, name: str, opts: pulumi.ResourceOptions) -> None:
        """Who may query Prometheus through the API server's service proxy (`llmops cost --measured`,
        `rightsize`): the access entries' USAGE_READERS group, `get` on that one Service's proxy.
        The name RBAC checks is the proxy path's `<service>:<port>`, as cluster_access builds it."""
        meta = {"name": "llmops-usage-reader", "namespace": MONITORING_NAMESPACE, "labels": self._labels}
        proxied = [PROMETHEUS_SERVICE, f"{PROMETHEUS_SERVICE}:{PROMETHEUS_PORT}"]
        role = k8s.rbac.v1.Role(
            f"{name}-usage-reader",
            metadata=meta,
            rules=[{"apiGroups": [""], "resources": ["services/proxy"], "resourceNames": proxied, "verbs": ["get"]}],
            opts=opts,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-usage-reader-binding",
            metadata=meta,
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role.metadata.name},
            subjects=[{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": USAGE_READERS}],
            opts=opts,
        )

    def _monitors(self, name: str, opts: pulumi.ResourceOptions) -> None:
        # Serving pods: scrape every llmops Service, labelling series with the model (the Service's
        # name label) and the version (the pod's): the usage report and SLO rules group by both.
        labels = [
            {"sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_name"], "targetLabel": "model"},
            {"sourceLabels": ["__meta_kubernetes_pod_label_llmops_io_version"], "targetLabel": "version"},
        ]
        k8s.apiextensions.CustomResource(
            f"{name}-serving-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"name": "llmops-serving", "namespace": MONITORING_NAMESPACE, "labels": self._labels},
            spec={
                "namespaceSelector": {"any": True},
                "selector": {"matchLabels": {"llmops.io/serving": "true"}},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s", "relabelings": labels}],
            },
            opts=opts,
        )
        # DCGM labels each GPU with the pod using it: keep those labels (honorLabels).
        k8s.apiextensions.CustomResource(
            f"{name}-dcgm-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"name": "dcgm-exporter", "namespace": MONITORING_NAMESPACE, "labels": self._labels},
            spec={
                "namespaceSelector": {"matchNames": ["kube-system"]},
                "selector": {"matchLabels": {"app.kubernetes.io/name": "dcgm-exporter"}},
                "endpoints": [{"port": "metrics", "interval": "15s", "honorLabels": True}],
            },
            opts=opts,
        )


def _prometheus_values() -> dict[str, Any]:
    volume = {"storageClassName": "gp3-encrypted", "accessModes": ["ReadWriteOnce"]}
    return {
        "prometheus": {
            "prometheusSpec": {
                # Pick up every ServiceMonitor and PrometheusRule, not only the chart's own.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "retention": "15d",
                "storageSpec": {
                    "volumeClaimTemplate": {"spec": {**volume, "resources": {"requests": {"storage": "100Gi"}}}}
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
    }


def _adapter_values() -> dict[str, Any]:
    return {
        "prometheus": {"url": f"http://{PROMETHEUS_RELEASE}-prometheus.{MONITORING_NAMESPACE}.svc", "port": 9090},
        "rules": {
            "default": False,
            "custom": [
                {
                    "seriesQuery": f'{series}{{namespace!="",pod!=""}}',
                    "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
                    "name": {"matches": ".*", "as": metric},
                    "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
                }
                for series, metric in ((RUNTIMES[r].running, IN_FLIGHT_METRIC[r]) for r in ("vllm", "tgi"))
            ],
        },
    }
