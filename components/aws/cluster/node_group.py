"""Worker nodes: the node role and one EKS managed node group per pool (system or GPU)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.aws.account import partition
from components.aws.iam import service_trust
from components.aws.naming import child
from components.aws.placement import GPU_TAINT
from components.grouping import ResourceGroup

SYSTEM_AMI = "AL2023_x86_64_STANDARD"
GPU_AMI = "AL2023_x86_64_NVIDIA"
GPU_ROOT_VOLUME_GIB = 200  # container images of serving runtimes run to tens of GiB
SYSTEM_ROOT_VOLUME_GIB = 50
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly")


def node_role(name: str, region: str, tags: dict[str, str], parent: pulumi.Resource) -> aws.iam.Role:
    """The IAM role every node of the cluster runs as: worker, CNI and registry pull policies."""
    opts = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        child(name, "node-role", limit=64), assume_role_policy=service_trust("ec2.amazonaws.com"), tags=tags, opts=opts
    )
    for i, policy in enumerate(NODE_POLICIES):
        aws.iam.RolePolicyAttachment(
            f"{name}-node-policy-{i}",
            role=role.name,
            policy_arn=f"arn:{partition(region)}:iam::aws:policy/{policy}",
            opts=opts,
        )
    return role


@dataclass
class NodeGroupArgs:
    """One managed node group. `group_name` and `template_name` are the logical names the group
    and its launch template had before node groups were components: part of their URNs."""

    group_name: str
    template_name: str
    cluster_name: pulumi.Input[str]
    node_role_arn: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    instance_types: list[str]
    min_size: int
    desired_size: int
    max_size: int
    tags: dict[str, str]
    gpu: bool = False
    pool: str | None = None  # the GPU pool's name, tagged on the group
    spot: bool = False
    labels: dict[str, str] = field(default_factory=dict)


class NodeGroup(ResourceGroup):
    """A managed node group on its own launch template (encrypted gp3 root volume, IMDSv2 only).

    GPU groups use the NVIDIA AMI and carry the `nvidia.com/gpu=true:NoSchedule` taint, so only
    workloads that tolerate it (and select the pool's labels) land there; the cluster
    autoscaler owns their desired size once they exist.
    """

    node_group: aws.eks.NodeGroup

    def __init__(self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/cluster:NodeGroup", name, opts)
        volume = GPU_ROOT_VOLUME_GIB if args.gpu else SYSTEM_ROOT_VOLUME_GIB
        template = self._launch_template(args.template_name, volume, args.tags)
        taints = [{"key": GPU_TAINT["key"], "value": GPU_TAINT["value"], "effect": "NO_SCHEDULE"}] if args.gpu else None
        self.node_group = aws.eks.NodeGroup(
            args.group_name,
            cluster_name=args.cluster_name,
            node_role_arn=args.node_role_arn,
            subnet_ids=args.subnet_ids,
            ami_type=GPU_AMI if args.gpu else SYSTEM_AMI,
            capacity_type="SPOT" if args.spot else "ON_DEMAND",
            instance_types=args.instance_types,
            scaling_config={"min_size": args.min_size, "desired_size": args.desired_size, "max_size": args.max_size},
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            labels=args.labels,
            taints=taints,
            update_config={"max_unavailable": 1},
            tags={**args.tags, "llmops.io/pool": args.pool} if args.pool else args.tags,
            opts=self.child_opts(ignore_changes=["scalingConfig.desiredSize"] if args.gpu else None),
        )
        self.register_outputs({"nodeGroupName": self.node_group.node_group_name})

    def _launch_template(self, logical: str, volume_gib: int, tags: dict[str, str]) -> aws.ec2.LaunchTemplate:
        """Encrypted gp3 root volumes and IMDSv2 (hop limit 2 so pods reach it only through IRSA)."""
        ebs = {"volume_size": volume_gib, "volume_type": "gp3", "encrypted": "true", "delete_on_termination": "true"}
        return aws.ec2.LaunchTemplate(
            logical,
            block_device_mappings=[{"device_name": "/dev/xvda", "ebs": ebs}],
            metadata_options={"http_tokens": "required", "http_put_response_hop_limit": 2, "http_endpoint": "enabled"},
            tag_specifications=[{"resource_type": "volume", "tags": tags}, {"resource_type": "instance", "tags": tags}],
            tags=tags,
            opts=self.child_opts(),
        )
