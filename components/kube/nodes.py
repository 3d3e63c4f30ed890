"""Simulated GPU nodes: one kwok node per member of each GPU pool of the stack.

Each node carries its pool's labels (`NodePool.selector`, the labels every workload on the
pool selects, as the EKS node groups carry them), the GPU taint, and as allocatable the
GPUs, vCPUs and memory of the pool's first instance type in the catalog. kwok (started with
an annotation selector) then plays their kubelets: it marks them Ready, renews their
leases and runs the pods the scheduler binds to them, without running any container.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider

from components.aws.placement import GPU_TAINT
from components.kube.pki import PkiPaths
from llmops.catalog import load_catalog
from llmops.settings import NodePool

KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
PODS_PER_NODE = "110"


def pool_nodes(pool: NodePool) -> list[dict[str, Any]]:
    """The Node objects of a pool: `desiredSize` members (at least one), sized by the catalog."""
    instance = load_catalog().get(pool.instance_types[0])
    resources = {
        "cpu": str(instance.vcpus),
        "memory": f"{instance.memory_gib}Gi",
        "nvidia.com/gpu": str(instance.gpus),
        "pods": PODS_PER_NODE,
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"{pool.name}-{i}",
                "labels": {
                    **pool.selector,
                    "kubernetes.io/hostname": f"{pool.name}-{i}",
                    "node.kubernetes.io/instance-type": instance.name,
                    "type": "kwok",
                },
                "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1]},
            },
            "spec": {"taints": [GPU_TAINT]},
            "status": {"allocatable": resources, "capacity": resources},
        }
        for i in range(max(1, pool.desired_size))
    ]


def api_client(pki_folder: str, server: str) -> httpx.Client:
    """An admin client of the stack's API server."""
    paths = PkiPaths(Path(pki_folder))
    context = ssl.create_default_context(cafile=str(paths.ca_crt))
    context.load_cert_chain(str(paths.admin_crt), str(paths.admin_key))
    return httpx.Client(base_url=server, verify=context, timeout=10.0)


class NodesProvider(ResourceProvider):
    """Creates and deletes a pool's Node objects through the API server."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        with api_client(props["pki"], props["server"]) as api:
            for node in props["nodes"]:
                response = api.post("/api/v1/nodes", json=node)
                if response.status_code == 409:  # left by a crashed run: take it over as declared
                    api.delete(f"/api/v1/nodes/{node['metadata']['name']}")
                    response = api.post("/api/v1/nodes", json=node)
                if response.status_code >= 300:
                    raise RuntimeError(f"node {node['metadata']['name']}: {response.text}")
        return CreateResult(props["pool"], props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = olds.get("nodes") != news.get("nodes")
        return DiffResult(changes=changed, replaces=["nodes"] if changed else [], delete_before_replace=True)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if not Path(props["pki"]).is_dir():
            return
        with api_client(props["pki"], props["server"]) as api:
            for node in props["nodes"]:
                api.delete(f"/api/v1/nodes/{node['metadata']['name']}")


class KwokNodes(pulumi.dynamic.Resource, module="kube", name="KwokNodes"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(NodesProvider(), name, props, opts)
