"""Placement of GPU workloads: which of the stack's GPU pools runs a workload, and the
taint/toleration pair that keeps everything else off GPU nodes.

Node labels and the selectors that must match them come from one place: a GPU pool's
labels are `NodePool.selector`, which both its nodes (the EKS node group, the kube
target's kwok nodes) and every workload placed on it use; the system node group's are
`SYSTEM_NODE_LABELS`. `check_node_selectors` refuses, before anything is created, a
Kubernetes workload whose nodeSelector no node group of the stack carries, as a
selector set by hand elsewhere would be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi

from components.context import StackContext
from llmops.catalog import load_catalog
from llmops.settings import NodePool

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
SYSTEM_NODE_LABELS = {"llmops.io/role": "system"}  # the EKS system node group's, and what selects it


def pool_for(ctx: StackContext, instance_type: str, gpus: int, gpu_memory_gib: float, *, what: str) -> NodePool:
    """The stack's GPU pool a workload runs on: the one offering the sized instance type,
    else the first whose instances have enough GPUs of enough memory."""
    pools = ctx.settings.cluster.gpu_pools
    for pool in pools:
        if instance_type in pool.instance_types:
            return pool
    catalog = {i.name: i for i in load_catalog().instances}
    for pool in pools:
        fits = [catalog[t] for t in pool.instance_types if t in catalog]
        if fits and all(i.gpus >= gpus and i.gpu_memory_gib >= gpu_memory_gib for i in fits):
            return pool
    raise ValueError(
        f"{what}: no GPU pool of stack {ctx.stack!r} offers {instance_type} or {gpus} GPU(s) of "
        f">= {gpu_memory_gib:g} GiB (pools: {', '.join(p.name for p in pools) or 'none'}); "
        "add one under llmops:cluster.gpuPools"
    )


def node_groups(ctx: StackContext) -> dict[str, dict[str, str]]:
    """Each node group of the stack and the labels its nodes carry."""
    groups = {pool.name: pool.selector for pool in ctx.settings.cluster.gpu_pools}
    if ctx.settings.target == "aws":
        groups["system"] = SYSTEM_NODE_LABELS
    return groups


def _node_selector(props: dict[str, Any]) -> Any:
    """A workload's nodeSelector: a pod template's, a pod's, or a Helm release's values."""
    spec = props.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        return template["spec"].get("nodeSelector")
    if isinstance(spec, dict) and "nodeSelector" in spec:
        return spec["nodeSelector"]
    values = props.get("values")
    return values.get("nodeSelector") if isinstance(values, dict) else None


def check_node_selectors(ctx: StackContext) -> Callable[[pulumi.ResourceTransformationArgs], None]:
    """A transformation failing the program when a workload selects labels no node group of the stack has."""
    groups = node_groups(ctx)

    def check(args: pulumi.ResourceTransformationArgs) -> None:
        selector = _node_selector(args.props)
        if not isinstance(selector, dict) or not all(isinstance(v, str) for v in selector.values()):
            return None  # none, or not known until apply
        if any(all(labels.get(k) == v for k, v in selector.items()) for labels in groups.values()):
            return None
        shown = "; ".join(f"{name}: {labels}" for name, labels in groups.items()) or "none"
        raise pulumi.RunError(
            f"{args.type_} {args.name}: nodeSelector {selector} matches no node group of stack {ctx.stack!r} "
            f"(node groups: {shown}); a GPU pool's labels are stacks/Pulumi.{ctx.stack}.yaml "
            "llmops:cluster.gpuPools[].labels, and a workload on it selects them through NodePool.selector"
        )

    return check
