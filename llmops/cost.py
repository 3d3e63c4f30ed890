"""Monthly on-demand cost of a stack, from the registry, the stack settings and the catalog.

Every line has an expected count and a maximum (730 hours a month; the catalog's prices,
instances and services alike, from one table with one date):
- endpoint: the instances its variants keep at min_replicas; at most max_replicas each;
- training: the model's `training.monthly_budget_usd` (jobs are bursty; their budget is the plan);
- control-plane: the EKS cluster, where the stack has one (`llmops.footprint`);
- system-nodes: the EKS system node group (its maximum is one node more, as the group allows);
- node-pool: each GPU pool's desired nodes x its cheapest instance type, less the nodes EKS
  endpoint replicas already occupy (those are on the endpoint's line, counted once); at most
  the pool's maxSize, less the same;
- nat-gateway: the hours of each NAT gateway (data processed is usage and not estimated);
- ebs: the nodes' gp3 root volumes; s3: the weights each training job keeps;
- cloudwatch: the metrics in the SageMaker SLO and drift alarms, and the stack's dashboard.
Not estimated: traffic-priced items (NAT data, S3 requests, log ingestion, captured data).
A local stack runs on this machine and costs nothing. `Platform` computes this at every
preview and the budget policy reads it, so it must stay cheap: sizing is cached per config.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmops.catalog import HOURS_PER_MONTH, load_catalog
from llmops.registry import Deployment, Registry
from llmops.settings import StackSettings
from llmops.sizing import SizingError, SizingPlatform, size_for_stack, stack_deployments, stack_platform

# Kept equal to components/aws (cluster/node_group.py, cluster/network.py); tests/unit/test_cost.py checks.
SYSTEM_ROOT_GIB = 50
GPU_ROOT_GIB = 200
NAT_ZONES = 3

CostKind = Literal[
    "endpoint", "training", "control-plane", "node-pool", "system-nodes", "nat-gateway", "ebs", "s3", "cloudwatch"
]


@dataclass(frozen=True)
class CostLine:
    kind: CostKind
    name: str
    instance_type: str  # the instance type, or the unit a service line is priced in
    count: float
    hourly_usd: float  # per unit and hour (monthly units: their monthly price / 730)
    monthly_usd: float
    max_count: float = -1.0  # at full scale; -1: as expected
    max_monthly_usd: float = -1.0

    def __post_init__(self) -> None:
        if self.max_count < 0:
            object.__setattr__(self, "max_count", self.count)
            object.__setattr__(self, "max_monthly_usd", self.monthly_usd)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StackCost:
    stack: str
    environment: str
    budget_monthly_usd: float
    lines: list[CostLine] = field(default_factory=list)

    @property
    def total_monthly_usd(self) -> float:
        return sum(line.monthly_usd for line in self.lines)

    @property
    def max_total_monthly_usd(self) -> float:
        """Every endpoint at max_replicas and every pool at maxSize."""
        return sum(line.max_monthly_usd for line in self.lines)

    @property
    def over_budget(self) -> bool:
        return self.budget_monthly_usd > 0 and self.total_monthly_usd > self.budget_monthly_usd

    @property
    def max_over_budget(self) -> bool:
        return self.budget_monthly_usd > 0 and self.max_total_monthly_usd > self.budget_monthly_usd

    def top(self, n: int, *, at_max: bool = False) -> list[CostLine]:
        key = (lambda line: line.max_monthly_usd) if at_max else (lambda line: line.monthly_usd)
        return sorted(self.lines, key=key, reverse=True)[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "environment": self.environment,
            "budget_monthly_usd": self.budget_monthly_usd,
            "total_monthly_usd": round(self.total_monthly_usd, 2),
            "max_total_monthly_usd": round(self.max_total_monthly_usd, 2),
            "over_budget": self.over_budget,
            "max_over_budget": self.max_over_budget,
            "prices_recorded": load_catalog().recorded,
            "lines": [line.to_dict() for line in self.lines],
        }


def _hourly(instance_type: str) -> float:
    try:
        return load_catalog().get(instance_type).hourly_usd
    except KeyError:
        raise SizingError(f"unknown instance type {instance_type!r} (not in the catalog)") from None


def _line(
    kind: CostKind, name: str, instance_type: str, count: float, hourly: float, max_count: float | None = None
) -> CostLine:
    top = count if max_count is None else max_count
    return CostLine(
        kind,
        name,
        instance_type,
        count,
        hourly,
        round(count * hourly * HOURS_PER_MONTH, 2),
        top,
        round(top * hourly * HOURS_PER_MONTH, 2),
    )


def _monthly(kind: CostKind, name: str, unit: str, count: float, monthly_unit_usd: float, max_count: float) -> CostLine:
    """A line priced per unit and month (storage, alarms, dashboards)."""
    return _line(kind, name, unit, count, monthly_unit_usd / HOURS_PER_MONTH, max_count)


def endpoint_instances(deployment: Deployment, platform: SizingPlatform, *, at_max: bool = False) -> int:
    """Instances a deployment keeps running at its minimum (or at most), as the endpoints place them.

    SageMaker gives every production variant its own `min_replicas` instances (a canary
    doubles the bill), up to `max_replicas` each; EKS splits `min_replicas` across variants
    by weight, at least one replica per variant with traffic, and each variant's autoscaler
    may grow it to its weight's share of `max_replicas` (components/aws/eks_endpoint.py).
    """
    replicas = deployment.max_replicas if at_max else deployment.min_replicas
    if platform == "sagemaker":
        return replicas * len(deployment.variants)
    if platform == "ec2":
        low = {
            v.version: max(1, round(deployment.min_replicas * v.weight / 100)) for v in deployment.variants if v.weight
        }
        if not at_max:
            return sum(low.values())
        return sum(
            max(n, math.ceil(replicas * w.weight / 100)) for w in deployment.variants if (n := low.get(w.version))
        )
    return replicas


def stack_cost(stack: str, settings: StackSettings, registry: Registry, models_dir: Path) -> StackCost:
    """Every line of one stack's monthly bill (SizingError when a deployment cannot be sized)."""
    local = settings.target == "local"
    lines: list[CostLine] = []
    on_pools: dict[str, tuple[int, int]] = {}  # instance type -> nodes EKS endpoint replicas take (min, max)
    deployments = stack_deployments(registry, settings)
    for deployment in deployments:
        sizing = size_for_stack(deployment, settings, models_dir)
        platform = stack_platform(deployment, settings)
        low, high = endpoint_instances(deployment, platform), endpoint_instances(deployment, platform, at_max=True)
        lines.append(_line("endpoint", deployment.name, sizing.instance_type, low, sizing.hourly_usd, high))
        if platform == "ec2":
            taken = on_pools.get(sizing.instance_type, (0, 0))
            on_pools[sizing.instance_type] = (taken[0] + low, taken[1] + high)
        training = deployment.model.training
        if training is not None:
            hourly = 0.0 if local else _hourly(training.instance)
            monthly = 0.0 if local else training.monthly_budget_usd
            lines.append(
                CostLine("training", deployment.name, training.instance, training.instance_count, hourly, monthly)
            )
            if not local:
                gib = sizing.weights_gib
                s3 = load_catalog().services.s3_standard_gb_month_usd
                lines.append(_monthly("s3", f"{deployment.name} weights", "GB-month", round(gib, 1), s3, round(gib, 1)))
    if not local:
        lines += _shared_lines(settings, deployments, on_pools)
    return StackCost(stack, settings.environment, settings.budget_monthly_usd, lines)


def _shared_lines(
    settings: StackSettings, deployments: list[Deployment], on_pools: dict[str, tuple[int, int]]
) -> list[CostLine]:
    """What the stack's deployments share: the cluster where it has one, NAT, volumes, alarms."""
    from llmops.footprint import stack_footprint

    prices = load_catalog().services
    footprint = stack_footprint(settings, deployments)
    cluster = settings.cluster
    lines: list[CostLine] = []
    ebs: tuple[float, float] = (0.0, 0.0)
    if not footprint.eks:  # said, at no cost, so a reader sees it was left out and not forgotten
        lines.append(_line("control-plane", "eks (none: no model on EKS)", "cluster", 0, 0.0))
    else:
        lines.append(_line("control-plane", "eks", "cluster", 1, prices.eks_control_plane_hourly_usd))
        system = (cluster.system_nodes, cluster.system_nodes + 1)
        lines.append(
            _line("system-nodes", "system", cluster.system_instance_type, system[0],
                  _hourly(cluster.system_instance_type), system[1])
        )  # fmt: skip
        ebs = (system[0] * SYSTEM_ROOT_GIB, system[1] * SYSTEM_ROOT_GIB)
        for pool in cluster.gpu_pools:
            cheapest = min(pool.instance_types, key=_hourly)
            nodes = [pool.desired_size, pool.max_size]
            for instance_type in pool.instance_types:
                taken = list(on_pools.get(instance_type, (0, 0)))
                for i in (0, 1):
                    used = min(nodes[i], taken[i])
                    taken[i] -= used
                    nodes[i] -= used
                on_pools[instance_type] = (taken[0], taken[1])
            lines.append(_line("node-pool", pool.name, cheapest, nodes[0], _hourly(cheapest), nodes[1]))
            ebs = (ebs[0] + pool.desired_size * GPU_ROOT_GIB, ebs[1] + pool.max_size * GPU_ROOT_GIB)
    if footprint.nat:
        count = NAT_ZONES if settings.production else 1
        lines.append(_line("nat-gateway", "nat", "gateway (hours only)", count, prices.nat_gateway_hourly_usd))
    if ebs[1]:
        lines.append(_monthly("ebs", "node root volumes", "gp3 GB-month", ebs[0], prices.ebs_gp3_gb_month_usd, ebs[1]))
    metrics = _alarm_metrics(settings, deployments)
    alarm = prices.cloudwatch_alarm_metric_month_usd
    lines.append(_monthly("cloudwatch", "alarm metrics", "metric-month", metrics, alarm, metrics))
    dashboard = prices.cloudwatch_dashboard_month_usd
    lines.append(_monthly("cloudwatch", "dashboard", "dashboard-month", 1, dashboard, 1))
    return lines


def _alarm_metrics(settings: StackSettings, deployments: list[Deployment]) -> int:
    """Metrics in the stack's alarms: per SageMaker variant, p95 latency, 5XX and invocations, GPU
    memory (components/aws/monitoring.py); one per drift alarm (drift_job.py)."""
    sagemaker = sum(4 * len(d.variants) for d in deployments if stack_platform(d, settings) == "sagemaker")
    drift = sum(1 for d in deployments if d.model.monitoring.drift_dataset(d.model) is not None)
    return sagemaker + drift


# --------------------------------------------------------------------------- CLI


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cost", help="monthly on-demand cost of each stack, line by line")
    p.add_argument("--stack", help="one stack (default: every stack)")
    p.add_argument("--json", action="store_true", help="print a JSON object keyed by stack")
    p.add_argument("--root", type=Path, help="another checkout to cost (CI: the base of a pull request)")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write the cost as one offline HTML file")
    p.set_defaults(func=cmd_cost)


def costs(root: Path, only: str | None = None) -> tuple[dict[str, StackCost], list[str]]:
    """Each stack's cost under `root`, and warnings about registry files left out."""
    from pydantic import ValidationError

    from llmops import paths
    from llmops.errors import UserError
    from llmops.registry import validate
    from llmops.settings import load_all_stacks

    try:
        stacks = load_all_stacks(paths.stacks_dir(root))
    except (OSError, ValueError, ValidationError) as exc:
        raise UserError(f"cannot read the stack settings under {root}: {str(exc).splitlines()[0]}") from None
    if only is not None and only not in stacks:
        raise UserError(f"no stack {only!r} under {root}/stacks (known: {', '.join(sorted(stacks)) or 'none'})")
    # Cost what is valid: on the base of a pull request a broken file must not hide the rest.
    models_dir = paths.models_dir(root)
    registry, problems = validate(models_dir, stacks)
    warnings = sorted({p.file for p in problems})
    for name, display in list(registry.displays.items()):
        if display in warnings:
            del registry.models[name]
    out: dict[str, StackCost] = {}
    for name, settings in sorted(stacks.items()):
        if only is None or name == only:
            try:
                out[name] = stack_cost(name, settings, registry, models_dir)
            except SizingError as exc:
                raise UserError(f"stack {name}: {exc}") from None
    return out, warnings


def cmd_cost(args: argparse.Namespace) -> int:
    from llmops import paths

    if args.html is not None:
        from llmops.dashboard.reports import html_target

        html_target(args.html)
    root = (args.root or paths.repo_root()).resolve()
    result, warnings = costs(root, args.stack)
    for file in warnings:
        print(f"llmops cost: {file} has problems and is left out (see `llmops registry validate`)", file=sys.stderr)
    if args.html is not None:
        from llmops.dashboard.reports import write_cost_html

        write_cost_html(args.html, {name: c.to_dict() for name, c in result.items()}, root, args.stack)
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        print(json.dumps({name: c.to_dict() for name, c in result.items()}, indent=2))
        return 0
    print("\n\n".join(format_cost(cost) for cost in result.values()))
    catalog = load_catalog()
    print(f"\nPrices: {catalog.region} on-demand list prices recorded {catalog.recorded} (llmops/data/catalog.yaml).")
    return 0


def format_cost(cost: StackCost) -> str:
    budget = f"budget ${cost.budget_monthly_usd:,.0f}" if cost.budget_monthly_usd > 0 else "no budget"
    status = " OVER BUDGET" if cost.over_budget else ""
    status += " (MAXIMUM OVER BUDGET)" if cost.max_over_budget and not cost.over_budget else ""
    out = [
        f"{cost.stack} ({cost.environment}): ${cost.total_monthly_usd:,.2f}/month expected, "
        f"${cost.max_total_monthly_usd:,.2f}/month at maximum, {budget}{status}"
    ]
    for line in cost.lines:
        monthly_unit = line.instance_type.endswith("-month")
        unit = f"${line.hourly_usd * HOURS_PER_MONTH:>8.4f}/mo" if monthly_unit else f"${line.hourly_usd:>8.4f}/h "
        out.append(
            f"  {line.kind:<13} {line.name:<28} {line.count:>6g} x {line.instance_type:<20} "
            f"{unit}  ${line.monthly_usd:>11,.2f}/month  max {line.max_count:>6g}: ${line.max_monthly_usd:>11,.2f}"
        )
    return "\n".join(out)
