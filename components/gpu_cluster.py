"""GpuCluster: where GPU workloads run.

aws: VPC, EKS with KMS secrets encryption, IRSA, a CPU system node group, one
managed node group per GPU pool, a Kubernetes provider and the GPU add-ons.
kube: etcd, kube-apiserver, controller-manager, scheduler and kwok on 127.0.0.1, one kwok
node per GPU pool member, and a Kubernetes provider on that API server.
local: an inventory of this machine's accelerators, CPUs and memory that
endpoints and jobs are checked against at preview.
"""

from __future__ import annotations

import pulumi

from components.aws.cluster import build_cluster
from components.contracts import GpuClusterArgs, GpuClusterOutputs
from components.kube.cluster import build_kube_cluster
from components.local.gpu_pool import build_gpu_pool

__all__ = ["GpuCluster", "GpuClusterArgs"]


class GpuCluster(GpuClusterOutputs):
    def __init__(self, name: str, args: GpuClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:gpu_cluster:GpuCluster", name, None, opts)
        target = args.context.settings.target
        build = build_cluster if target == "aws" else build_kube_cluster if target == "kube" else build_gpu_pool
        build(self, name, args)
        self.register_outputs(
            {k: v for k, v in {"clusterName": self.cluster_name, "inventory": self.inventory}.items() if v is not None}
        )
