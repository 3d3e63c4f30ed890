"""ClusterReference: a model stack's view of its environment's GpuCluster (llmops.layout).

The platform stack exports what its models read from the cluster (`platform_outputs`); a
model stack reads them back through a `pulumi.StackReference` and, where its model runs on
EKS, builds its own Kubernetes provider on the exported kubeconfig; on the local target it
checks its model against this machine's inventory (the GpuCluster's pool, for one model).
The component keeps the GpuCluster's type and name, and the provider its logical name, so
the URNs of everything a model creates are the ones it had in the single stack and
`pulumi state move` carries them.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.context import StackContext
from components.contracts import GpuClusterOutputs, MonitoringStackOutputs
from components.local.gpu_pool import LocalGpuPool

__all__ = ["PLATFORM_OUTPUT", "ClusterReference", "platform_outputs"]

PLATFORM_OUTPUT = "platform"  # the platform stack's output its model stacks read
# GpuClusterOutputs attribute -> key of the platform output: every AWS stack's network and model data ...
_AWS = {
    "vpc_id": "vpcId",
    "private_subnet_ids": "privateSubnetIds",
    "security_group_id": "securityGroupId",
    "data_key_arn": "dataKeyArn",
    "capture_bucket": "captureBucket",
    "capture_bucket_arn": "captureBucketArn",
}
# ... and its EKS cluster, where a model of the environment runs on EKS.
_EKS = {
    "cluster_name": "clusterName",
    "cluster_endpoint": "clusterEndpoint",
    "cluster_ca": "clusterCa",
    "oidc_provider_arn": "oidcProviderArn",
    "oidc_provider_url": "oidcProviderUrl",
    "serving_namespace": "servingNamespace",
}
_FIELDS = {**_AWS, **_EKS}


def platform_outputs(cluster: GpuClusterOutputs, monitoring: MonitoringStackOutputs) -> dict[str, Any]:
    """What model stacks read from their platform stack; the kubeconfig stays secret.

    Every environment stack exports it, single or split, so `llmops migrate-stacks` finds it
    in place before the environment is split."""
    out: dict[str, Any] = {key: getattr(cluster, attr) for attr, key in _FIELDS.items()}
    out["kubeconfig"] = pulumi.Output.secret(cluster.kubeconfig) if cluster.kubeconfig is not None else None
    out["alarmTopicArn"] = monitoring.alarm_topic_arn
    out["prometheusUrl"] = monitoring.prometheus_url
    return {k: v for k, v in out.items() if v is not None}


class ClusterReference(GpuClusterOutputs):
    """The platform's cluster as a model stack reads it; `kubernetes` when the model runs on EKS."""

    alarm_topic_arn: pulumi.Output[str] | None = None
    prometheus_url: pulumi.Output[str] | None = None

    def __init__(
        self,
        name: str,
        ctx: StackContext,
        kubernetes: bool,
        demands: dict[str, dict[str, Any]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("llmops:gpu_cluster:GpuCluster", name, None, opts)
        # A self-managed backend's organization is `organization` (what the SDK's mocks leave unset).
        stack = f"{pulumi.get_organization() or 'organization'}/{pulumi.get_project()}/{ctx.stack}"
        ref = pulumi.StackReference(f"{name}-platform", stack, opts=pulumi.ResourceOptions(parent=self))
        shared = ref.require_output(PLATFORM_OUTPUT)

        def field(key: str, need: str | None = None) -> pulumi.Output[Any]:
            def pick(values: dict[str, Any]) -> Any:
                if need is not None and values.get(key) is None:
                    raise pulumi.RunError(
                        f"stack {ctx.deployed_stack}: its platform stack {ctx.stack} exports no {key} ({need}); "
                        f"run `pulumi up --stack {ctx.stack}` first"
                    )
                return values.get(key)

            return shared.apply(pick)

        target = ctx.settings.target
        needs = {key: "it is not up" for key in _AWS.values()} if target == "aws" else {}
        if kubernetes:
            needs.update({key: "this model runs on EKS, which no model there did before" for key in _EKS.values()})
        for attr, key in _FIELDS.items():
            if key in needs:
                setattr(self, attr, field(key, needs.get(key)))
        self.alarm_topic_arn = field("alarmTopicArn")
        self.prometheus_url = field("prometheusUrl")
        if target == "local":
            # This machine's inventory, and whether the model fits it: checked at preview.
            self.inventory = LocalGpuPool(f"{name}-pool", demands or {}, pulumi.ResourceOptions(parent=self)).inventory
        if kubernetes:
            self.kubeconfig = pulumi.Output.secret(field("kubeconfig", "this model runs on its EKS cluster"))
            # The GpuCluster's provider, by its logical name: a moved workload keeps its provider reference.
            self.kube_provider = k8s.Provider(
                f"{name}-k8s", kubeconfig=self.kubeconfig, opts=pulumi.ResourceOptions(parent=self)
            )
        self.register_outputs({})
