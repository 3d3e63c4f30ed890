"""The EKS control plane: private API endpoint, KMS-encrypted secrets, audit logs, an OIDC provider."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.account import partition
from components.aws.iam import service_trust
from components.aws.naming import child
from components.aws.storage import kms_key
from components.context import StackContext
from components.grouping import ResourceGroup


@dataclass
class EksControlPlaneArgs:
    context: StackContext
    subnet_ids: pulumi.Input[list[str]]


class EksControlPlane(ResourceGroup):
    """The cluster with its service role, its secrets key, and the OIDC provider that IRSA roles trust.

    The API endpoint is private: deployments run from inside the VPC (a runner in the VPC, or a VPN).
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
            vpc_config={
                "subnet_ids": args.subnet_ids,
                "endpoint_private_access": True,
                "endpoint_public_access": False,
            },
            encryption_config={"provider": {"key_arn": secrets_key.arn}, "resources": ["secrets"]},
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=tags,
            opts=self.child_opts(depends_on=[role_policy]),
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
