"""The experiment and cost reports as HTML: what they draw comes from the report, nothing else.

Proves: a canary's error-rate effect is drawn with a confidence interval that holds the
report's own effect (statsmodels' interval for a difference of proportions, at the
report's per-test alpha) and whose sign follows a real difference; latency, tested on
histograms, gets no interval; the experiment HTML is one file with plotly.js inside
(no script loaded from the network); the cost HTML lists every line and says "no data"
for measured cost when there is none.
Cannot prove: that a browser draws the figures (the engine tests load them in Chromium).
"""

from __future__ import annotations

import re

import pytest

from llmops.dashboard.reports import cost_html, effect_interval, experiment_html
from llmops.experiments.data import ExperimentData, VariantData
from llmops.experiments.report import Report
from llmops.experiments.stats import Plan, analyse

pytestmark = pytest.mark.unit


def _report(canary_errors: int) -> Report:
    data = ExperimentData(
        "m",
        "staging",
        0.0,
        3600.0,
        [VariantData("v1", 50, requests=4000, errors=40), VariantData("v2", 50, requests=4000, errors=canary_errors)],
        source="test",
    )
    plan = Plan(min_samples=100, metrics=("error_rate",))
    return Report(data, analyse(data, plan), plan)


def test_the_effect_interval_holds_the_effect_and_excludes_zero_only_for_a_real_difference() -> None:
    worse = _report(canary_errors=160)  # 4 % vs 1 %
    (metric,) = worse.analysis.canaries[0].metrics
    low, high = effect_interval(worse, "v2", "error_rate") or (None, None)
    assert low is not None and high is not None
    assert low < metric.effect < high and low > 0
    same = _report(canary_errors=42)
    low, high = effect_interval(same, "v2", "error_rate") or (None, None)
    assert low is not None and high is not None and low < 0 < high
    assert effect_interval(same, "v2", "latency") is None


def test_the_experiment_html_is_one_offline_file() -> None:
    page = experiment_html(_report(canary_errors=160), [])
    assert not re.search(r"<script[^>]+src=", page), "a script loaded from elsewhere"
    assert "Plotly" in page and "error_x" in page and "ROLLBACK" in page


def test_the_cost_html_lists_every_line_and_no_measured_cost_says_no_data() -> None:
    line = {"kind": "endpoint", "name": "m", "instance_type": "ml.g5.xlarge", "count": 1.0}
    costs = {"dev": {"environment": "dev", "total_monthly_usd": 734.38, "lines": [
        {**line, "hourly_usd": 1.006, "monthly_usd": 734.38},
    ]}}  # fmt: skip
    page = cost_html(costs, None)
    assert "dev (dev): $734.38/month" in page and "ml.g5.xlarge" in page and "$734.38" in page
    assert 'data-panel="measured"' in page and "no data" in page.split('data-panel="measured"')[1]
