"""What the cluster runs besides workloads: the EBS CSI driver, the GPU daemons, the cluster autoscaler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws.account import partition
from components.aws.iam import irsa_trust, policy_document, statement
from components.aws.kubernetes import helm_release
from components.aws.naming import child
from components.aws.placement import GPU_TOLERATION, SYSTEM_NODE_LABELS
from components.grouping import ResourceGroup
from llmops.settings import NodePool

# Helm charts, pinned: (repository, chart, version).
DEVICE_PLUGIN_CHART = ("https://nvidia.github.io/k8s-device-plugin", "nvidia-device-plugin", "0.17.1")
DCGM_EXPORTER_CHART = ("https://nvidia.github.io/dcgm-exporter/helm-charts", "dcgm-exporter", "4.1.1")
AUTOSCALER_CHART = ("https://kubernetes.github.io/autoscaler", "cluster-autoscaler", "9.46.6")
AUTOSCALER_SA = "cluster-autoscaler"
EBS_CSI_SA = "ebs-csi-controller-sa"


@dataclass
class IrsaArgs:
    """What an add-on's IAM role for its Kubernetes service account needs from the cluster."""

    cluster_name: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]
    region: str
    tags: dict[str, str]


class EbsCsiDriver(ResourceGroup):
    """The EKS add-on that provisions EBS volumes (Prometheus storage), with its IRSA role.
    It waits for the node groups: its controller needs nodes to run on."""

    addon: aws.eks.Addon

    def __init__(
        self, name: str, args: IrsaArgs, node_groups: list[pulumi.Resource], opts: pulumi.ResourceOptions
    ) -> None:
        super().__init__("llmops:aws/cluster:EbsCsiDriver", name, opts)
        role = aws.iam.Role(
            child(name, "ebs-csi", limit=64),
            assume_role_policy=irsa_trust(args.oidc_provider_arn, args.oidc_provider_url, "kube-system", EBS_CSI_SA),
            tags=args.tags,
            opts=self.child_opts(),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi-policy",
            role=role.name,
            policy_arn=f"arn:{partition(args.region)}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
            opts=self.child_opts(),
        )
        self.addon = aws.eks.Addon(
            f"{name}-ebs-csi",
            cluster_name=args.cluster_name,
            addon_name="aws-ebs-csi-driver",
            service_account_role_arn=role.arn,
            tags=args.tags,
            opts=self.child_opts(depends_on=node_groups),
        )
        self.register_outputs({})


class GpuDaemons(ResourceGroup):
    """NVIDIA's device plugin (GPUs as schedulable resources) and DCGM exporter (GPU metrics),
    on exactly the nodes of the GPU pools."""

    def __init__(self, name: str, pools: list[NodePool], provider: k8s.Provider, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/cluster:GpuDaemons", name, opts)
        k8s_opts = self.child_opts(provider=provider)
        affinity = gpu_node_affinity(pools)
        plugin = {
            "tolerations": [GPU_TOLERATION],
            "affinity": affinity,
            "gfd": {"enabled": False},
            "nfd": {"enabled": False},
        }
        helm_release(self, name, "nvidia-device-plugin", DEVICE_PLUGIN_CHART, "kube-system", plugin, k8s_opts)
        exporter = {
            "tolerations": [GPU_TOLERATION],
            "affinity": affinity,
            # Scraped through a ServiceMonitor the monitoring stack creates once its CRDs exist.
            "serviceMonitor": {"enabled": False},
            "kubernetes": {"enablePodLabels": True},
        }
        helm_release(self, name, "dcgm-exporter", DCGM_EXPORTER_CHART, "kube-system", exporter, k8s_opts)
        self.register_outputs({})


class ClusterAutoscaler(ResourceGroup):
    """The cluster autoscaler on the system nodes, with an IRSA role that may scale only this
    cluster's node groups; an idle GPU node goes back after 10 minutes."""

    def __init__(self, name: str, args: IrsaArgs, provider: k8s.Provider, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/cluster:ClusterAutoscaler", name, opts)
        role = aws.iam.Role(
            child(name, "autoscaler", limit=64),
            assume_role_policy=irsa_trust(args.oidc_provider_arn, args.oidc_provider_url, "kube-system", AUTOSCALER_SA),
            tags=args.tags,
            opts=self.child_opts(),
        )
        aws.iam.RolePolicy(
            f"{name}-autoscaler-policy",
            role=role.id,
            policy=autoscaler_policy(pulumi.Output.from_input(args.cluster_name)),
            opts=self.child_opts(),
        )
        values = {
            "autoDiscovery": {"clusterName": args.cluster_name},
            "awsRegion": args.region,
            "rbac": {
                "serviceAccount": {"name": AUTOSCALER_SA, "annotations": {"eks.amazonaws.com/role-arn": role.arn}}
            },
            "nodeSelector": SYSTEM_NODE_LABELS,
            "extraArgs": {
                "balance-similar-node-groups": True,
                "skip-nodes-with-system-pods": False,
                "expander": "least-waste",
                # GPU nodes are expensive: give an idle one back after 10 minutes.
                "scale-down-unneeded-time": "10m",
            },
        }
        k8s_opts = self.child_opts(provider=provider)
        helm_release(self, name, "cluster-autoscaler", AUTOSCALER_CHART, "kube-system", values, k8s_opts)
        self.register_outputs({})


def gpu_node_affinity(pools: list[NodePool]) -> dict[str, Any]:
    """GPU daemons run on exactly the nodes of the GPU pools, selected by the pools' own labels."""
    terms = [
        {"matchExpressions": [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(pool.selector.items())]}
        for pool in pools
    ]
    if not terms:  # no GPU pools: keep the daemons off every node
        terms = [{"matchExpressions": [{"key": "llmops.io/pool", "operator": "Exists"}]}]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def autoscaler_policy(cluster_name: pulumi.Output[str]) -> pulumi.Output[str]:
    """Scale only this cluster's node groups (tag-conditioned); describe calls have no resource scope."""
    describe = [
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeAutoScalingInstances",
        "autoscaling:DescribeLaunchConfigurations",
        "autoscaling:DescribeScalingActivities",
        "autoscaling:DescribeTags",
        "ec2:DescribeImages",
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:GetInstanceTypesFromInstanceRequirements",
        "eks:DescribeNodegroup",
    ]
    owned = cluster_name.apply(lambda n: f"aws:ResourceTag/k8s.io/cluster-autoscaler/{n}")
    return policy_document(
        [
            statement("Describe", describe, ["*"]),
            statement(
                "ScaleOwnGroups",
                ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                ["*"],
                {"StringEquals": {owned: "owned"}},
            ),
        ]
    )
