"""Experiment statistics: the verdicts on known cases.

Proves: a canary with a clearly higher error rate, a slower latency distribution
(histogram and per-period means) or worse feedback is a roll back with p below the
corrected alpha; an equal canary with enough samples is a promote that reports its
minimum detectable effect; too few samples, empty data or variants missing from the
source are inconclusive, never a pass; a split that does not match the weights is
flagged (sample-ratio mismatch) and blocks a promote; the per-test alpha is the
Bonferroni share of the planned looks, metrics and canaries, so an effect significant
only at the uncorrected level does not roll back.
Cannot prove: that the data a source returns is right (see the source tests).
"""

from __future__ import annotations

import numpy as np
import pytest

from llmops.experiments.data import ExperimentData, Histogram, PeriodMeans, VariantData
from llmops.experiments.stats import Plan, analyse, detectable_h, sample_ratio

pytestmark = pytest.mark.unit

BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, float("inf"))
PLAN = Plan(alpha=0.05, looks=10, min_samples=200, metrics=("error_rate", "latency"))


def hist(rng: np.random.Generator, n: int, median_s: float) -> Histogram:
    """Log-normal latencies binned like the front's histogram."""
    samples = rng.lognormal(np.log(median_s), 0.5, size=n)
    counts = np.histogram(samples, bins=(0.0, *BOUNDS))[0].astype(np.float64)
    return Histogram(BOUNDS, counts)


def variant(
    rng: np.random.Generator, version: str, weight: int, n: int, error_rate: float, median_s: float = 0.1
) -> VariantData:
    return VariantData(version, weight, n, int(rng.binomial(n, error_rate)), latency=hist(rng, n, median_s))


def data(*variants: VariantData) -> ExperimentData:
    return ExperimentData("chat", "staging", 0.0, 3600.0, list(variants))


def test_a_canary_with_more_errors_is_rolled_back_with_p_below_alpha() -> None:
    rng = np.random.default_rng(1)
    a = analyse(data(variant(rng, "v1", 90, 9000, 0.01), variant(rng, "v2", 10, 1000, 0.08)), PLAN)
    assert a.verdict == "rollback"
    err = a.canaries[0].metrics[0]
    assert err.metric == "error_rate" and err.verdict == "rollback"
    assert err.p_value is not None and err.p_value < a.alpha_per_test
    assert err.effect is not None and err.effect > 0.05
    assert any("error_rate" in r for r in a.reasons)


def test_an_equal_canary_with_enough_samples_is_promoted_and_says_what_it_could_detect() -> None:
    rng = np.random.default_rng(2)
    a = analyse(data(variant(rng, "v1", 50, 5000, 0.02), variant(rng, "v2", 50, 5000, 0.02)), PLAN)
    assert a.verdict == "promote", a.reasons
    err, lat = a.canaries[0].metrics
    assert err.p_value is not None and err.p_value >= a.alpha_per_test
    assert err.mde is not None and 0 < err.mde < 0.02  # a 2-point rise would have been seen
    assert "Mann-Whitney" in lat.test and lat.verdict == "promote"


def test_a_slower_canary_is_rolled_back_on_latency_alone() -> None:
    rng = np.random.default_rng(3)
    a = analyse(data(variant(rng, "v1", 90, 4000, 0.0), variant(rng, "v2", 10, 500, 0.0, median_s=0.2)), PLAN)
    assert a.verdict == "rollback"
    err, lat = a.canaries[0].metrics
    assert err.verdict == "promote" and err.p_value == 1.0  # no errors anywhere: nothing to test
    assert lat.verdict == "rollback" and lat.p_value is not None and lat.p_value < a.alpha_per_test
    assert lat.effect is not None and lat.effect > 50  # p50 difference in ms


def test_welch_on_period_means_when_the_source_has_no_histogram() -> None:
    rng = np.random.default_rng(4)

    def periods(mean_s: float, n: int = 60) -> PeriodMeans:
        return PeriodMeans(rng.normal(mean_s, 0.01, n), np.full(n, 20.0))

    slow = data(
        VariantData("v1", 80, 1200, 0, latency=periods(0.10)), VariantData("v2", 20, 1200, 0, latency=periods(0.13))
    )
    a = analyse(slow, PLAN)
    lat = a.canaries[0].metrics[1]
    assert lat.test.startswith("Welch") and lat.verdict == "rollback"
    same = data(
        VariantData("v1", 80, 1200, 0, latency=periods(0.10)), VariantData("v2", 20, 1200, 0, latency=periods(0.10))
    )
    assert analyse(same, PLAN).canaries[0].metrics[1].verdict == "promote"


def test_worse_feedback_rolls_back_when_feedback_gates() -> None:
    plan = Plan(alpha=0.05, looks=5, min_samples=100, metrics=("feedback",))
    base = VariantData("v1", 50, 2000, 0, feedback_total=800, feedback_positive=640)
    worse = VariantData("v2", 50, 2000, 0, feedback_total=800, feedback_positive=480)
    a = analyse(data(base, worse), plan)
    assert a.verdict == "rollback" and a.canaries[0].metrics[0].effect == pytest.approx(-0.2)
    assert analyse(data(base, VariantData("v2", 50, 2000, 0)), plan).verdict == "inconclusive"  # no ratings


@pytest.mark.parametrize(
    "variants",
    [
        [VariantData("v1", 90), VariantData("v2", 10)],  # the source returned nothing
        [VariantData("v1", 90, 5000, 10), VariantData("v2", 10)],  # the canary got no traffic
        [VariantData("v1", 90, 150, 0), VariantData("v2", 10, 20, 0)],  # under min_samples
        [VariantData("v1", 100, 5000, 0)],  # nothing to compare
        [],
    ],
)
def test_missing_or_thin_data_is_inconclusive(variants: list[VariantData]) -> None:
    a = analyse(data(*variants), PLAN)
    assert a.verdict == "inconclusive"
    assert a.reasons
    assert all(m.verdict != "promote" for c in a.canaries for m in c.metrics if m.n_canary < PLAN.min_samples)


def test_a_sample_ratio_mismatch_blocks_a_promote() -> None:
    rng = np.random.default_rng(5)
    # Configured 90/10, observed 80/20: the split itself is broken.
    a = analyse(data(variant(rng, "v1", 90, 8000, 0.01), variant(rng, "v2", 10, 2000, 0.01)), PLAN)
    assert a.srm.mismatch and a.srm.p_value is not None and a.srm.p_value < 0.001
    assert a.verdict == "inconclusive" and "sample ratio mismatch" in a.reasons[0]
    ok = sample_ratio([VariantData("v1", 90, 9030), VariantData("v2", 10, 970)])
    assert not ok.mismatch


def test_alpha_is_spent_over_looks_metrics_and_canaries() -> None:
    plan = Plan(alpha=0.05, looks=20, min_samples=100, metrics=("error_rate",))
    # 2.0 % vs 2.6 %: p ~ 0.006, significant at 0.05 but not at 0.05 / 20.
    base = VariantData("v1", 50, 10000, 200)
    canary = VariantData("v2", 50, 10000, 260)
    a = analyse(data(base, canary), plan)
    m = a.canaries[0].metrics[0]
    assert a.alpha_per_test == pytest.approx(0.05 / 20)
    assert m.p_value is not None and a.alpha_per_test < m.p_value < 0.05
    assert m.verdict == "promote" and a.verdict == "promote"
    single = analyse(data(base, canary), Plan(alpha=0.05, looks=1, min_samples=100, metrics=("error_rate",)))
    assert single.verdict == "rollback"


def test_histogram_quantiles_interpolate_like_prometheus() -> None:
    h = Histogram.from_cumulative({0.1: 50.0, 0.2: 100.0, float("inf"): 100.0})
    assert h.quantile(0.5) == pytest.approx(0.1)
    assert h.quantile(0.75) == pytest.approx(0.15)
    assert Histogram.from_cumulative({0.1: 0.0, float("inf"): 0.0}).quantile(0.5) is None


@pytest.mark.parametrize(("nb", "nc", "alpha"), [(1000, 1000, 0.05), (9000, 1000, 0.001), (300, 50, 0.0025)])
def test_detectable_effect_matches_statsmodels_power_solver(nb: int, nc: int, alpha: float) -> None:
    from statsmodels.stats.power import NormalIndPower

    solved = NormalIndPower().solve_power(nobs1=nb, alpha=alpha, power=0.8, ratio=nc / nb)
    assert detectable_h(nb, nc, alpha) == pytest.approx(solved, rel=1e-3)


def test_the_bucket_test_agrees_with_scipys_mann_whitney_on_the_expanded_sample() -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(6)
    base, canary = hist(rng, 3000, 0.1), hist(rng, 400, 0.12)
    a = analyse(data(VariantData("v1", 88, 3000, 0, latency=base), VariantData("v2", 12, 400, 0, latency=canary)), PLAN)
    lat = a.canaries[0].metrics[1]
    idx = np.arange(len(BOUNDS))
    expanded = mannwhitneyu(
        np.repeat(idx, canary.counts.astype(int)), np.repeat(idx, base.counts.astype(int)), method="asymptotic"
    )
    assert lat.p_value == pytest.approx(expanded.pvalue, rel=0.05, abs=1e-6)
    apart = Histogram(BOUNDS, np.array([0, 0, 0, 0, 0, 500.0, 0, 0]))
    fast = Histogram(BOUNDS, np.array([500.0, 0, 0, 0, 0, 0, 0, 0]))
    gone = analyse(
        data(VariantData("v1", 50, 500, 0, latency=fast), VariantData("v2", 50, 500, 0, latency=apart)), PLAN
    )
    assert gone.canaries[0].metrics[1].verdict == "rollback"
