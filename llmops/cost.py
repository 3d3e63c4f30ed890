"""Monthly on-demand cost of a stack, from the registry, the stack settings and the catalog.

Lines (730 hours a month, the catalog's on-demand prices):
- endpoint: the instances its variants keep at min_replicas x the sized instance's hourly price;
- training: the model's `training.monthly_budget_usd` (jobs are bursty; their budget is the plan);
- node-pool: each EKS GPU pool's desired nodes x its cheapest instance type, less the nodes
  EKS endpoint replicas already occupy (those are on the endpoint's line, counted once);
- system-nodes: the EKS system node group.
A local stack runs on this machine and costs nothing. `Platform` computes this at every
preview and the budget policy reads it, so it must stay cheap: sizing is cached per config.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmops.catalog import HOURS_PER_MONTH, load_catalog
from llmops.registry import Deployment, Registry
from llmops.settings import StackSettings
from llmops.sizing import SizingError, SizingPlatform, size_for_stack, stack_deployments, stack_platform

CostKind = Literal["endpoint", "training", "node-pool", "system-nodes"]


@dataclass(frozen=True)
class CostLine:
    kind: CostKind
    name: str
    instance_type: str
    count: float
    hourly_usd: float
    monthly_usd: float

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
    def over_budget(self) -> bool:
        return self.budget_monthly_usd > 0 and self.total_monthly_usd > self.budget_monthly_usd

    def top(self, n: int) -> list[CostLine]:
        return sorted(self.lines, key=lambda line: line.monthly_usd, reverse=True)[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "environment": self.environment,
            "budget_monthly_usd": self.budget_monthly_usd,
            "total_monthly_usd": round(self.total_monthly_usd, 2),
            "over_budget": self.over_budget,
            "lines": [line.to_dict() for line in self.lines],
        }


def _hourly(instance_type: str) -> float:
    try:
        return load_catalog().get(instance_type).hourly_usd
    except KeyError:
        raise SizingError(f"unknown instance type {instance_type!r} (not in the catalog)") from None


def _line(kind: CostKind, name: str, instance_type: str, count: float, hourly: float) -> CostLine:
    return CostLine(kind, name, instance_type, count, hourly, round(count * hourly * HOURS_PER_MONTH, 2))


def endpoint_instances(deployment: Deployment, platform: SizingPlatform) -> int:
    """Instances a deployment keeps running at its minimum, as the endpoints place them.

    SageMaker gives every production variant its own `min_replicas` instances (a canary
    doubles the bill); EKS splits `min_replicas` across variants by weight, at least one
    replica per variant with traffic (components/aws/eks_endpoint.py: variant_replicas).
    """
    if platform == "sagemaker":
        return deployment.min_replicas * len(deployment.variants)
    if platform == "ec2":
        total = deployment.min_replicas
        return sum(max(1, round(total * v.weight / 100)) for v in deployment.variants if v.weight)
    return deployment.min_replicas


def stack_cost(stack: str, settings: StackSettings, registry: Registry, models_dir: Path) -> StackCost:
    """Every line of one stack's monthly bill (SizingError when a deployment cannot be sized)."""
    local = settings.target == "local"
    lines: list[CostLine] = []
    on_pools: dict[str, int] = {}  # instance type -> nodes EKS endpoint replicas take
    for deployment in stack_deployments(registry, settings):
        sizing = size_for_stack(deployment, settings, models_dir)
        platform = stack_platform(deployment, settings)
        replicas = endpoint_instances(deployment, platform)
        lines.append(_line("endpoint", deployment.name, sizing.instance_type, replicas, sizing.hourly_usd))
        if platform == "ec2":
            on_pools[sizing.instance_type] = on_pools.get(sizing.instance_type, 0) + replicas
        training = deployment.model.training
        if training is not None:
            hourly = 0.0 if local else _hourly(training.instance)
            monthly = 0.0 if local else training.monthly_budget_usd
            lines.append(
                CostLine("training", deployment.name, training.instance, training.instance_count, hourly, monthly)
            )
    if not local:
        cluster = settings.cluster
        lines.append(
            _line("system-nodes", "system", cluster.system_instance_type, cluster.system_nodes,
                  _hourly(cluster.system_instance_type))
        )  # fmt: skip
        for pool in cluster.gpu_pools:
            cheapest = min(pool.instance_types, key=_hourly)
            nodes = pool.desired_size
            for instance_type in pool.instance_types:
                taken = min(nodes, on_pools.get(instance_type, 0))
                on_pools[instance_type] = on_pools.get(instance_type, 0) - taken
                nodes -= taken
            lines.append(_line("node-pool", pool.name, cheapest, nodes, _hourly(cheapest)))
    return StackCost(stack, settings.environment, settings.budget_monthly_usd, lines)


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
    return 0


def format_cost(cost: StackCost) -> str:
    budget = f"budget ${cost.budget_monthly_usd:,.0f}" if cost.budget_monthly_usd > 0 else "no budget"
    status = " OVER BUDGET" if cost.over_budget else ""
    out = [f"{cost.stack} ({cost.environment}): ${cost.total_monthly_usd:,.2f}/month, {budget}{status}"]
    for line in cost.lines:
        out.append(
            f"  {line.kind:<13} {line.name:<28} {line.count:>4g} x {line.instance_type:<16} "
            f"${line.hourly_usd:>8.4f}/h  ${line.monthly_usd:>11,.2f}/month"
        )
    return "\n".join(out)
