"""A GPU pool's labels and the selectors that place workloads on it cannot drift apart.

Runs the Platform under mocks for the dev stack with its pool's labels changed, and once
with a selector set by hand (the cluster autoscaler's, pointed at a label no node group
carries). Proves: the node group's labels, the endpoint Deployments' and the training
Job's nodeSelector and the GPU daemons' node affinity all follow the pool's labels (they
are derived from `NodePool.selector`, not repeated); a workload whose nodeSelector no node
group of the stack carries fails the program before anything is created, with a message
naming the resource, the selector and every node group. Cannot prove: that a scheduler
places the pods (tests/engine/test_kube_stack.py does, on a real one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.settings import StackSettings

from .fixtures import models, write_registry
from .harness import run_platform

pytestmark = pytest.mark.mocks


def _relabelled(settings: StackSettings, labels: dict[str, str]) -> StackSettings:
    pools = [pool.model_copy(update={"labels": labels}) for pool in settings.cluster.gpu_pools]
    return settings.model_copy(update={"cluster": settings.cluster.model_copy(update={"gpu_pools": pools})})


def test_a_changed_pool_label_moves_every_selector_with_it(stacks: dict[str, StackSettings], tmp_path: Path) -> None:
    labels = {"llmops.io/accelerator": "a10g-renamed", "example.com/tier": "gpu"}
    settings = _relabelled(stacks["dev"], labels)
    registry = write_registry(tmp_path, {"code-eks": models()["code-eks"]})
    graph = run_platform("dev", settings, registry, tmp_path)

    [pool] = settings.cluster.gpu_pools
    expected = {"llmops.io/pool": pool.name, **labels}
    groups = [g.inputs["labels"] for g in graph.of_type("aws:eks/nodeGroup:NodeGroup")]
    assert expected in groups, groups
    workloads = [*graph.of_type("kubernetes:apps/v1:Deployment"), *graph.of_type("kubernetes:batch/v1:Job")]
    assert workloads
    for workload in workloads:
        assert workload.inputs["spec"]["template"]["spec"]["nodeSelector"] == expected, workload.name
    affinity = [
        d.inputs["values"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        for d in graph.of_type("kubernetes:helm.sh/v3:Release")
        if "affinity" in (d.inputs.get("values") or {})
    ]
    assert affinity, "the GPU daemons select the pools by affinity"
    for required in affinity:
        [term] = required["nodeSelectorTerms"]
        assert {e["key"]: e["values"][0] for e in term["matchExpressions"]} == expected


def test_a_hand_set_node_selector_no_node_group_carries_fails_before_up(
    stacks: dict[str, StackSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import components.aws.cluster.addons as addons

    # The autoscaler's selector set by hand, out of step with the system node group's labels.
    monkeypatch.setattr(addons, "SYSTEM_NODE_LABELS", {"llmops.io/role": "sytem"})
    registry = write_registry(tmp_path, {"code-eks": models()["code-eks"]})
    with pytest.raises(Exception) as caught:
        run_platform("dev", stacks["dev"], registry, tmp_path)
    message = str(caught.value)
    assert "cluster-autoscaler: nodeSelector {'llmops.io/role': 'sytem'} matches no node group" in message, message
    assert "system: {'llmops.io/role': 'system'}" in message and "a10g-spot: {'llmops.io/pool': 'a10g-spot'" in message
    assert "stacks/Pulumi.dev.yaml llmops:cluster.gpuPools[].labels" in message
