"""The statistics of an experiment: one test per metric, a sample-ratio check, tri-state verdicts.

Each canary variant is compared with the baseline (the variant with the most
weight, the first of them on a tie, as `llmops promote` picks it):

- error_rate: two-proportion z-test (statsmodels `proportions_ztest`); worse when higher;
- feedback: the same test on the positive-feedback rate; worse when lower;
- latency: on the duration histogram, the Wilcoxon-Mann-Whitney comparison for ordinal
  data with ties (each bucket a category): Brunner-Munzel's test of P(canary slower) =
  1/2 from the bucket counts (statsmodels `rank_compare_2ordinal`; the same effect as
  Mann-Whitney's U / n1n2, and valid when the spreads differ). Where the source gives
  only per-period mean latencies (CloudWatch), Welch's t-test on them. Worse when slower.

Verdicts, per metric. Harm and promotion are asymmetric, as in Flagger or Argo Rollouts,
which roll back on the first failed check:
- *roll back* when the canary is worse with a two-sided p-value below the per-test alpha,
  whatever the sample size. `min_samples` never keeps a proven harm serving: the
  Bonferroni share of the planned looks (below) already pays for looking early. Below
  `min_samples` the test is one valid at that size: Fisher's exact test for the rates
  (the z-test's normal approximation is what `min_samples` buys, and it is
  anti-conservative in the far tail on thin data), the rank test from
  `RANK_TEST_MIN_SAMPLES` observations per variant, Welch's from two periods each;
- *inconclusive* when either arm has fewer than `min_samples` observations and no harm
  is proven (a significantly *better* canary waits too); no data is never a pass;
- *promote* otherwise: significantly better, or no significant difference once both arms
  reached `min_samples`. The minimum detectable effect at 80 % power is reported beside
  it, so a reader sees what "no difference" could have missed.

Gates and guardrails. The metrics a rollout lists are gates: each must pass for a
promote, and a gate without data keeps the step inconclusive. A rollout that lists no
metrics gates on error_rate and latency and adds feedback as a *guardrail*: where both
variants have ratings, a significant drop in positive ratings rolls back like any gate,
but too few ratings (or none, for a model whose users do not rate) never hold a
promote, so a model with sparse ratings is not stalled into its max_duration roll back.

The experiment's rule, in order (`Analysis.rule` says which one decided):
1. `harm`: any metric of any canary rolls back. This holds on a sample-ratio mismatch
   too: a broken split makes the comparison suspect in both directions, but keeping a
   canary that looks significantly harmful is the unsafe side of that doubt, and the
   revert returns to the version that served before the experiment;
2. `sample-ratio`: the requests do not split as the weights say: inconclusive, never a
   promote (a split with too few requests to check is not a mismatch: the other rules
   decide, and promotion still needs `min_samples`);
3. `insufficient-data`: a gate is inconclusive (no data, too little, or data of
   different shapes);
4. `all-pass`: every gate of every canary says promote.
`llmops experiment advance` adds `max-duration`: a step inconclusive past the rollout's
`max_duration` is rolled back.

Repeated looks and multiple metrics: the schedule looks at a running experiment again
and again, and every look tests several metrics. Each test therefore runs at
`alpha / (looks x metrics x canaries)` (Bonferroni over the planned looks of a step and
every test of a look), which bounds the chance of any false roll back or promote within
one step by `alpha` whatever the schedule, at the price of some power. The divisor is
fixed by the plan before any data is seen: a default guardrail counts in it whether or
not ratings arrive. Dropping it from the divisor when a window has no ratings would make
the per-test alpha depend on the data, and the bound then holds only if having ratings
is independent of the other tests' outcomes (in the worst case a look spends 4/3 of its
share). The price for a model without ratings is a per-test alpha of alpha/(3 looks)
instead of alpha/(2 looks): about 3 % more detectable effect at the default 24 looks.
Looks beyond the planned number are not covered; the rollout's `max_duration` ends a
step before that.

Sample-ratio mismatch: a chi-square goodness-of-fit test of the requests per variant
against the configured weights, at the conventional strict level 0.001.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import stats as sps
from scipy.stats import fisher_exact
from statsmodels.stats.nonparametric import rank_compare_2ordinal
from statsmodels.stats.proportion import proportions_ztest

from llmops.experiments.data import ExperimentData, Histogram, PeriodMeans, VariantData

Verdict = Literal["promote", "rollback", "inconclusive"]
Metric = Literal["error_rate", "latency", "feedback"]
Role = Literal["gate", "guardrail"]
Rule = Literal["harm", "sample-ratio", "insufficient-data", "all-pass", "no-comparison"]
RULES: dict[str, str] = {
    "harm": "a metric is significantly worse at the corrected alpha: roll back at any sample size",
    "sample-ratio": "the requests do not split as the weights say: never a promote (harm still rolls back)",
    "insufficient-data": "a gating metric has no data or fewer than min_samples per variant, and no harm is proven",
    "all-pass": "every gating metric is clean with at least min_samples per variant",
    "no-comparison": "no canary takes traffic beside a baseline",
}
DEFAULT_METRICS: tuple[Metric, ...] = ("error_rate", "latency", "feedback")
DEFAULT_GUARDRAILS: tuple[Metric, ...] = ("feedback",)
SRM_ALPHA = 0.001
POWER = 0.8
MIN_EXPECTED_PER_VARIANT = 5  # the chi-square approximation needs expected counts of at least 5
# Brunner-Munzel's t approximation holds from about 10 observations per group (Neubert and
# Brunner 2007); below that no latency difference is trusted, not even harm.
RANK_TEST_MIN_SAMPLES = 10


@dataclass(frozen=True)
class Plan:
    """What the statistics need from the registry's rollout. `guardrails` are the metrics
    (among `metrics`) that roll back on harm but never hold a promote; the defaults are a
    rollout that lists no metrics."""

    alpha: float = 0.05
    looks: int = 24
    min_samples: int = 200
    metrics: tuple[Metric, ...] = DEFAULT_METRICS
    guardrails: tuple[Metric, ...] = DEFAULT_GUARDRAILS


@dataclass(frozen=True)
class MetricResult:
    metric: Metric
    test: str
    n_baseline: int
    n_canary: int
    baseline: float | None
    canary: float | None
    effect: float | None  # canary - baseline, in the metric's unit (see `effect_unit`)
    effect_unit: str
    p_value: float | None
    alpha: float
    verdict: Verdict
    reason: str
    mde: float | None = None  # smallest absolute difference detectable at 80 % power
    role: Role = "gate"  # a guardrail never holds a promote (see the module's docstring)


@dataclass(frozen=True)
class SampleRatio:
    observed: dict[str, int]
    expected_share: dict[str, float]
    p_value: float | None
    mismatch: bool
    reason: str


@dataclass(frozen=True)
class CanaryResult:
    version: str
    baseline: str
    metrics: list[MetricResult]
    verdict: Verdict


@dataclass(frozen=True)
class Analysis:
    verdict: Verdict
    rule: Rule  # which rule decided (RULES)
    reasons: list[str]
    alpha: float
    alpha_per_test: float
    looks: int
    srm: SampleRatio
    canaries: list[CanaryResult] = field(default_factory=list)
    baseline: str | None = None


def baseline_of(variants: list[VariantData]) -> VariantData | None:
    live = [v for v in variants if v.weight > 0]
    if not live:
        return None
    return max(live, key=lambda v: v.weight)  # first of the heaviest, as `llmops promote` picks the stable one


# --------------------------------------------------------------------------- sample ratio


def sample_ratio(variants: list[VariantData]) -> SampleRatio:
    live = [v for v in variants if v.weight > 0]
    observed = {v.version: v.requests for v in live}
    total_weight = sum(v.weight for v in live)
    shares = {v.version: v.weight / total_weight for v in live} if total_weight else {}
    total = sum(observed.values())
    if len(live) < 2:
        return SampleRatio(observed, shares, None, False, "one variant: no split to check")
    if total == 0 or min(total * s for s in shares.values()) < MIN_EXPECTED_PER_VARIANT:
        return SampleRatio(observed, shares, None, False, "too few requests to check the split")
    expected = np.array([total * shares[v.version] for v in live])
    p = float(sps.chisquare(np.array([observed[v.version] for v in live], dtype=float), expected).pvalue)
    mismatch = p < SRM_ALPHA
    reason = (
        f"sample ratio mismatch: requests split {_split(observed)} against weights "
        f"{_split({k: round(100 * s) for k, s in shares.items()})} (chi-square p={p:.2g} < {SRM_ALPHA})"
        if mismatch
        else f"split matches the weights (chi-square p={p:.2g})"
    )
    return SampleRatio(observed, shares, p, mismatch, reason)


def _split(values: dict[str, int]) -> str:
    return "/".join(f"{k}:{v}" for k, v in values.items())


# --------------------------------------------------------------------------- per-metric tests


def _proportions(
    metric: Metric, successes: tuple[int, int], trials: tuple[int, int], alpha: float, min_samples: int
) -> MetricResult:
    """Rates of `successes` in `trials` (baseline, canary). For error_rate higher is worse;
    for feedback (positive ratings) lower is worse."""
    (sb, sc), (nb, nc) = successes, trials
    test = "two-proportion z-test"
    rb = sb / nb if nb else None
    rc = sc / nc if nc else None
    effect = rc - rb if rb is not None and rc is not None else None

    def result(p: float | None, verdict: Verdict, reason: str, mde: float | None = None) -> MetricResult:
        return MetricResult(metric, test, nb, nc, rb, rc, effect, "rate difference", p, alpha, verdict, reason, mde)

    what = "requests" if metric == "error_rate" else "ratings"
    if nb == 0 or nc == 0:
        where = "either variant" if nb == nc else "the baseline" if nb == 0 else "the canary"
        return result(None, "inconclusive", f"no {what} in {where}")
    assert rb is not None and rc is not None and effect is not None
    worse = effect > 0 if metric == "error_rate" else effect < 0
    if min(nb, nc) < min_samples:
        # Only harm can decide on thin data, by a test exact at any size.
        test = "Fisher's exact test (below min_samples)"
        p = float(fisher_exact([[sc, nc - sc], [sb, nb - sb]], alternative="two-sided").pvalue)
        if p < alpha and worse:
            return result(
                p,
                "rollback",
                f"canary worse: {rc:.4g} vs {rb:.4g} (p={p:.3g} < {alpha:.3g}) at {nb} baseline, {nc} canary "
                f"{what}: harm rolls back before min_samples ({min_samples})",
            )
        return result(
            p,
            "inconclusive",
            f"too few {what} to promote: {nb} baseline, {nc} canary (< {min_samples}); no proven harm",
        )
    mde = _rate_mde(rb, nb, nc, alpha)
    if sb + sc in (0, nb + nc):
        # Every observation the same in both arms (e.g. no errors at all): no difference to test.
        return result(1.0, "promote", f"identical in both variants ({rb:.3g})", mde)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, p = proportions_ztest(np.array([sc, sb]), np.array([nc, nb]), alternative="two-sided")
    p = float(p)
    if p < alpha and worse:
        return result(p, "rollback", f"canary worse: {rc:.4g} vs {rb:.4g} (p={p:.3g} < {alpha:.3g})", mde)
    if p < alpha:
        return result(p, "promote", f"canary better: {rc:.4g} vs {rb:.4g} (p={p:.3g})", mde)
    return result(p, "promote", f"no significant difference (p={p:.3g} >= {alpha:.3g}; detectable: ±{mde:.3g})", mde)


def detectable_h(nb: int, nc: int, alpha: float, power: float = POWER) -> float:
    """Cohen's h a two-sided two-sample z-test detects with `power`: the closed form of the
    normal approximation statsmodels' `NormalIndPower.solve_power` solves numerically
    (that solver costs ~20 ms a call; the tests check both agree)."""
    return float((sps.norm.isf(alpha / 2) + sps.norm.ppf(power)) * math.sqrt(1 / nb + 1 / nc))


def _rate_mde(base_rate: float, nb: int, nc: int, alpha: float) -> float | None:
    """The absolute rate increase detectable with 80 % power at these sample sizes (Cohen's h)."""
    if nb <= 0 or nc <= 0:
        return None
    h = detectable_h(nb, nc, alpha)
    phi = 2 * math.asin(math.sqrt(min(max(base_rate, 0.0), 1.0)))
    other = min(phi + h, math.pi)
    return math.sin(other / 2) ** 2 - base_rate


def _latency(base: VariantData, canary: VariantData, alpha: float, min_samples: int) -> MetricResult:
    lb, lc = base.latency, canary.latency
    if isinstance(lb, Histogram) and isinstance(lc, Histogram) and lb.bounds == lc.bounds:
        return _mann_whitney(lb, lc, alpha, min_samples)
    if isinstance(lb, PeriodMeans) and isinstance(lc, PeriodMeans):
        return _welch(lb, lc, alpha, min_samples)
    nb = int(lb.total) if isinstance(lb, Histogram) else int(lb.counts.sum()) if isinstance(lb, PeriodMeans) else 0
    nc = int(lc.total) if isinstance(lc, Histogram) else int(lc.counts.sum()) if isinstance(lc, PeriodMeans) else 0
    reason = "no latency data" if lb is None or lc is None else "latency data of different shapes"
    if lb is None and lc is None:
        reason = "no latency data in either variant"
    return MetricResult("latency", "none", nb, nc, None, None, None, "ms", None, alpha, "inconclusive", reason)


def _mann_whitney(lb: Histogram, lc: Histogram, alpha: float, min_samples: int) -> MetricResult:
    nb, nc = round(lb.total), round(lc.total)
    qb, qc = lb.quantile(0.5), lc.quantile(0.5)
    base_ms = qb * 1000 if qb is not None else None
    canary_ms = qc * 1000 if qc is not None else None
    effect = canary_ms - base_ms if base_ms is not None and canary_ms is not None else None
    test = "Brunner-Munzel / Mann-Whitney on histogram buckets"

    def result(p: float | None, verdict: Verdict, reason: str, unit: str = "ms (p50 difference)") -> MetricResult:
        return MetricResult("latency", test, nb, nc, base_ms, canary_ms, effect, unit, p, alpha, verdict, reason)

    if nb == 0 and nc == 0:
        return result(None, "inconclusive", "no latency observations in either variant")
    thin = f"too few latency observations: {nb} baseline, {nc} canary"
    if min(nb, nc) < RANK_TEST_MIN_SAMPLES:
        return result(None, "inconclusive", f"{thin} (the rank test needs {RANK_TEST_MIN_SAMPLES} per variant)")
    # Computed from the counts per bucket, so a day of traffic costs as much as a minute.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: handled below
        res = rank_compare_2ordinal(np.rint(lc.counts), np.rint(lb.counts))
        superiority = float(res.prob1)  # P(canary slower) + half the ties
        p = float(res.test_prob_superior(value=0.5, alternative="two-sided").pvalue)
    if math.isnan(p):  # no spread inside either sample: identical, or completely apart
        p = 1.0 if superiority == 0.5 else 0.0
    detail = f"P(canary slower)={superiority:.3f}"
    early = min(nb, nc) < min_samples
    if p < alpha and superiority > 0.5:
        before = f"; harm rolls back before min_samples ({min_samples})" if early else ""
        return result(p, "rollback", f"canary slower: {detail} (p={p:.3g} < {alpha:.3g}){before}")
    if early:
        return result(p, "inconclusive", f"{thin} (< {min_samples}) to promote; no proven harm ({detail}, p={p:.3g})")
    if p < alpha:
        return result(p, "promote", f"canary faster: {detail} (p={p:.3g})")
    return result(p, "promote", f"no significant difference: {detail} (p={p:.3g} >= {alpha:.3g})")


def _welch(lb: PeriodMeans, lc: PeriodMeans, alpha: float, min_samples: int) -> MetricResult:
    nb, nc = int(lb.counts.sum()), int(lc.counts.sum())
    mb = float(np.average(lb.means, weights=lb.counts)) * 1000 if nb else None
    mc = float(np.average(lc.means, weights=lc.counts)) * 1000 if nc else None
    effect = mc - mb if mb is not None and mc is not None else None
    test = "Welch t-test (per-period mean latency)"

    def result(p: float | None, verdict: Verdict, reason: str) -> MetricResult:
        return MetricResult("latency", test, nb, nc, mb, mc, effect, "ms (mean difference)", p, alpha, verdict, reason)

    if nb == 0 and nc == 0:
        return result(None, "inconclusive", "no latency observations in either variant")
    thin = f"too few latency observations: {nb} baseline, {nc} canary"
    if min(len(lb.means), len(lc.means)) < 2:
        return result(None, "inconclusive", f"{thin} (Welch's test needs two periods per variant)")
    res = sps.ttest_ind(lc.means, lb.means, equal_var=False)
    p = float(res.pvalue)
    early = min(nb, nc) < min_samples
    if math.isnan(p):
        if early:
            return result(None, "inconclusive", f"{thin} (< {min_samples}) to promote")
        return result(1.0, "promote", "identical period means in both variants")
    assert effect is not None
    if p < alpha and effect > 0:
        before = f"; harm rolls back before min_samples ({min_samples})" if early else ""
        return result(p, "rollback", f"canary slower: {mc:.1f} ms vs {mb:.1f} ms (p={p:.3g} < {alpha:.3g}){before}")
    if early:
        return result(p, "inconclusive", f"{thin} (< {min_samples}) to promote; no proven harm (p={p:.3g})")
    if p < alpha:
        return result(p, "promote", f"canary faster: {mc:.1f} ms vs {mb:.1f} ms (p={p:.3g})")
    return result(p, "promote", f"no significant difference (p={p:.3g} >= {alpha:.3g})")


# --------------------------------------------------------------------------- the experiment


def compare(
    metric: Metric, base: VariantData, canary: VariantData, alpha: float, min_samples: int, role: Role = "gate"
) -> MetricResult:
    if metric == "error_rate":
        out = _proportions(metric, (base.errors, canary.errors), (base.requests, canary.requests), alpha, min_samples)
    elif metric == "feedback":
        out = _proportions(
            metric,
            (base.feedback_positive, canary.feedback_positive),
            (base.feedback_total, canary.feedback_total),
            alpha,
            min_samples,
        )
        if role == "guardrail" and min(base.feedback_total, canary.feedback_total) == 0:
            # Ratings count where both variants have them; a model whose users do not rate is unaffected.
            out = replace(out, reason=f"not counted: {out.reason}")
    else:
        out = _latency(base, canary, alpha, min_samples)
    return replace(out, role=role)


def combine(results: list[MetricResult]) -> Verdict:
    """Roll back on any harm; promote when every gate promotes (a guardrail only rolls back)."""
    if any(m.verdict == "rollback" for m in results):
        return "rollback"
    gates = [m for m in results if m.role == "gate"]
    if gates and all(m.verdict == "promote" for m in gates):
        return "promote"
    return "inconclusive"


def analyse(data: ExperimentData, plan: Plan) -> Analysis:
    base = baseline_of(data.variants)
    canaries = [v for v in data.variants if v.weight > 0 and v is not base]
    # The divisor counts every planned metric, guardrails included, whatever the data hold:
    # fixed before the data are seen, as Bonferroni's bound needs (see the module's docstring).
    tests = max(1, plan.looks * len(plan.metrics) * max(1, len(canaries)))
    alpha_test = plan.alpha / tests
    srm = sample_ratio(data.variants)
    if base is None or not canaries:
        reason = "no variant takes traffic" if base is None else "one variant takes all traffic: nothing to compare"
        baseline = base.version if base else None
        return Analysis(
            "inconclusive", "no-comparison", [reason], plan.alpha, alpha_test, plan.looks, srm, [], baseline
        )
    results: list[CanaryResult] = []
    for canary in canaries:
        metrics = [
            compare(m, base, canary, alpha_test, plan.min_samples, "guardrail" if m in plan.guardrails else "gate")
            for m in plan.metrics
        ]
        results.append(CanaryResult(canary.version, base.version, metrics, combine(metrics)))

    def why(keep: Callable[[MetricResult], bool]) -> list[str]:
        return [f"{r.version} {m.metric}: {m.reason}" for r in results for m in r.metrics if keep(m)]

    verdict: Verdict
    rule: Rule
    if any(r.verdict == "rollback" for r in results):
        verdict, rule, reasons = "rollback", "harm", why(lambda m: m.verdict == "rollback")
    elif srm.mismatch:
        verdict, rule, reasons = "inconclusive", "sample-ratio", [srm.reason]
    elif any(r.verdict == "inconclusive" for r in results):
        verdict, rule = "inconclusive", "insufficient-data"
        reasons = why(lambda m: m.role == "gate" and m.verdict != "promote")
    else:
        verdict, rule, reasons = "promote", "all-pass", why(lambda m: m.role == "gate")
    return Analysis(verdict, rule, reasons, plan.alpha, alpha_test, plan.looks, srm, results, base.version)
