"""GpuCluster on AWS: network, EKS with KMS-encrypted secrets, IRSA, node groups, GPU add-ons.

Each GPU pool of the stack becomes one managed node group whose labels are the
pool's `selector` and whose nodes carry the `nvidia.com/gpu=true:NoSchedule`
taint; workloads select the same `selector`, so placement cannot drift from the
pools. Node volumes are encrypted through a launch template (IMDSv2 only).
The API endpoint is private: deployments run from inside the VPC (a runner in
the VPC, or a VPN).
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws.common import (
    GPU_TAINT,
    GPU_TOLERATION,
    SERVING_NAMESPACE,
    child,
    encrypted_bucket,
    helm_release,
    irsa_trust,
    kms_key,
    partition,
    policy_document,
    service_trust,
    statement,
)
from components.context import StackContext
from llmops.settings import NodePool

if TYPE_CHECKING:
    from components.gpu_cluster import GpuCluster, GpuClusterArgs

AZ_COUNT = 3
SYSTEM_AMI = "AL2023_x86_64_STANDARD"
GPU_AMI = "AL2023_x86_64_NVIDIA"
GPU_ROOT_VOLUME_GIB = 200  # container images of serving runtimes run to tens of GiB
SYSTEM_ROOT_VOLUME_GIB = 50
# Helm charts, pinned: (repository, chart, version).
DEVICE_PLUGIN_CHART = ("https://nvidia.github.io/k8s-device-plugin", "nvidia-device-plugin", "0.17.1")
DCGM_EXPORTER_CHART = ("https://nvidia.github.io/dcgm-exporter/helm-charts", "dcgm-exporter", "4.1.1")
AUTOSCALER_CHART = ("https://kubernetes.github.io/autoscaler", "cluster-autoscaler", "9.46.6")
AUTOSCALER_SA = "cluster-autoscaler"
EBS_CSI_SA = "ebs-csi-controller-sa"


def build_cluster(component: GpuCluster, name: str, args: GpuClusterArgs) -> None:
    ctx = args.context
    tags = ctx.tags()
    opts = pulumi.ResourceOptions(parent=component)
    region = ctx.settings.region

    vpc_id, private_subnets = _network(component, name, ctx)
    component.vpc_id = pulumi.Output.from_input(vpc_id)
    component.private_subnet_ids = pulumi.Output.all(*private_subnets)

    # Workloads outside Kubernetes (SageMaker models) attach to this group: egress only.
    workload_sg = aws.ec2.SecurityGroup(
        child(name, "workloads", limit=255),
        vpc_id=vpc_id,
        description="LLMOps workloads in the VPC (SageMaker models): no inbound, egress for S3/ECR/Hub",
        egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
        tags={**tags, "Name": f"{name}-workloads"},
        opts=opts,
    )
    component.security_group_id = workload_sg.id

    # Model data shared by the stack's endpoints: one key, one capture bucket (a prefix per model,
    # each endpoint's role limited to its own), kept 90 days.
    data_key = kms_key(child(name, "data-key"), f"Model data of {ctx.stack}", tags, component)
    capture = encrypted_bucket(
        child(name, "capture"), kms_key_arn=data_key.arn, tags=tags, parent=component, versioned=False, region=region
    )
    aws.s3.BucketLifecycleConfiguration(
        f"{name}-capture-expiry",
        bucket=capture.id,
        rules=[{"id": "expire-captured-data", "status": "Enabled", "filter": {}, "expiration": {"days": 90}}],
        opts=pulumi.ResourceOptions(parent=capture),
    )
    component.data_key_arn = data_key.arn
    component.capture_bucket = capture.bucket
    component.capture_bucket_arn = capture.arn

    secrets_key = kms_key(child(name, "secrets-key"), f"EKS secrets of {ctx.stack}", tags, component)
    cluster_role = aws.iam.Role(
        child(name, "cluster-role", limit=64),
        assume_role_policy=service_trust("eks.amazonaws.com"),
        tags=tags,
        opts=opts,
    )
    cluster_policy = aws.iam.RolePolicyAttachment(
        f"{name}-cluster-policy",
        role=cluster_role.name,
        policy_arn=f"arn:{partition(region)}:iam::aws:policy/AmazonEKSClusterPolicy",
        opts=opts,
    )
    cluster = aws.eks.Cluster(
        child(name, "eks", limit=100),
        version=ctx.settings.cluster.kubernetes_version,
        role_arn=cluster_role.arn,
        vpc_config={
            "subnet_ids": private_subnets,
            "endpoint_private_access": True,
            "endpoint_public_access": False,
        },
        encryption_config={"provider": {"key_arn": secrets_key.arn}, "resources": ["secrets"]},
        access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
        enabled_cluster_log_types=["api", "audit", "authenticator"],
        tags=tags,
        opts=pulumi.ResourceOptions(parent=component, depends_on=[cluster_policy]),
    )
    component.cluster_name = cluster.name

    oidc = aws.iam.OpenIdConnectProvider(
        f"{name}-oidc",
        url=cluster.identities[0].oidcs[0].issuer,
        client_id_lists=["sts.amazonaws.com"],
        tags=tags,
        opts=opts,
    )
    component.oidc_provider_arn = oidc.arn
    component.oidc_provider_url = oidc.url

    node_role = _node_role(component, name, region, tags)
    system_lt = _launch_template(component, name, "system", SYSTEM_ROOT_VOLUME_GIB, tags)
    node_groups = [
        aws.eks.NodeGroup(
            child(name, "system"),
            cluster_name=cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=private_subnets,
            ami_type=SYSTEM_AMI,
            capacity_type="ON_DEMAND",
            instance_types=[ctx.settings.cluster.system_instance_type],
            scaling_config={
                "min_size": ctx.settings.cluster.system_nodes,
                "desired_size": ctx.settings.cluster.system_nodes,
                "max_size": ctx.settings.cluster.system_nodes + 1,
            },
            launch_template={"id": system_lt.id, "version": system_lt.latest_version.apply(str)},
            labels={"llmops.io/role": "system"},
            update_config={"max_unavailable": 1},
            tags=tags,
            opts=opts,
        )
    ]
    for pool in ctx.settings.cluster.gpu_pools:
        node_groups.append(_gpu_node_group(component, name, ctx, pool, cluster, node_role, private_subnets, tags))

    ebs_addon = _ebs_csi_addon(component, name, ctx, cluster, oidc, tags, node_groups)

    kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority.data).apply(
        lambda a: _kubeconfig(a[0], a[1], a[2], region)
    )
    provider = k8s.Provider(
        f"{name}-k8s",
        kubeconfig=pulumi.Output.secret(kubeconfig),
        opts=pulumi.ResourceOptions(parent=component, depends_on=node_groups),
    )
    component.kube_provider = provider
    k8s_opts = pulumi.ResourceOptions(parent=component, provider=provider)

    namespace = k8s.core.v1.Namespace(
        f"{name}-serving-ns",
        metadata={"name": SERVING_NAMESPACE, "labels": {**tags, "app.kubernetes.io/managed-by": "llmops"}},
        opts=k8s_opts,
    )
    component.serving_namespace = namespace.metadata.name

    # The default storage class for Prometheus and anything else that asks for a volume: encrypted gp3.
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
        opts=pulumi.ResourceOptions(parent=component, provider=provider, depends_on=[ebs_addon]),
    )

    gpu_affinity = _gpu_node_affinity(ctx.settings.cluster.gpu_pools)
    helm_release(
        component,
        name,
        "nvidia-device-plugin",
        DEVICE_PLUGIN_CHART,
        "kube-system",
        {
            "tolerations": [GPU_TOLERATION],
            "affinity": gpu_affinity,
            "gfd": {"enabled": False},
            "nfd": {"enabled": False},
        },
        k8s_opts,
    )
    helm_release(
        component,
        name,
        "dcgm-exporter",
        DCGM_EXPORTER_CHART,
        "kube-system",
        {
            "tolerations": [GPU_TOLERATION],
            "affinity": gpu_affinity,
            # Scraped through a ServiceMonitor the monitoring stack creates once its CRDs exist.
            "serviceMonitor": {"enabled": False},
            "kubernetes": {"enablePodLabels": True},
        },
        k8s_opts,
    )
    autoscaler_role = aws.iam.Role(
        child(name, "autoscaler", limit=64),
        assume_role_policy=irsa_trust(oidc.arn, oidc.url, "kube-system", AUTOSCALER_SA),
        tags=tags,
        opts=opts,
    )
    aws.iam.RolePolicy(
        f"{name}-autoscaler-policy",
        role=autoscaler_role.id,
        policy=_autoscaler_policy(cluster.name),
        opts=opts,
    )
    helm_release(
        component,
        name,
        "cluster-autoscaler",
        AUTOSCALER_CHART,
        "kube-system",
        {
            "autoDiscovery": {"clusterName": cluster.name},
            "awsRegion": region,
            "rbac": {
                "serviceAccount": {
                    "name": AUTOSCALER_SA,
                    "annotations": {"eks.amazonaws.com/role-arn": autoscaler_role.arn},
                }
            },
            "nodeSelector": {"llmops.io/role": "system"},
            "extraArgs": {
                "balance-similar-node-groups": True,
                "skip-nodes-with-system-pods": False,
                "expander": "least-waste",
                # GPU nodes are expensive: give an idle one back after 10 minutes.
                "scale-down-unneeded-time": "10m",
            },
        },
        k8s_opts,
    )


def _network(component: GpuCluster, name: str, ctx: StackContext) -> tuple[pulumi.Input[str], list[pulumi.Input[str]]]:
    """The stack's VPC: given in config, or created with private subnets behind NAT in three AZs."""
    settings = ctx.settings.cluster
    if settings.vpc_id:
        if len(settings.private_subnet_ids) < 2:
            raise ValueError(
                f"stacks/Pulumi.{ctx.stack}.yaml: llmops:cluster.vpcId is set; give at least two "
                "llmops:cluster.privateSubnetIds in different availability zones"
            )
        return settings.vpc_id, list(settings.private_subnet_ids)

    tags = ctx.tags()
    opts = pulumi.ResourceOptions(parent=component)
    network = ipaddress.ip_network(settings.vpc_cidr)
    # Private subnets take three quarters of the range (pods take IPs from them), public the rest.
    quarters = list(network.subnets(prefixlen_diff=2))
    private_cidrs = [str(c) for c in quarters[:AZ_COUNT]]
    public_cidrs = [str(c) for c in list(quarters[3].subnets(prefixlen_diff=2))[:AZ_COUNT]]
    zones = aws.get_availability_zones_output(state="available", opts=pulumi.InvokeOutputOptions(parent=component))

    vpc = aws.ec2.Vpc(
        f"{name}-vpc",
        cidr_block=str(network),
        enable_dns_hostnames=True,
        enable_dns_support=True,
        tags={**tags, "Name": f"{name}-vpc"},
        opts=opts,
    )
    igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=opts)
    public_rt = aws.ec2.RouteTable(
        f"{name}-public",
        vpc_id=vpc.id,
        routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
        tags={**tags, "Name": f"{name}-public"},
        opts=opts,
    )
    # One NAT gateway per zone in production (a zone outage keeps egress); one shared elsewhere.
    nat_count = AZ_COUNT if ctx.settings.production else 1
    nats: list[aws.ec2.NatGateway] = []
    private_subnets: list[pulumi.Input[str]] = []
    private_route_tables: list[aws.ec2.RouteTable] = []
    for i in range(AZ_COUNT):
        zone = zones.names[i]
        public = aws.ec2.Subnet(
            f"{name}-public-{i}",
            vpc_id=vpc.id,
            cidr_block=public_cidrs[i],
            availability_zone=zone,
            map_public_ip_on_launch=False,
            tags={**tags, "Name": f"{name}-public-{i}"},
            opts=opts,
        )
        aws.ec2.RouteTableAssociation(f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=opts)
        if i < nat_count:
            eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags, opts=opts)
            nats.append(
                aws.ec2.NatGateway(f"{name}-nat-{i}", allocation_id=eip.id, subnet_id=public.id, tags=tags, opts=opts)
            )
        private = aws.ec2.Subnet(
            f"{name}-private-{i}",
            vpc_id=vpc.id,
            cidr_block=private_cidrs[i],
            availability_zone=zone,
            tags={**tags, "Name": f"{name}-private-{i}", "kubernetes.io/role/internal-elb": "1"},
            opts=opts,
        )
        private_rt = aws.ec2.RouteTable(
            f"{name}-private-{i}",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nats[min(i, nat_count - 1)].id}],
            tags={**tags, "Name": f"{name}-private-{i}"},
            opts=opts,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-private-{i}", subnet_id=private.id, route_table_id=private_rt.id, opts=opts
        )
        private_subnets.append(private.id)
        private_route_tables.append(private_rt)
    # Model weights and artifacts come from S3: keep that traffic off the NAT gateways.
    aws.ec2.VpcEndpoint(
        f"{name}-s3",
        vpc_id=vpc.id,
        service_name=f"com.amazonaws.{ctx.settings.region}.s3",
        vpc_endpoint_type="Gateway",
        route_table_ids=[rt.id for rt in private_route_tables],
        tags=tags,
        opts=opts,
    )
    return vpc.id, private_subnets


def _node_role(component: GpuCluster, name: str, region: str, tags: dict[str, str]) -> aws.iam.Role:
    opts = pulumi.ResourceOptions(parent=component)
    role = aws.iam.Role(
        child(name, "node-role", limit=64),
        assume_role_policy=service_trust("ec2.amazonaws.com"),
        tags=tags,
        opts=opts,
    )
    for i, policy in enumerate(
        ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly")
    ):
        aws.iam.RolePolicyAttachment(
            f"{name}-node-policy-{i}",
            role=role.name,
            policy_arn=f"arn:{partition(region)}:iam::aws:policy/{policy}",
            opts=opts,
        )
    return role


def _launch_template(
    component: GpuCluster, name: str, pool: str, volume_gib: int, tags: dict[str, str]
) -> aws.ec2.LaunchTemplate:
    """Encrypted gp3 root volumes and IMDSv2 (hop limit 2 so pods reach it only through IRSA)."""
    return aws.ec2.LaunchTemplate(
        child(name, f"{pool}-lt", limit=128),
        block_device_mappings=[
            {
                "device_name": "/dev/xvda",
                "ebs": {
                    "volume_size": volume_gib,
                    "volume_type": "gp3",
                    "encrypted": "true",
                    "delete_on_termination": "true",
                },
            }
        ],
        metadata_options={"http_tokens": "required", "http_put_response_hop_limit": 2, "http_endpoint": "enabled"},
        tag_specifications=[{"resource_type": "volume", "tags": tags}, {"resource_type": "instance", "tags": tags}],
        tags=tags,
        opts=pulumi.ResourceOptions(parent=component),
    )


def _gpu_node_group(
    component: GpuCluster,
    name: str,
    ctx: StackContext,
    pool: NodePool,
    cluster: aws.eks.Cluster,
    node_role: aws.iam.Role,
    subnets: list[pulumi.Input[str]],
    tags: dict[str, str],
) -> aws.eks.NodeGroup:
    lt = _launch_template(component, name, pool.name, GPU_ROOT_VOLUME_GIB, tags)
    return aws.eks.NodeGroup(
        child(name, f"gpu-{pool.name}"),
        cluster_name=cluster.name,
        node_role_arn=node_role.arn,
        subnet_ids=subnets,
        ami_type=GPU_AMI,
        capacity_type="SPOT" if pool.spot else "ON_DEMAND",
        instance_types=pool.instance_types,
        scaling_config={"min_size": pool.min_size, "desired_size": pool.desired_size, "max_size": pool.max_size},
        labels=pool.selector,
        taints=[{"key": GPU_TAINT["key"], "value": GPU_TAINT["value"], "effect": "NO_SCHEDULE"}],
        launch_template={"id": lt.id, "version": lt.latest_version.apply(str)},
        update_config={"max_unavailable": 1},
        tags={**tags, "llmops.io/pool": pool.name},
        # The autoscaler owns the desired size once the group exists.
        opts=pulumi.ResourceOptions(parent=component, ignore_changes=["scalingConfig.desiredSize"]),
    )


def _ebs_csi_addon(
    component: GpuCluster,
    name: str,
    ctx: StackContext,
    cluster: aws.eks.Cluster,
    oidc: aws.iam.OpenIdConnectProvider,
    tags: dict[str, str],
    node_groups: list[aws.eks.NodeGroup],
) -> aws.eks.Addon:
    opts = pulumi.ResourceOptions(parent=component)
    role = aws.iam.Role(
        child(name, "ebs-csi", limit=64),
        assume_role_policy=irsa_trust(oidc.arn, oidc.url, "kube-system", EBS_CSI_SA),
        tags=tags,
        opts=opts,
    )
    aws.iam.RolePolicyAttachment(
        f"{name}-ebs-csi-policy",
        role=role.name,
        policy_arn=f"arn:{partition(ctx.settings.region)}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
        opts=opts,
    )
    return aws.eks.Addon(
        f"{name}-ebs-csi",
        cluster_name=cluster.name,
        addon_name="aws-ebs-csi-driver",
        service_account_role_arn=role.arn,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=component, depends_on=node_groups),
    )


def _gpu_node_affinity(pools: list[NodePool]) -> dict[str, Any]:
    """GPU daemons run on exactly the nodes of the GPU pools, selected by the pools' own labels."""
    terms = [
        {"matchExpressions": [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(pool.selector.items())]}
        for pool in pools
    ]
    if not terms:  # no GPU pools: keep the daemons off every node
        terms = [{"matchExpressions": [{"key": "llmops.io/pool", "operator": "Exists"}]}]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def _autoscaler_policy(cluster_name: pulumi.Output[str]) -> pulumi.Output[str]:
    """Scale only this cluster's node groups (tag-conditioned); describe calls have no resource scope."""
    return policy_document(
        [
            statement(
                "Describe",
                [
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
                ],
                ["*"],
            ),
            statement(
                "ScaleOwnGroups",
                ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                ["*"],
                {
                    "StringEquals": {
                        cluster_name.apply(lambda n: f"aws:ResourceTag/k8s.io/cluster-autoscaler/{n}"): "owned"
                    }
                },
            ),
        ]
    )


def _kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (the deployer's AWS credentials)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}
            ],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        }
    )
