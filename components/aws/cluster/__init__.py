"""GpuCluster on AWS: network, EKS with KMS-encrypted secrets, IRSA, node groups, GPU add-ons.

`build_cluster` composes the cluster from child components, each one resource group:
`Network`, `ModelDataStore`, `EksControlPlane`, a `NodeGroup` for the system nodes and
one per GPU pool, `EbsCsiDriver`, `GpuDaemons` and `ClusterAutoscaler`. The node role,
the Kubernetes provider, the serving namespace and the default storage class stay
directly under the GpuCluster: every group above uses them.

Each GPU pool of the stack becomes one managed node group whose labels are the
pool's `selector` and whose nodes carry the `nvidia.com/gpu=true:NoSchedule`
taint; workloads select the same `selector`, so placement cannot drift from the
pools.
"""

from __future__ import annotations

from dataclasses import replace

import pulumi
import pulumi_kubernetes as k8s

from components.aws.cluster.addons import ClusterAutoscaler, EbsCsiDriver, GpuDaemons, IrsaArgs
from components.aws.cluster.control_plane import ClusterAccess, ClusterAccessArgs, EksControlPlane, EksControlPlaneArgs
from components.aws.cluster.model_data import ModelDataStore, ModelDataStoreArgs
from components.aws.cluster.network import Network, NetworkArgs
from components.aws.cluster.node_group import NodeGroup, NodeGroupArgs, node_role
from components.aws.kubernetes import SERVING_NAMESPACE
from components.aws.naming import child
from components.aws.placement import SYSTEM_NODE_LABELS
from components.contracts import GpuClusterArgs, GpuClusterOutputs

__all__ = ["build_cluster"]


def build_cluster(component: GpuClusterOutputs, name: str, args: GpuClusterArgs) -> None:
    """The AWS children of a GpuCluster; fills in the outputs endpoints, training and monitoring read."""
    ctx, settings = args.context, args.context.settings
    tags, region = ctx.tags(), settings.region
    group = pulumi.ResourceOptions(parent=component)

    footprint = args.footprint
    network = Network(name, NetworkArgs(ctx, nat=footprint is None or footprint.nat), group)
    data = ModelDataStore(name, ModelDataStoreArgs(ctx), group)
    component.vpc_id, component.private_subnet_ids = network.vpc_id, network.private_subnet_ids
    component.security_group_id, component.data_key_arn = network.security_group_id, data.key_arn
    component.capture_bucket, component.capture_bucket_arn = data.capture_bucket, data.capture_bucket_arn
    if footprint is not None:
        for note in footprint.notes(ctx.stack):
            pulumi.log.info(note, resource=component)
        if not footprint.eks:
            return
    plane = EksControlPlane(name, EksControlPlaneArgs(ctx, network.private_subnet_ids), group)
    cluster, oidc = plane.cluster, plane.oidc
    access = ClusterAccess(f"{name}-access", ClusterAccessArgs(ctx, cluster), group)

    role = node_role(name, region, tags, component)
    groups = _node_groups(name, args, cluster.name, role.arn, network.private_subnet_ids, group)

    irsa = IrsaArgs(cluster.name, oidc.arn, oidc.url, region, tags)
    ebs = EbsCsiDriver(name, irsa, groups, group)
    component.kubeconfig = plane.kubeconfig(region)
    provider = k8s.Provider(
        f"{name}-k8s",
        kubeconfig=component.kubeconfig,
        opts=pulumi.ResourceOptions(parent=component, depends_on=[*groups, access]),
    )
    namespace = k8s.core.v1.Namespace(
        f"{name}-serving-ns",
        metadata={"name": SERVING_NAMESPACE, "labels": {**tags, "app.kubernetes.io/managed-by": "llmops"}},
        opts=pulumi.ResourceOptions(parent=component, provider=provider),
    )
    _default_storage_class(name, tags, component, provider, ebs)
    GpuDaemons(name, settings.cluster.gpu_pools, provider, group)
    ClusterAutoscaler(name, irsa, provider, group)

    component.cluster_name, component.kube_provider = cluster.name, provider
    component.cluster_endpoint, component.cluster_ca = cluster.endpoint, cluster.certificate_authority.data
    component.oidc_provider_arn, component.oidc_provider_url = oidc.arn, oidc.url
    component.serving_namespace = namespace.metadata.name


def _node_groups(
    name: str,
    args: GpuClusterArgs,
    cluster_name: pulumi.Input[str],
    role_arn: pulumi.Input[str],
    subnet_ids: pulumi.Input[list[str]],
    group: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """The system node group and one per GPU pool, by the logical names they had before groups."""
    settings = args.context.settings.cluster
    nodes = NodeGroupArgs(
        group_name=child(name, "system"),
        template_name=child(name, "system-lt", limit=128),
        cluster_name=cluster_name,
        node_role_arn=role_arn,
        subnet_ids=subnet_ids,
        instance_types=[settings.system_instance_type],
        min_size=settings.system_nodes,
        desired_size=settings.system_nodes,
        max_size=settings.system_nodes + 1,
        labels=SYSTEM_NODE_LABELS,
        tags=args.context.tags(),
    )
    groups: list[pulumi.Resource] = [NodeGroup(nodes.group_name, nodes, group).node_group]
    for pool in settings.gpu_pools:
        gpu = replace(
            nodes,
            group_name=child(name, f"gpu-{pool.name}"),
            template_name=child(name, f"{pool.name}-lt", limit=128),
            instance_types=pool.instance_types,
            min_size=pool.min_size,
            desired_size=pool.desired_size,
            max_size=pool.max_size,
            labels=pool.selector,
            gpu=True,
            pool=pool.name,
            spot=pool.spot,
        )
        groups.append(NodeGroup(gpu.group_name, gpu, group).node_group)
    return groups


def _default_storage_class(
    name: str, tags: dict[str, str], component: pulumi.Resource, provider: k8s.Provider, ebs: EbsCsiDriver
) -> None:
    """The default storage class for Prometheus and anything else that asks for a volume: encrypted gp3."""
    k8s.storage.v1.StorageClass(
        f"{name}-gp3-encrypted",
        metadata={
            "name": "gp3-encrypted",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            "labels": tags,
        },
        provisioner="ebs.csi.aws.com",
        parameters={"type": "gp3", "encrypted": "true"},
        volume_binding_mode="WaitForFirstConsumer",
        allow_volume_expansion=True,
        reclaim_policy="Delete",
        opts=pulumi.ResourceOptions(parent=component, provider=provider, depends_on=[ebs.addon]),
    )
