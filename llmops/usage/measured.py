"""Measured cost per model version: replica hours x instance price, per 1M tokens served.

Beside it, today's estimate (llmops/cost.py: the instances a deployment keeps at
`min_replicas`, all month). The local target runs on this machine and bills nothing,
so its replicas are priced as the SageMaker instance the model would need (`priced_as`),
which is what a $/1M tokens from a local run predicts for the cloud. Anything not
measured (no tokens, no replica time) is None with a note, never 0.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.catalog import HOURS_PER_MONTH
from llmops.registry import Deployment
from llmops.settings import StackSettings
from llmops.usage.data import VersionUsage


@dataclass(frozen=True)
class Price:
    instance_type: str
    hourly_usd: float
    priced_as: str | None = None  # set where the target bills nothing and a cloud price stands in


def deployment_price(deployment: Deployment, settings: StackSettings, models_dir: Path) -> Price:
    """The hourly price of one replica of `deployment` in this stack (the sized instance)."""
    from llmops.sizing import size_deployment, size_for_stack

    if settings.target == "local":
        sized = size_deployment(dataclasses.replace(deployment, instance="auto"), models_dir, "sagemaker")
        return Price(sized.instance_type, sized.hourly_usd, "sagemaker")
    sized = size_for_stack(deployment, settings, models_dir)
    return Price(sized.instance_type, sized.hourly_usd)


def estimated_replicas(deployment: Deployment, settings: StackSettings, version: str) -> float:
    """Replicas of `version` today's estimate counts (llmops.cost.endpoint_instances, per version)."""
    from llmops.cost import endpoint_instances
    from llmops.sizing import stack_platform

    platform = stack_platform(deployment, settings)
    if platform != "ec2":
        return float(deployment.min_replicas)
    total = endpoint_instances(deployment, platform)
    weights = {v.version: v.weight for v in deployment.variants}
    live = sum(weights.values()) or 1
    return total * weights.get(version, 0) / live


@dataclass(frozen=True)
class MeasuredCost:
    usage: VersionUsage
    price: Price
    estimate_replicas: float

    @property
    def window_usd(self) -> float | None:
        hours = self.usage.replica_hours
        return None if hours is None else hours * self.price.hourly_usd

    @property
    def usd_per_million_tokens(self) -> float | None:
        tokens, usd = self.usage.tokens, self.window_usd
        if not tokens or usd is None:
            return None
        return usd / tokens * 1e6

    @property
    def monthly_usd(self) -> float | None:
        """The window's spend as a monthly run rate."""
        usd = self.window_usd
        return None if usd is None else usd * HOURS_PER_MONTH * 3600 / self.usage.window_seconds

    @property
    def estimate_monthly_usd(self) -> float:
        return self.estimate_replicas * self.price.hourly_usd * HOURS_PER_MONTH

    @property
    def notes(self) -> list[str]:
        out = list(self.usage.notes)
        if self.usage.tokens is None:
            out.append("tokens not measured: no $/1M tokens")
        elif not self.usage.tokens:
            out.append("no tokens served in the window: no $/1M tokens")
        if self.price.priced_as:
            out.append(f"this target bills nothing: priced as {self.price.instance_type} ({self.price.priced_as})")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.usage.model,
            "version": self.usage.version,
            "hours_served": self.usage.served_minutes / 60,
            "replica_hours": self.usage.replica_hours,
            "replicas": self.usage.mean_replicas,
            "instance_type": self.price.instance_type,
            "hourly_usd": self.price.hourly_usd,
            "priced_as": self.price.priced_as,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "tokens": self.usage.tokens,
            "requests": self.usage.requests,
            "window_usd": _round(self.window_usd),
            "usd_per_million_tokens": _round(self.usd_per_million_tokens),
            "utilisation": _round(self.usage.utilisation, 4),
            "gpu_utilisation": _round(self.usage.gpu_utilisation, 4),
            "monthly_usd": _round(self.monthly_usd),
            "estimate": {"replicas": self.estimate_replicas, "monthly_usd": round(self.estimate_monthly_usd, 2)},
            "source": self.usage.source,
            "notes": self.notes,
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _show(value: float | None, fmt: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, fmt)


def format_measured(stack: str, environment: str, window: str, costs: list[MeasuredCost]) -> str:
    head = (
        f"{'model/version':<26} {'served h':>8} {'replicas':>8} {'instance':<16} {'$/h':>7} {'tokens':>10} "
        f"{'$ window':>9} {'$/1M tok':>9} {'util':>6} {'gpu':>6} {'$/month':>10} {'estimate':>10}"
    )
    out = [f"{stack} ({environment}): measured over the last {window}", head]
    for c in costs:
        u = c.usage
        util, gpu = u.utilisation, u.gpu_utilisation
        out.append(
            f"{u.model + '/' + u.version:<26} {u.served_minutes / 60:>8.2f} {_show(u.mean_replicas, '.1f'):>8} "
            f"{c.price.instance_type:<16} {c.price.hourly_usd:>7.3f} {_show(u.tokens, ',.0f'):>10} "
            f"{_show(c.window_usd, ',.2f'):>9} {_show(c.usd_per_million_tokens, ',.2f'):>9} "
            f"{'n/a' if util is None else f'{util:.1%}':>6} {'n/a' if gpu is None else f'{gpu:.1%}':>6} "
            f"{_show(c.monthly_usd, ',.0f'):>10} "
            f"{c.estimate_monthly_usd:>10,.0f}"
        )
        out.extend(f"    note: {note}" for note in c.notes)
    if not costs:
        out.append("  no deployments")
    return "\n".join(out)
