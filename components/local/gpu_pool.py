"""The local GPU pool: this machine's inventory, and the check that every workload fits it.

`LocalGpuPool` is a dynamic resource whose input is the stack's workload demands
(GPUs, GPU memory, CPU fallback per model). Its `check` runs at preview: a
workload this machine cannot hold fails the preview with the need and the
capacity, before anything starts. Its outputs are the inventory and where each
workload runs (GPU indices or CPU); `refresh` takes the inventory again.
"""

from __future__ import annotations

import socket
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from components.contracts import GpuClusterArgs, GpuClusterOutputs
from llmops.local.inventory import place_all, take_inventory


def _demands(props: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(props.get("demands") or {})


def _outputs(props: dict[str, Any]) -> dict[str, Any]:
    """The inventory now, and each workload's placement; raises if one does not fit."""
    inventory = take_inventory()
    placements, problems = place_all(_demands(props), inventory)
    if problems:
        raise ValueError("; ".join(problems))
    return {
        "demands": _demands(props),
        "inventory": inventory.to_dict(),
        "placements": {name: p.to_dict() for name, p in placements.items()},
    }


class GpuPoolProvider(ResourceProvider):
    """Stateless: everything it needs is in the resource's inputs (the engine pickles it)."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        _, problems = place_all(_demands(news), take_inventory())
        # No property name: the engine would print the whole demands map before the reason.
        return CheckResult(news, [CheckFailure("", problem) for problem in problems])

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"gpu-pool-{socket.gethostname()}", _outputs(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only the demands are inputs; the inventory is an observation that `refresh` updates.
        return DiffResult(changes=_demands(olds) != _demands(news), replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(_outputs(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inventory = take_inventory()
        placements, _ = place_all(_demands(props), inventory)
        outs = {
            **props,
            "inventory": inventory.to_dict(),
            "placements": {name: p.to_dict() for name, p in placements.items()},
        }
        return ReadResult(id_, outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """An inventory owns nothing on the machine: nothing to remove."""


class LocalGpuPool(pulumi.dynamic.Resource, module="local", name="GpuPool"):
    demands: pulumi.Output[dict[str, Any]]
    inventory: pulumi.Output[dict[str, Any]]
    placements: pulumi.Output[dict[str, Any]]

    def __init__(self, name: str, demands: dict[str, dict[str, Any]], opts: pulumi.ResourceOptions | None = None):
        super().__init__(GpuPoolProvider(), name, {"demands": demands, "inventory": None, "placements": None}, opts)


def build_gpu_pool(component: GpuClusterOutputs, name: str, args: GpuClusterArgs) -> None:
    pool = LocalGpuPool(f"{name}-pool", args.demands, pulumi.ResourceOptions(parent=component))
    component.inventory = pool.inventory
