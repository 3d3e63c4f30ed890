"""The kube children of a MonitoringStack: the EKS Prometheus stack's own objects on a real API server.

On EKS, kube-prometheus-stack installs the prometheus-operator CRDs and the PrometheusStack
adds the endpoints' PrometheusRules, the ServiceMonitors and the usage-reader RBAC. Here the
charts cannot be downloaded, so the CRDs come from the prometheus-operator Go module's shipped
files (`make kube-tools`: scripts/fetch-kube-crds.sh), and the same PrometheusStack builds the
same objects on them. The API server validates each against the CRD's schema, as a cluster
would; nothing evaluates the rules (no Prometheus runs on this target).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.aws.monitoring import MONITORING_NAMESPACE, PrometheusStack, PrometheusStackArgs
from components.contracts import MonitoringStackArgs, MonitoringStackOutputs
from components.kube.cluster import TOOLS_DIR

OPERATOR_CRDS = {
    "prometheusrules": "share/crds/monitoring.coreos.com_prometheusrules.yaml",
    "servicemonitors": "share/crds/monitoring.coreos.com_servicemonitors.yaml",
}


def build_kube_monitoring(component: MonitoringStackOutputs, name: str, args: MonitoringStackArgs) -> None:
    ctx, cluster = args.context, args.cluster
    if cluster is None or cluster.kube_provider is None:
        raise ValueError(f"{ctx.stack}: the kube target's monitoring needs the stack's GpuCluster")
    tools = (ctx.root / TOOLS_DIR).resolve()
    missing = [f for f in OPERATOR_CRDS.values() if not (tools / f).is_file()]
    if missing:
        raise ValueError(f"{tools}: no {', '.join(missing)}: run `make kube-tools`")
    child = pulumi.ResourceOptions(parent=component, provider=cluster.kube_provider)
    namespace = k8s.core.v1.Namespace(
        f"{name}-monitoring-ns",
        metadata={"name": MONITORING_NAMESPACE, "labels": {**ctx.tags(), "app.kubernetes.io/managed-by": "llmops"}},
        opts=child,
    )
    crds: list[pulumi.Resource] = [
        k8s.yaml.v2.ConfigFile(f"{name}-{kind}-crd", file=str(tools / path), opts=child)
        for kind, path in OPERATOR_CRDS.items()
    ]
    platform = ctx.settings.default_endpoint_platform
    eks = [d for _, d in sorted(args.deployments.items()) if (d.platform or platform) == "eks"]
    args_ = PrometheusStackArgs(ctx, eks, cluster.kube_provider, operator_crds=[namespace, *crds])
    PrometheusStack(name, args_, pulumi.ResourceOptions(parent=component))
    pulumi.log.info(
        "kube target: PrometheusRules, ServiceMonitors and their RBAC are applied on the prometheus-operator "
        "CRDs; no Prometheus evaluates them (the kube-prometheus-stack and prometheus-adapter charts need "
        "downloads)",
        component,
    )
