"""Experiment statistics: the verdicts on known cases.

Proves: a canary with a clearly higher error rate, a slower latency distribution
(histogram and per-period means) or worse feedback is a roll back with p below the
corrected alpha; a proven harm rolls back below `min_samples` too (90 % vs 50 %
positive at 153 vs 147 ratings), by a test that holds its level on thin data, while
thin data never promotes, not even a better canary; an equal canary with enough
samples is a promote that reports its minimum detectable effect; too few samples,
empty data or variants missing from the source are inconclusive, never a pass; a
split that does not match the weights is flagged (sample-ratio mismatch) and blocks a
promote but not a roll back; the analysis names the rule that decided; the per-test
alpha is the Bonferroni share of the planned looks, metrics and canaries, so an effect
significant only at the uncorrected level does not roll back; by default feedback is
a guardrail whose share of alpha is fixed before the data, that rolls back on worse
ratings and is otherwise left out, so a model without ratings gets the verdict of the
two other metrics.
Cannot prove: that the data a source returns is right (see the source tests).
"""

from __future__ import annotations

import numpy as np
import pytest

from llmops.experiments.data import ExperimentData, Histogram, PeriodMeans, VariantData
from llmops.experiments.stats import Plan, analyse, compare, detectable_h, sample_ratio

pytestmark = pytest.mark.unit

BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, float("inf"))
PLAN = Plan(alpha=0.05, looks=10, min_samples=200, metrics=("error_rate", "latency"), guardrails=())
LISTED = Plan(metrics=("error_rate", "latency", "feedback"), guardrails=())  # min_samples 200, 24 looks


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
    plan = Plan(alpha=0.05, looks=5, min_samples=100, metrics=("feedback",), guardrails=())
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
    assert a.verdict == "inconclusive" and a.rule == "sample-ratio" and "sample ratio mismatch" in a.reasons[0]
    ok = sample_ratio([VariantData("v1", 90, 9030), VariantData("v2", 10, 970)])
    assert not ok.mismatch


def test_alpha_is_spent_over_looks_metrics_and_canaries() -> None:
    plan = Plan(alpha=0.05, looks=20, min_samples=100, metrics=("error_rate",), guardrails=())
    # 2.0 % vs 2.6 %: p ~ 0.006, significant at 0.05 but not at 0.05 / 20.
    base = VariantData("v1", 50, 10000, 200)
    canary = VariantData("v2", 50, 10000, 260)
    a = analyse(data(base, canary), plan)
    m = a.canaries[0].metrics[0]
    assert a.alpha_per_test == pytest.approx(0.05 / 20)
    assert m.p_value is not None and a.alpha_per_test < m.p_value < 0.05
    assert m.verdict == "promote" and a.verdict == "promote"
    single = analyse(data(base, canary), Plan(looks=1, min_samples=100, metrics=("error_rate",), guardrails=()))
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


def rated(version: str, ratings: int, positive: int, requests: int = 1000) -> VariantData:
    """Clean on errors and latency with `requests` each; `positive` of `ratings` rated well."""
    latency = Histogram(BOUNDS, np.array([0, 0, 0, requests * 0.6, requests * 0.4, 0, 0, 0]))
    return VariantData(version, 50, requests, 0, ratings, positive, latency)


@pytest.mark.parametrize("plan", [LISTED, Plan()], ids=["feedback-listed", "default-metrics"])
def test_ninety_against_fifty_percent_positive_rolls_back_at_153_vs_147_ratings(plan: Plan) -> None:
    a = analyse(data(rated("v1", 153, 138), rated("v2", 147, 74)), plan)
    assert plan.min_samples == 200
    assert a.verdict == "rollback" and a.rule == "harm", a.reasons
    err, lat, fb = a.canaries[0].metrics
    assert (err.verdict, lat.verdict) == ("promote", "promote")
    assert fb.verdict == "rollback" and (fb.n_baseline, fb.n_canary) == (153, 147)
    assert fb.test.startswith("Fisher's exact test")
    assert fb.p_value is not None and fb.p_value < 1e-10 and a.alpha_per_test == pytest.approx(0.05 / 72)
    assert fb.effect == pytest.approx(74 / 147 - 138 / 153)
    assert a.reasons == [f"v2 feedback: {fb.reason}"] and "before min_samples (200)" in fb.reason


def test_thin_data_never_promotes_even_a_better_canary() -> None:
    better = analyse(data(rated("v1", 153, 74), rated("v2", 147, 138)), LISTED)
    fb = better.canaries[0].metrics[2]
    assert fb.p_value is not None and fb.p_value < better.alpha_per_test  # significantly better...
    assert fb.verdict == "inconclusive" and "too few ratings to promote" in fb.reason  # ...but not enough of it
    assert better.verdict == "inconclusive" and better.rule == "insufficient-data"


def test_harm_on_errors_and_latency_rolls_back_below_min_samples_too() -> None:
    errors = analyse(data(VariantData("v1", 50, 150, 1), VariantData("v2", 50, 150, 45)), PLAN)
    assert errors.rule == "harm" and errors.canaries[0].metrics[0].verdict == "rollback"
    fast = Histogram(BOUNDS, np.array([0, 0, 0, 40.0, 0, 0, 0, 0]))
    slow = Histogram(BOUNDS, np.array([0, 0, 0, 0, 0, 40.0, 0, 0]))
    lat = analyse(data(VariantData("v1", 50, 40, 0, latency=fast), VariantData("v2", 50, 40, 0, latency=slow)), PLAN)
    assert lat.rule == "harm" and lat.canaries[0].metrics[1].verdict == "rollback"
    # Below the rank test's own minimum nothing is trusted, even two samples completely apart.
    few = (
        Histogram(BOUNDS, np.array([0, 0, 0, 5.0, 0, 0, 0, 0])),
        Histogram(BOUNDS, np.array([0, 0, 0, 0, 0, 5.0, 0, 0])),
    )
    tiny = analyse(data(VariantData("v1", 50, 5, 0, latency=few[0]), VariantData("v2", 50, 5, 0, latency=few[1])), PLAN)
    assert tiny.canaries[0].metrics[1].verdict == "inconclusive" and tiny.verdict == "inconclusive"


@pytest.mark.parametrize(("nb", "nc", "rate"), [(40, 15, 0.8), (30, 30, 0.5)])
def test_the_early_harm_rule_holds_its_level_on_thin_data(nb: int, nc: int, rate: float) -> None:
    """The exact chance of a false roll back, over every outcome of two equal variants, stays within
    the one-sided share of the default per-test alpha. (At 40 vs 15 ratings of 80 % the z-test's
    would be 1.8 times it: its normal tail is too thin there, which is why thin data get Fisher's.)"""
    from scipy.stats import binom

    alpha = Plan().alpha / (Plan().looks * 3)
    size = sum(
        binom.pmf(sb, nb, rate) * binom.pmf(sc, nc, rate)
        for sb in range(nb + 1)
        for sc in range(nc + 1)
        if compare(
            "feedback", VariantData("v1", 50, 0, 0, nb, sb), VariantData("v2", 50, 0, 0, nc, sc), alpha, 200
        ).verdict
        == "rollback"
    )
    assert size <= alpha / 2


def test_a_sample_ratio_mismatch_does_not_keep_a_proven_harm_serving() -> None:
    rng = np.random.default_rng(5)
    a = analyse(data(variant(rng, "v1", 90, 8000, 0.01), variant(rng, "v2", 10, 2000, 0.2)), PLAN)
    assert a.srm.mismatch and a.verdict == "rollback" and a.rule == "harm"


def test_feedback_by_default_counts_where_both_variants_have_ratings() -> None:
    default = Plan()
    assert default.metrics == ("error_rate", "latency", "feedback") and default.guardrails == ("feedback",)
    # A model whose users do not rate: the same verdict as gating on errors and latency alone.
    rng = np.random.default_rng(2)
    unrated = data(variant(rng, "v1", 50, 5000, 0.02), variant(rng, "v2", 50, 5000, 0.02))
    a = analyse(unrated, default)
    two = analyse(unrated, Plan(metrics=("error_rate", "latency"), guardrails=()))
    assert a.verdict == two.verdict == "promote" and a.rule == "all-pass"
    fb = a.canaries[0].metrics[2]
    assert fb.role == "guardrail" and fb.verdict == "inconclusive" and fb.reason.startswith("not counted: no ratings")
    # The guardrail's share of alpha is fixed by the plan, not by whether ratings arrived.
    assert a.alpha_per_test == pytest.approx(0.05 / (24 * 3)) and two.alpha_per_test == pytest.approx(0.05 / 48)
    # Ratings in one variant only are not counted either; too few in both never hold a promote.
    one_side = analyse(data(rated("v1", 153, 138), rated("v2", 0, 0)), default)
    assert (
        one_side.verdict == "promote"
        and "not counted: no ratings in the canary" in one_side.canaries[0].metrics[2].reason
    )
    thin = analyse(data(rated("v1", 40, 36), rated("v2", 40, 35)), default)
    assert thin.verdict == "promote" and thin.canaries[0].metrics[2].verdict == "inconclusive"
    # Listed, feedback gates: no ratings keep the step inconclusive.
    assert analyse(unrated, LISTED).verdict == "inconclusive"
