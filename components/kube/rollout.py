"""Whether an endpoint's pods found room on the kube target's GPU pools, said in the registry's terms.

On kube the EKS builders' Deployments are applied with `pulumi.com/skipAwait` (a transform
on the endpoint), and `PodsScheduled` waits instead: until every pod of the model is Running,
or until the scheduler has left one Pending for `PENDING_SECONDS`, when it fails `up` with the
model, the scheduler's own reason and each pool's nodes and GPUs. The provider's await would
wait ten minutes and name only the Deployment.
"""

from __future__ import annotations

import time
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from components.aws.eks_endpoint import variant_replicas
from components.aws.kubernetes import SERVING_NAMESPACE
from components.contracts import ModelEndpointArgs, ModelEndpointOutputs
from components.kube.cluster import api_address
from components.kube.nodes import api_client
from llmops.catalog import load_catalog
from llmops.settings import NodePool

PENDING_SECONDS = 30.0
RUNNING_TIMEOUT = 300.0


def skip_await(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """Deployments go in without the provider's readiness await; `PodsScheduled` checks them."""
    if args.type_ != "kubernetes:apps/v1:Deployment":
        return None
    props = dict(args.props)
    metadata = dict(props.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), "pulumi.com/skipAwait": "true"}
    props["metadata"] = metadata
    return pulumi.ResourceTransformResult(props, args.opts)


def _unschedulable(pod: dict[str, Any]) -> str | None:
    for condition in pod.get("status", {}).get("conditions", []):
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return str(condition.get("message", "unschedulable"))
    return None


def _wait(props: dict[str, Any]) -> dict[str, Any]:
    selector = f"app.kubernetes.io/name={props['model']}"
    first_pending: float | None = None
    deadline = time.monotonic() + RUNNING_TIMEOUT
    with api_client(props["pki"], props["server"]) as api:
        while True:
            pods = api.get(f"/api/v1/namespaces/{props['namespace']}/pods", params={"labelSelector": selector})
            items = pods.json().get("items", [])
            reasons = [r for p in items if (r := _unschedulable(p))]
            running = [p for p in items if p.get("status", {}).get("phase") == "Running"]
            if items and len(running) == len(items) and len(items) >= int(props["replicas"]):
                return {**props, "pods": {p["metadata"]["name"]: p["spec"]["nodeName"] for p in running}}
            first_pending = (first_pending or time.monotonic()) if reasons else None
            if first_pending is not None and time.monotonic() - first_pending > PENDING_SECONDS:
                raise RuntimeError(
                    f"{props['model']}: {len(reasons)} pod(s) stay Pending on the GPU pools "
                    f"({props['pools']}): {reasons[0]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{props['model']}: pods not Running after {RUNNING_TIMEOUT:g}s ({props['pools']})")
            time.sleep(1)


class PodsScheduledProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(props["model"], _wait(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("model", "replicas", "pools", "revision")
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys), replaces=[])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(_wait(news))


class PodsScheduled(pulumi.dynamic.Resource, module="kube", name="PodsScheduled"):
    pods: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(PodsScheduledProvider(), name, {**props, "pods": None}, opts)


def pools_summary(pools: list[NodePool]) -> str:
    """`a10g: 2 x g5.xlarge (1 GPU each); …`: what the scheduler had to place pods on."""
    catalog = load_catalog()
    return "; ".join(
        f"{p.name}: {max(1, p.desired_size)} x {p.instance_types[0]} ({catalog.get(p.instance_types[0]).gpus} GPU each)"
        for p in pools
    )


def build_pods_scheduled(component: ModelEndpointOutputs, name: str, args: ModelEndpointArgs) -> PodsScheduled:
    """The kube endpoint's check that its pods run; `up` waits for it and fails with its message."""
    dep, settings = args.deployment, args.context.settings
    pki, server = api_address(args.context)
    props = {
        "model": dep.name,
        "namespace": SERVING_NAMESPACE,
        "replicas": sum(variant_replicas(v.weight, dep.min_replicas) for v in dep.variants),
        "revision": [f"{v.version}:{v.weight}" for v in dep.variants],
        "pools": pools_summary(settings.cluster.gpu_pools),
        "pki": pki,
        "server": server,
        "service": component.url,  # after the Service, so after the Deployments were sent
    }
    return PodsScheduled(f"{name}-scheduled", props, pulumi.ResourceOptions(parent=component))
