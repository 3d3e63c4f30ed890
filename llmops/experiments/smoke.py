"""The post-deploy smoke check: is any variant's error rate above its SLO, beyond doubt?

After `llmops ci deploy`, deploy.yml reads the last minutes of each deployed model's
per-variant counts and fails when a variant's error rate is above the registry's
`monitoring.slo.error_rate` by a one-sided exact binomial test at `alpha` (scipy's
`binomtest`). Like the experiment's harm rule, there is no minimum traffic: the exact
test fails a variant as soon as the excess is proven, however few its requests, and a
variant with too little traffic to tell passes with a note (a smoke check cannot fail a
deploy on no evidence; the experiment's `min_samples` holds only a promote). On failure
the workflow opens the revert pull request (`llmops rollback`).
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy.stats import binomtest

from llmops.experiments.data import ExperimentData

SMOKE_ALPHA = 0.01


@dataclass(frozen=True)
class SmokeResult:
    model: str
    version: str
    requests: int
    errors: int
    slo: float
    p_value: float | None
    failed: bool
    note: str


def smoke(data: ExperimentData, slo_error_rate: float, alpha: float = SMOKE_ALPHA) -> list[SmokeResult]:
    out = []
    for v in data.variants:
        if v.requests == 0:
            out.append(SmokeResult(data.model, v.version, 0, 0, slo_error_rate, None, False, "no traffic: not judged"))
            continue
        p = float(binomtest(v.errors, v.requests, slo_error_rate, alternative="greater").pvalue)
        failed = p < alpha
        rate = v.errors / v.requests
        note = (
            f"error rate {rate:.2%} above the SLO {slo_error_rate:.2%} (binomial p={p:.2g} < {alpha})"
            if failed
            else f"error rate {rate:.2%} within the SLO {slo_error_rate:.2%} (p={p:.2g})"
        )
        out.append(SmokeResult(data.model, v.version, v.requests, v.errors, slo_error_rate, p, failed, note))
    return out
