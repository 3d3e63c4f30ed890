"""The stack's network: a VPC with private subnets behind NAT in three zones, or the one in config."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws.naming import child
from components.context import StackContext
from components.grouping import ResourceGroup

AZ_COUNT = 3


@dataclass
class NetworkArgs:
    context: StackContext
    # Whether anything in the VPC needs the internet (llmops.footprint): without, no public
    # subnets, internet gateway or NAT; S3 stays reachable through the gateway endpoint.
    nat: bool = True


class Network(ResourceGroup):
    """VPC, subnets, NAT, route tables, an S3 gateway endpoint and the workloads' security group.

    With `llmops:cluster.vpcId` in the stack's config only the security group is created,
    in that VPC; otherwise private subnets take three quarters of `vpcCidr` (pods take IPs
    from them), public ones the rest, and there is one NAT gateway per zone in production
    (a zone outage keeps egress), one shared elsewhere.
    """

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__("llmops:aws/cluster:Network", name, opts)
        ctx, settings = args.context, args.context.settings.cluster
        self._name, self._tags = name, ctx.tags()
        if settings.vpc_id:
            if len(settings.private_subnet_ids) < 2:
                raise ValueError(
                    f"stacks/Pulumi.{ctx.stack}.yaml: llmops:cluster.vpcId is set; give at least two "
                    "llmops:cluster.privateSubnetIds in different availability zones"
                )
            vpc_id: pulumi.Input[str] = settings.vpc_id
            subnets: list[pulumi.Input[str]] = list(settings.private_subnet_ids)
        else:
            vpc_id, subnets = self._vpc(ctx, args.nat)
        self.vpc_id = pulumi.Output.from_input(vpc_id)
        self.private_subnet_ids = pulumi.Output.all(*subnets)
        # Workloads outside Kubernetes (SageMaker models) attach to this group: egress only.
        self.security_group_id = aws.ec2.SecurityGroup(
            child(name, "workloads", limit=255),
            vpc_id=vpc_id,
            description="LLMOps workloads in the VPC (SageMaker models): no inbound, egress for S3/ECR/Hub",
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
            tags={**self._tags, "Name": f"{name}-workloads"},
            opts=self.child_opts(),
        ).id
        self.register_outputs({"vpcId": self.vpc_id, "privateSubnetIds": self.private_subnet_ids})

    def _vpc(self, ctx: StackContext, nat: bool) -> tuple[pulumi.Output[str], list[pulumi.Input[str]]]:
        name, tags, opts = self._name, self._tags, self.child_opts()
        network = ipaddress.ip_network(ctx.settings.cluster.vpc_cidr)
        quarters = list(network.subnets(prefixlen_diff=2))
        private_cidrs = [str(c) for c in quarters[:AZ_COUNT]]
        zones = aws.get_availability_zones_output(state="available", opts=pulumi.InvokeOutputOptions(parent=self))
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(network),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": f"{name}-vpc"},
            opts=opts,
        )
        nats = self._nat_gateways(vpc, quarters[3], zones, AZ_COUNT if ctx.settings.production else 1) if nat else []
        subnets: list[pulumi.Input[str]] = []
        route_tables: list[aws.ec2.RouteTable] = []
        for i in range(AZ_COUNT):
            private = self._subnet(
                vpc, i, "private", private_cidrs[i], zones.names[i], {"kubernetes.io/role/internal-elb": "1"}
            )
            route_tables.append(self._private_routes(vpc, i, private, nats[min(i, len(nats) - 1)] if nats else None))
            subnets.append(private.id)
        # Model weights and artifacts come from S3: keep that traffic off the NAT gateways.
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{ctx.settings.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in route_tables],
            tags=tags,
            opts=opts,
        )
        return vpc.id, subnets

    def _nat_gateways(
        self, vpc: aws.ec2.Vpc, quarter: ipaddress.IPv4Network | ipaddress.IPv6Network, zones: Any, count: int
    ) -> list[aws.ec2.NatGateway]:
        """Public subnets behind an internet gateway, and `count` NAT gateways in them."""
        name, tags, opts = self._name, self._tags, self.child_opts()
        public_cidrs = [str(c) for c in list(quarter.subnets(prefixlen_diff=2))[:AZ_COUNT]]
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=opts)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags={**tags, "Name": f"{name}-public"},
            opts=opts,
        )
        nats: list[aws.ec2.NatGateway] = []
        for i in range(AZ_COUNT):
            public = self._subnet(vpc, i, "public", public_cidrs[i], zones.names[i], {})
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=opts
            )
            if i < count:
                eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags, opts=opts)
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{i}", allocation_id=eip.id, subnet_id=public.id, tags=tags, opts=opts
                    )
                )
        return nats

    def _subnet(
        self, vpc: aws.ec2.Vpc, i: int, kind: str, cidr: str, zone: pulumi.Input[str], extra_tags: dict[str, str]
    ) -> aws.ec2.Subnet:
        return aws.ec2.Subnet(
            f"{self._name}-{kind}-{i}",
            vpc_id=vpc.id,
            cidr_block=cidr,
            availability_zone=zone,
            **({"map_public_ip_on_launch": False} if kind == "public" else {}),
            tags={**self._tags, "Name": f"{self._name}-{kind}-{i}", **extra_tags},
            opts=self.child_opts(),
        )

    def _private_routes(
        self, vpc: aws.ec2.Vpc, i: int, subnet: aws.ec2.Subnet, nat: aws.ec2.NatGateway | None
    ) -> aws.ec2.RouteTable:
        table = aws.ec2.RouteTable(
            f"{self._name}-private-{i}",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}] if nat is not None else [],
            tags={**self._tags, "Name": f"{self._name}-private-{i}"},
            opts=self.child_opts(),
        )
        aws.ec2.RouteTableAssociation(
            f"{self._name}-private-{i}", subnet_id=subnet.id, route_table_id=table.id, opts=self.child_opts()
        )
        return table
