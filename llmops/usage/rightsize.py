"""Right-sizing: replica counts, instance and scale to zero from measured load, as a registry edit.

The rule, per deployment (each version runs its own `min_replicas`, so the busiest decides):
- load: the p95 of per-minute concurrency (mean requests in flight) over the window, and its peak;
- capacity of one replica: the requests it generates at once (`serving.concurrency`) while the
  window's p95 latency met the SLO; where it did not, or requests were shed at capacity, what one
  replica actually carried, scaled by SLO / measured p95 latency (latency grows with the batch);
- min_replicas = ceil(p95 load x (1 + headroom) / capacity), max_replicas the same for the peak,
  never below the stack's floor (`llmops:rightsize.minReplicas`; 2 in production unless set);
- an endpoint that served no request in the window, in an environment that allows it, is
  proposed scale to zero instead (on the targets that implement it);
- where auto sizing finds a cheaper instance that fits than a pinned one, that instance.
Thin data (fewer served minutes than the minimum, no replica time recorded, or replicas held with
no load series) gives no proposal and says why.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.catalog import HOURS_PER_MONTH
from llmops.registry import Deployment
from llmops.settings import StackSettings
from llmops.usage.data import VersionUsage, percentile
from llmops.usage.measured import Price

DEFAULT_MIN_MINUTES = 360  # six hours of measured serving before a proposal
DEFAULT_IDLE_SECONDS = 900


@dataclass(frozen=True)
class Evidence:
    window: str
    minutes: int
    p95_concurrency: float
    peak_concurrency: float
    capacity: float
    headroom: float
    p95_latency_s: float | None
    slo_s: float
    requests: float
    shed: float
    source: str


@dataclass(frozen=True)
class Proposal:
    model: str
    environment: str
    current: dict[str, Any]
    proposed: dict[str, Any]  # the override keys to write; empty: keep as is
    monthly_saving_usd: float = 0.0
    evidence: Evidence | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(self.current.get(k) != v for k, v in self.proposed.items())

    def message(self) -> str:
        """The commit message: what changes, and the evidence that says so."""
        parts = [f"{k} {self.current.get(k)} -> {_text(v)}" for k, v in self.proposed.items()]
        lines = [f"perf(models): right-size {self.model} in {self.environment}: {', '.join(parts)}", ""]
        e = self.evidence
        if e is not None:
            latency = "n/a" if e.p95_latency_s is None else f"{e.p95_latency_s:.3f} s"
            lines += [
                f"Window: last {e.window}, {e.minutes} measured minutes ({e.source})",
                f"Concurrency per minute: p95 {e.p95_concurrency:.2f}, peak {e.peak_concurrency:.2f} in flight",
                f"Requests: {e.requests:,.0f}, shed at capacity: {e.shed:,.0f}",
                f"p95 latency {latency} against the SLO's {e.slo_s:.3f} s",
                f"Capacity per replica at the SLO: {e.capacity:.2f} requests; headroom {e.headroom:.0%}",
            ]
        lines += [*self.reasons, f"Monthly saving: ${self.monthly_saving_usd:,.2f}"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "environment": self.environment,
            "changed": self.changed,
            "current": self.current,
            "proposed": self.proposed,
            "monthly_saving_usd": round(self.monthly_saving_usd, 2),
            "evidence": dataclasses.asdict(self.evidence) if self.evidence else None,
            "reasons": self.reasons,
        }


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def capacity(usage: VersionUsage, concurrency: int, slo_s: float, p95_load: float) -> float:
    """Requests one replica carries within the latency SLO (see the module's rule)."""
    over_slo = usage.p95_latency_s is not None and usage.p95_latency_s > slo_s
    if not (over_slo or usage.shed > 0):
        return float(concurrency)
    carried = p95_load / max(1.0, usage.mean_replicas or 1.0)
    scale = slo_s / usage.p95_latency_s if over_slo and usage.p95_latency_s else 1.0
    return max(0.1, min(float(concurrency), carried * scale))


def propose(
    deployment: Deployment,
    settings: StackSettings,
    usages: list[VersionUsage],
    price: Price,
    cheaper: Price | None,
    *,
    window: str,
    min_minutes: int = DEFAULT_MIN_MINUTES,
) -> Proposal:
    """The proposal for one deployment from its versions' measured usage (`cheaper`: an instance
    auto sizing prefers to a pinned one, or None)."""
    current: dict[str, Any] = {
        "min_replicas": deployment.min_replicas,
        "max_replicas": deployment.max_replicas,
        "instance": deployment.instance,
        "scale_to_zero": (
            {"idle_seconds": deployment.scale_to_zero.idle_seconds} if deployment.scale_to_zero else None
        ),
    }
    name, env = deployment.name, deployment.environment
    minutes = min((u.served_minutes for u in usages), default=0)
    unmeasured = [u.version for u in usages if u.replica_seconds is None]
    no_load = [u.version for u in usages if u.replica_seconds is not None and u.busy_seconds is None]
    if unmeasured or no_load or minutes < min_minutes:
        if unmeasured:
            why = f"no replica time recorded for {', '.join(unmeasured)}"
        elif no_load:  # replicas held, but nothing says how busy: an empty load is not a light one
            why = f"no load (requests in flight) recorded for {', '.join(no_load)}"
        else:
            why = f"{minutes} measured minutes, fewer than the minimum of {min_minutes} (--min-minutes)"
        return Proposal(name, env, current, {}, reasons=[f"no proposal: {why}"])

    slo_s = deployment.model.monitoring.slo.p95_latency_ms / 1000
    headroom = settings.rightsize.headroom
    floor = settings.replica_floor
    need_min, need_max, worst = floor, floor, None
    for u in usages:
        p95 = percentile(u.concurrency, 0.95) or 0.0
        peak = max(u.concurrency, default=0.0)
        cap = capacity(u, deployment.model.serving.concurrency, slo_s, p95)
        need_min = max(need_min, math.ceil(round(p95 * (1 + headroom) / cap, 6)))
        need_max = max(need_max, math.ceil(round(peak * (1 + headroom) / cap, 6)))
        if worst is None or p95 / cap > worst.p95_concurrency / worst.capacity:
            worst = Evidence(
                window, minutes, p95, peak, cap, headroom, u.p95_latency_s, slo_s,
                sum(x.requests for x in usages), sum(x.shed for x in usages), u.source,
            )  # fmt: skip
    reasons = [f"Floor: {floor} replica(s) in {env} (llmops:rightsize.minReplicas)"]
    proposed: dict[str, Any] = {"min_replicas": need_min, "max_replicas": max(need_min, need_max)}
    idle = sum(u.requests for u in usages) == 0
    supported = (
        settings.scale_to_zero_unsupported(deployment.platform, len(deployment.variants), deployment.shadow is not None)
        is None
    )
    if idle and deployment.scale_to_zero is None and settings.allows_scale_to_zero and supported:
        proposed["scale_to_zero"] = {"idle_seconds": DEFAULT_IDLE_SECONDS}
        reasons.append(f"No request in the window: scale to zero after {DEFAULT_IDLE_SECONDS} s idle")
    new_price = price
    if cheaper is not None and cheaper.hourly_usd < price.hourly_usd:
        proposed["instance"] = cheaper.instance_type
        new_price = cheaper
        reasons.append(f"Instance: {cheaper.instance_type} fits at ${cheaper.hourly_usd:.3f}/h")
    variants = len(deployment.variants)
    before = deployment.min_replicas * price.hourly_usd
    after = 0.0 if "scale_to_zero" in proposed else need_min * new_price.hourly_usd
    saving = (before - after) * variants * HOURS_PER_MONTH
    if price.priced_as:
        reasons.append(f"Priced as {price.instance_type} at ${price.hourly_usd:.3f}/h (this target bills nothing)")
    proposed = {k: v for k, v in proposed.items() if current.get(k) != v}
    return Proposal(name, env, current, proposed, saving if proposed else 0.0, worst, reasons)


def write(root: Path, proposal: Proposal) -> tuple[Path, str, str]:
    """The registry file with the proposal applied: (path, before, after); validated, not written."""
    from llmops.promote import PromotionError, set_override, validate_text

    path = root / "models" / f"{proposal.model}.yaml"
    before = path.read_text(encoding="utf-8")
    after = set_override(before, proposal.environment, proposal.proposed)
    problems = validate_text(root, path.name, after)
    if problems:
        raise PromotionError("the right-sized file would be invalid, nothing written:\n" + "\n".join(problems))
    return path, before, after
