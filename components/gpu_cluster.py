"""GpuCluster: where GPU workloads run.

aws: VPC, EKS with KMS secrets encryption, IRSA, a CPU system node group, one
managed node group per GPU pool, a Kubernetes provider and the GPU add-ons.
local: an inventory of this machine's accelerators, CPUs and memory that
endpoints and jobs are checked against at preview.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.context import StackContext


@dataclass
class GpuClusterArgs:
    context: StackContext
    # GPU memory (GiB) and GPU count each workload needs, by workload name; the
    # local pool refuses at preview what this machine cannot hold.
    demands: dict[str, dict[str, Any]] = field(default_factory=dict)


class GpuCluster(pulumi.ComponentResource):
    # aws
    kube_provider: Any = None
    cluster_name: pulumi.Output[str] | None = None
    oidc_provider_arn: pulumi.Output[str] | None = None
    oidc_provider_url: pulumi.Output[str] | None = None
    vpc_id: pulumi.Output[str] | None = None
    private_subnet_ids: pulumi.Output[list[str]] | None = None
    security_group_id: pulumi.Output[str] | None = None
    # Where endpoints and training Jobs on the cluster run.
    serving_namespace: pulumi.Output[str] | None = None
    # Stack-wide model data: the KMS key and the bucket endpoints capture requests into.
    data_key_arn: pulumi.Output[str] | None = None
    capture_bucket: pulumi.Output[str] | None = None
    capture_bucket_arn: pulumi.Output[str] | None = None
    # local
    inventory: pulumi.Output[dict[str, Any]] | None = None

    def __init__(self, name: str, args: GpuClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:gpu_cluster:GpuCluster", name, None, opts)
        if args.context.settings.target == "aws":
            from components.aws.cluster import build_cluster

            build_cluster(self, name, args)
        else:
            from components.local.gpu_pool import build_gpu_pool

            build_gpu_pool(self, name, args)
        self.register_outputs(
            {k: v for k, v in {"clusterName": self.cluster_name, "inventory": self.inventory}.items() if v is not None}
        )
