"""The stack's network: a VPC with private subnets behind NAT in three zones, or the one in config."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.naming import child
from components.context import StackContext
from components.grouping import ResourceGroup

AZ_COUNT = 3


@dataclass
class NetworkArgs:
    context: StackContext


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
            vpc_id, subnets = self._vpc(ctx)
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

    def _vpc(self, ctx: StackContext) -> tuple[pulumi.Output[str], list[pulumi.Input[str]]]:
        name, tags, opts = self._name, self._tags, self.child_opts()
        network = ipaddress.ip_network(ctx.settings.cluster.vpc_cidr)
        quarters = list(network.subnets(prefixlen_diff=2))
        private_cidrs = [str(c) for c in quarters[:AZ_COUNT]]
        public_cidrs = [str(c) for c in list(quarters[3].subnets(prefixlen_diff=2))[:AZ_COUNT]]
        zones = aws.get_availability_zones_output(state="available", opts=pulumi.InvokeOutputOptions(parent=self))
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
        nat_count = AZ_COUNT if ctx.settings.production else 1
        nats: list[aws.ec2.NatGateway] = []
        subnets: list[pulumi.Input[str]] = []
        route_tables: list[aws.ec2.RouteTable] = []
        for i in range(AZ_COUNT):
            public = self._subnet(vpc, i, "public", public_cidrs[i], zones.names[i], {})
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=opts
            )
            if i < nat_count:
                eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags, opts=opts)
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{i}", allocation_id=eip.id, subnet_id=public.id, tags=tags, opts=opts
                    )
                )
            private = self._subnet(
                vpc, i, "private", private_cidrs[i], zones.names[i], {"kubernetes.io/role/internal-elb": "1"}
            )
            route_tables.append(self._private_routes(vpc, i, private, nats[min(i, nat_count - 1)]))
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
        self, vpc: aws.ec2.Vpc, i: int, subnet: aws.ec2.Subnet, nat: aws.ec2.NatGateway
    ) -> aws.ec2.RouteTable:
        table = aws.ec2.RouteTable(
            f"{self._name}-private-{i}",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
            tags={**self._tags, "Name": f"{self._name}-private-{i}"},
            opts=self.child_opts(),
        )
        aws.ec2.RouteTableAssociation(
            f"{self._name}-private-{i}", subnet_id=subnet.id, route_table_id=table.id, opts=self.child_opts()
        )
        return table
