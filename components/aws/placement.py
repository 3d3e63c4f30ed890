"""Placement of GPU workloads: which of the stack's GPU pools runs a workload, and the
taint/toleration pair that keeps everything else off GPU nodes."""

from __future__ import annotations

from components.context import StackContext
from llmops.catalog import load_catalog
from llmops.settings import NodePool

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}


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
