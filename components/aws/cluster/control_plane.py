"""The EKS control plane: its API endpoint's access, KMS-encrypted secrets, audit logs, an OIDC
provider, and the access entries that let CI and administrators reach the Kubernetes API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws.account import account_id, partition
from components.aws.iam import service_trust
from components.aws.naming import child
from components.aws.storage import kms_key
from components.context import StackContext
from components.grouping import ResourceGroup
from llmops.bootstrap.jobs import Kind, ci_role_arn
from llmops.settings import EndpointAccess
from llmops.usage.cluster_access import USAGE_READERS

# EKS access policies (cluster-wide): what each principal may do in Kubernetes.
CLUSTER_ADMIN = "AmazonEKSClusterAdminPolicy"
ADMIN_VIEW = "AmazonEKSAdminViewPolicy"  # read everything, Secrets too (Helm keeps releases in Secrets)
VIEW = "AmazonEKSViewPolicy"
CI_ACCESS: dict[Kind, str] = {"deploy": CLUSTER_ADMIN, "preview": ADMIN_VIEW, "drift": ADMIN_VIEW, "experiment": VIEW}
# A Kubernetes group for what no access policy grants: the view policy, like Kubernetes' `view`
# role, grants no `*/proxy` subresource. The monitoring stack binds it to `get` on its Prometheus
# Service's proxy; the experiment role (experiment.yml, rightsize.yml) is in it.
CI_GROUPS: dict[Kind, list[str]] = {"experiment": [USAGE_READERS]}


@dataclass
class EksControlPlaneArgs:
    context: StackContext
    subnet_ids: pulumi.Input[list[str]]


class EksControlPlane(ResourceGroup):
    """The cluster with its service role, its secrets key, and the OIDC provider that IRSA roles trust.

    The API endpoint's reach is the stack's `cluster.endpointAccess`: public, restricted to its
    CIDRs (GitHub-hosted runners deploy over it; IAM authenticates every request), or private,
    reachable only from inside the VPC (self-hosted runners there). Authentication is by access
    entries only (`ClusterAccess`); the creator gets no implicit admin entry.
    """

    cluster: aws.eks.Cluster
    oidc: aws.iam.OpenIdConnectProvider

    def __init__(self, name: str, args: EksControlPlaneArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/cluster:EksControlPlane", name, opts)
        ctx, tags = args.context, args.context.tags()
        secrets_key = kms_key(child(name, "secrets-key"), f"EKS secrets of {ctx.stack}", tags, self.child_opts())
        role = aws.iam.Role(
            child(name, "cluster-role", limit=64),
            assume_role_policy=service_trust("eks.amazonaws.com"),
            tags=tags,
            opts=self.child_opts(),
        )
        role_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy",
            role=role.name,
            policy_arn=f"arn:{partition(ctx.settings.region)}:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=self.child_opts(),
        )
        self.cluster = aws.eks.Cluster(
            child(name, "eks", limit=100),
            version=ctx.settings.cluster.kubernetes_version,
            role_arn=role.arn,
            vpc_config=vpc_config(args.subnet_ids, ctx.settings.cluster.endpoint_access),
            encryption_config={"provider": {"key_arn": secrets_key.arn}, "resources": ["secrets"]},
            # The deploy role's own access entry replaces the implicit one for the creator; a
            # cluster created with it keeps it (the flag is fixed at creation, changing it replaces).
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": False},
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=tags,
            opts=self.child_opts(
                depends_on=[role_policy], ignore_changes=["accessConfig.bootstrapClusterCreatorAdminPermissions"]
            ),
        )
        self.oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.cluster.identities[0].oidcs[0].issuer,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags,
            opts=self.child_opts(),
        )
        self.register_outputs({"clusterName": self.cluster.name, "oidcProviderArn": self.oidc.arn})

    def kubeconfig(self, region: str) -> pulumi.Output[str]:
        """A kubeconfig for this cluster, as a secret (it names the cluster's endpoint and CA)."""
        c = self.cluster
        config = pulumi.Output.all(c.name, c.endpoint, c.certificate_authority.data).apply(
            lambda a: kubeconfig(a[0], a[1], a[2], region)
        )
        return pulumi.Output.secret(config)


def vpc_config(subnet_ids: pulumi.Input[list[str]], access: EndpointAccess) -> dict[str, Any]:
    """The endpoint's reach: always from inside the VPC; from outside only the configured networks."""
    public = access.mode == "public"
    out: dict[str, Any] = {"subnet_ids": subnet_ids, "endpoint_private_access": True, "endpoint_public_access": public}
    if public:
        out["public_access_cidrs"] = access.public_cidrs
    return out


@dataclass
class ClusterAccessArgs:
    context: StackContext
    cluster: aws.eks.Cluster


class ClusterAccess(pulumi.ComponentResource):
    """Access entries and their cluster-wide access policies: the CI roles the bootstrap made
    (deploy as cluster admin, preview and drift reading everything, experiment viewing) and the
    stack's `cluster.admins`."""

    def __init__(self, name: str, args: ClusterAccessArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/cluster:ClusterAccess", name, None, opts)
        settings = args.context.settings
        part = partition(settings.region)
        account = account_id(self, args.cluster.arn)
        grants: list[tuple[str, pulumi.Input[str], str, list[str]]] = []
        if settings.cluster.ci_access:
            for kind, policy in CI_ACCESS.items():
                arn = account.apply(lambda a, k=kind: ci_role_arn(part, a, k, settings.environment))
                grants.append((f"ci-{kind}", arn, policy, CI_GROUPS.get(kind, [])))
        grants += [(f"admin-{i}", arn, CLUSTER_ADMIN, []) for i, arn in enumerate(settings.cluster.admins)]
        for label, principal, policy, groups in grants:
            self._grant(name, label, args, principal, f"arn:{part}:eks::aws:cluster-access-policy/{policy}", groups)
        self.register_outputs({})

    def _grant(
        self,
        name: str,
        label: str,
        args: ClusterAccessArgs,
        principal: pulumi.Input[str],
        policy_arn: str,
        groups: list[str],
    ) -> None:
        entry = aws.eks.AccessEntry(
            f"{name}-{label}",
            cluster_name=args.cluster.name,
            principal_arn=principal,
            kubernetes_groups=groups or None,
            type="STANDARD",
            tags=args.context.tags(),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.eks.AccessPolicyAssociation(
            f"{name}-{label}-policy",
            cluster_name=args.cluster.name,
            principal_arn=entry.principal_arn,
            policy_arn=policy_arn,
            access_scope={"type": "cluster"},
            # A sibling of its entry, so that depending on this group waits for the policies too.
            opts=pulumi.ResourceOptions(parent=self),
        )


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (the deployer's AWS credentials)."""
    get_token = ["eks", "get-token", "--cluster-name", cluster_name, "--region", region]
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
                            "args": get_token,
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        }
    )
