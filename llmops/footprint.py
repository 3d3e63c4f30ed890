"""What an AWS stack's shared infrastructure must include, and what it leaves out and why.

An EKS cluster (control plane, system nodes, GPU node pools, add-ons) is built only where
something runs on it: an endpoint on EKS or a training Job there, or `cluster.create:
always`. NAT gateways are built where something inside the VPC needs the internet: the
cluster's nodes, or a SageMaker model whose container downloads its weights from the
Hugging Face Hub (one that loads from S3 reaches it through the VPC's S3 endpoint).
`Platform` builds from this, `llmops cost` counts from it, and the preview prints its notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmops.registry import Deployment
from llmops.settings import StackSettings
from llmops.sizing.stacks import stack_platform


@dataclass(frozen=True)
class Footprint:
    eks: bool
    nat: bool
    eks_users: list[str] = field(default_factory=list)  # what needs the cluster, as "model (why)"
    nat_users: list[str] = field(default_factory=list)  # what needs the NAT gateways
    aws: bool = True  # a local stack builds none of these, and has nothing to say about them

    def notes(self, stack: str) -> list[str]:
        """One line per part left out or kept only for a reason, for the preview."""
        out: list[str] = []
        if not self.aws:
            return out
        if not self.eks:
            out.append(
                f"{stack}: no EKS cluster, node pools or system nodes: every model serves and trains on SageMaker "
                "(set llmops:cluster.create: always to keep one)"
            )
        if not self.nat:
            out.append(f"{stack}: no NAT gateways: nothing in the VPC needs the internet (S3 through the VPC endpoint)")
        elif not self.eks:
            out.append(f"{stack}: NAT gateways kept for {', '.join(self.nat_users)}")
        return out


def stack_footprint(settings: StackSettings, deployments: list[Deployment]) -> Footprint:
    """The shared parts an AWS stack needs for these deployments (a local stack needs none)."""
    if settings.target != "aws":
        return Footprint(eks=False, nat=False, aws=False)
    eks_users = [f"{d.name} (endpoint on EKS)" for d in deployments if stack_platform(d, settings) == "ec2"]
    eks_users += [
        f"{d.name} (training Job on EKS)"
        for d in deployments
        if d.model.training is not None and d.model.training.platform == "eks"
    ]
    if settings.cluster.create == "always":
        eks_users.append("llmops:cluster.create: always")
    eks = bool(eks_users)
    hub = sorted(
        {
            f"{d.name} (loads weights from the Hugging Face Hub)"
            for d in deployments
            if stack_platform(d, settings) == "sagemaker"
            and any(d.variant_source(v).kind == "huggingface" for v in d.variants)
        }
    )
    nat_users = (["the EKS nodes"] if eks else []) + hub
    # An existing VPC brings its own egress: the stack builds no NAT there.
    nat = bool(nat_users) and settings.cluster.vpc_id is None
    return Footprint(eks=eks, nat=nat, eks_users=eks_users, nat_users=nat_users)
