"""The post-deploy smoke check's verdict: does every serving variant answer, within its SLO?

`llmops experiment smoke` (deploy.yml, after each stack's deploy) sends each variant
with traffic a bounded number of requests built from the model's `examples:`
(llmops.experiments.smoke_requests: pinned to the variant, through the route users
take) and judges what they measured against the registry's `monitoring.slo`, each with
a one-sided exact binomial test at `alpha` (scipy's `binomtest`):
- errors: is the error rate above `slo.error_rate`?
- latency: is the share of requests slower than `slo.p95_latency_ms` above the 5 % a
  p95 allows?
Like the experiment's harm rule, there is no minimum sample: a test fails a variant as
soon as the excess is proven. A variant none of whose requests got an answer
(unreachable, or failing every one) fails naming where they were sent, so no traffic
can never pass. On failure the workflow opens the revert pull request (`llmops rollback`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from llmops.experiments.smoke_requests import Probe
from llmops.registry import Slo

SMOKE_ALPHA = 0.01
SLOW_SHARE = 0.05  # above p95: at most 5 % of requests under the SLO


@dataclass(frozen=True)
class SmokeResult:
    model: str
    version: str
    where: str
    requests: int
    errors: int
    slow: int
    p95_ms: float | None
    error_p: float | None
    latency_p: float | None
    failed: bool
    note: str

    def line(self) -> str:
        p95 = f", p95 {self.p95_ms:.0f} ms" if self.p95_ms is not None else ""
        head = f"{'FAIL' if self.failed else 'ok  '} {self.model} {self.version}"
        return f"{head}: {self.requests} requests, {self.errors} errors{p95}: {self.note}"


def exceeds(count: int, n: int, rate: float, alpha: float) -> tuple[float, bool]:
    """(p, proven): is the share `count / n` above `rate`, by the one-sided exact binomial test?"""
    p = float(binomtest(count, n, rate, alternative="greater").pvalue)
    return p, p < alpha


def judge(model: str, probe: Probe, slo: Slo, alpha: float = SMOKE_ALPHA) -> SmokeResult:
    n, errors = probe.requests, probe.errors
    if n == 0 or probe.unreachable:
        why = probe.first_error() or "no request was sent"
        return SmokeResult(model, probe.version, probe.where, n, errors, 0, None, None, None, True,
                           f"every request failed at {probe.where}: {why}")  # fmt: skip
    answered = [o.seconds * 1000 for o in probe.outcomes if o.ok]
    slow = sum(ms > slo.p95_latency_ms for ms in answered)
    error_p, bad_errors = exceeds(errors, n, slo.error_rate, alpha)
    latency_p, bad_latency = exceeds(slow, len(answered), SLOW_SHARE, alpha)
    notes = [
        f"error rate {errors / n:.0%} {'above' if bad_errors else 'within'} the SLO {slo.error_rate:.2%} "
        f"(binomial p={error_p:.2g})",
        f"{slow}/{len(answered)} slower than {slo.p95_latency_ms:.0f} ms "
        f"({'above' if bad_latency else 'within'} the p95 SLO, p={latency_p:.2g})",
    ]
    if bad_errors:
        notes.append(f"first error at {probe.where}: {probe.first_error()}")
    return SmokeResult(
        model,
        probe.version,
        probe.where,
        n,
        errors,
        slow,
        float(np.percentile(answered, 95)),
        error_p,
        latency_p,
        bad_errors or bad_latency,
        "; ".join(notes),
    )
