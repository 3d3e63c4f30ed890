"""One experiment's report: per-variant numbers, each metric's test, and the verdict.

The text form is what `llmops experiment report` prints and what a roll-back
commit carries in its message; `--json` gives the same content for machines.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from llmops.experiments.data import ExperimentData
from llmops.experiments.stats import DEFAULT_GUARDRAILS, DEFAULT_METRICS, RULES, Analysis, Plan, analyse
from llmops.registry import Deployment, Rollout


def plan_of(rollout: Rollout | None) -> Plan:
    """Listed metrics all gate; unlisted, the defaults apply (feedback a guardrail, see `stats`)."""
    r = rollout or Rollout()
    if r.metrics is None:
        return Plan(r.alpha, r.looks, r.min_samples, DEFAULT_METRICS, DEFAULT_GUARDRAILS)
    return Plan(r.alpha, r.looks, r.min_samples, tuple(r.metrics), ())


@dataclass(frozen=True)
class Report:
    data: ExperimentData
    analysis: Analysis
    plan: Plan

    @property
    def verdict(self) -> str:
        return self.analysis.verdict

    def to_dict(self) -> dict[str, Any]:
        variants = [
            {
                "version": v.version,
                "weight": v.weight,
                "n": v.requests,
                "errors": v.errors,
                "error_rate": v.error_rate,
                "p50_ms": _ms(v.latency_quantile(0.5)),
                "p95_ms": _ms(v.latency_quantile(0.95)),
                "feedback": v.feedback_total,
                "positive_rate": v.positive_rate,
            }
            for v in self.data.variants
        ]
        a = self.analysis
        return {
            "model": self.data.model,
            "environment": self.data.environment,
            "source": self.data.source,
            "window": {"start": _iso(self.data.start), "end": _iso(self.data.end), "note": self.data.note},
            "verdict": a.verdict,
            "rule": a.rule,
            "rule_description": RULES[a.rule],
            "reasons": a.reasons,
            "baseline": a.baseline,
            "alpha": a.alpha,
            "alpha_per_test": a.alpha_per_test,
            "repeated_looks": (
                f"Bonferroni: each test at alpha / (looks {a.looks} x metrics {len(self.plan.metrics)} x "
                f"canaries {max(1, len(a.canaries))}) = {a.alpha_per_test:.3g}"
            ),
            "min_samples": self.plan.min_samples,
            "metrics": list(self.plan.metrics),
            "guardrails": list(self.plan.guardrails),
            "sample_ratio": asdict(a.srm),
            "variants": variants,
            "canaries": [asdict(c) for c in a.canaries],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def heading(self) -> str:
        """Which experiment, from which source, over which window (and why nothing counts, if so)."""
        d = self.data
        return f"experiment {d.model} in {d.environment} ({d.source}), {_iso(d.start)} → {_iso(d.end)}" + (
            f" — {d.note}" if d.note else ""
        )

    def text(self) -> str:
        d = self.to_dict()
        lines = [
            self.heading(),
            "",
            f"{'version':<12}{'weight':>7}{'n':>9}{'errors':>8}{'err rate':>10}{'p50 ms':>9}{'p95 ms':>9}"
            f"{'ratings':>9}{'positive':>10}",
        ]
        for v in d["variants"]:
            lines.append(
                f"{v['version']:<12}{v['weight']:>6}%{v['n']:>9}{v['errors']:>8}{_f(v['error_rate'], '.2%'):>10}"
                f"{_f(v['p50_ms'], '.1f'):>9}{_f(v['p95_ms'], '.1f'):>9}{v['feedback']:>9}"
                f"{_f(v['positive_rate'], '.1%'):>10}"
            )
        lines.append("")
        for c in self.analysis.canaries:
            lines.append(f"{c.version} vs {c.baseline}: {c.verdict.upper()}")
            for m in c.metrics:
                effect = "" if m.effect is None else f" effect {m.effect:+.4g} {m.effect_unit};"
                p = "" if m.p_value is None else f" p={m.p_value:.3g};"
                role = "" if m.role == "gate" else f"({m.role}) "
                lines.append(f"  {m.metric:<11}{m.verdict:<13}{role}{m.test};{effect}{p} {m.reason}")
        lines += [
            "",
            f"sample ratio: {self.analysis.srm.reason}",
            f"alpha {d['alpha']} per step; {d['repeated_looks']}; min samples {d['min_samples']} per variant "
            "to promote (harm rolls back at any sample size)",
            f"VERDICT: {d['verdict'].upper()} (rule {d['rule']}: {d['rule_description']})"
            + (f" — {'; '.join(d['reasons'])}" if d["reasons"] else ""),
        ]
        return "\n".join(lines) + "\n"


def build_report(deployment: Deployment, data: ExperimentData) -> Report:
    plan = plan_of(deployment.rollout)
    return Report(data, analyse(data, plan), plan)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
