"""One panel definition feeds both dashboards: the committed Grafana JSON and the local page.

Proves: every Prometheus panel of `llmops.dashboard.panels.PANELS` is a Grafana panel
with the same title, unit and queries, in order, and no Grafana panel comes from
elsewhere; the committed `components/dashboards/llm-serving.json` is exactly what the
definition generates; the local dashboard's substitution leaves no Grafana variable
behind; a ratio over no traffic stays empty (no data) while zero errors over traffic
is 0; legends read Grafana's `{{label}}` format; and the local page says "no data"
for a panel with nothing to draw instead of drawing a line at zero.
Cannot prove: that Prometheus accepts the queries or that a browser draws them (the
engine tests load the page in headless Chromium against a real Prometheus).
"""

from __future__ import annotations

import json

import pytest

from llmops.dashboard import render
from llmops.dashboard.data import Series, legend
from llmops.dashboard.panels import OVERVIEW, PANELS, prometheus_panels, substitute
from llmops.observability import DASHBOARD_PATH, dashboard_json

pytestmark = pytest.mark.unit


def test_grafana_panels_are_the_definitions_prometheus_panels() -> None:
    grafana = json.loads(DASHBOARD_PATH.read_text())["panels"]
    defined = prometheus_panels()
    assert [p["title"] for p in grafana] == [p.title for p in defined]
    for g, p in zip(grafana, defined, strict=True):
        assert g["fieldConfig"]["defaults"]["unit"] == p.unit
        assert [(t["expr"], t["legendFormat"]) for t in g["targets"]] == [(q.expr, q.legend) for q in p.queries]
    assert DASHBOARD_PATH.read_text() == dashboard_json(), "run `python -m llmops.observability`"


def test_every_panel_has_one_source_and_a_unique_key() -> None:
    assert len({p.key for p in PANELS}) == len(PANELS)
    for p in PANELS:
        assert bool(p.queries) != bool(p.record), p.key
    assert {p.record for p in PANELS if p.record} == {"experiment", "evaluations", "lineage", "cost"}


def test_local_queries_carry_no_grafana_variable() -> None:
    for expr in [q.expr for p in prometheus_panels() for q in p.queries] + [c.expr for c in OVERVIEW]:
        local = substitute(expr, "tiny-chat", "30s")
        assert "$" not in local, local
        assert "[30s]" in local or "rate(" not in local, local


def test_error_ratio_is_zero_with_traffic_and_empty_without() -> None:
    errors = next(p for p in PANELS if p.key == "errors").queries[0]
    # The error counter has no series until the first error: `or 0 * requests` makes that 0
    # while there is traffic, and leaves the ratio empty when there is none.
    assert " or 0 * sum(rate(llmops_requests_total" in errors.expr
    assert errors.expr.endswith('/ sum(rate(llmops_requests_total{model="$model"}[$__rate_interval]))')


def test_legend_reads_grafana_placeholders() -> None:
    assert legend("{{version}} {{code}}", {"version": "v2", "code": "200"}) == "v2 200"
    assert legend("{{pod}} gpu{{gpu}}", {"pod": "m-v1-abc"}) == "m-v1-abc gpu"
    assert legend("front end", {}) == "front end"


def test_a_panel_without_series_says_no_data_and_draws_nothing() -> None:
    assert render.timeseries([], "reqps", "x") is None
    html = render.panel("requests", "Requests per second", None)
    assert "no data" in html and "plotly" not in html
    drawn = render.timeseries([Series("v1", [1.0, 2.0], [0.5, 0.7])], "reqps", "y", threshold=1.0)
    assert drawn is not None and '"name":"v1"' in drawn.replace(" ", "")
    assert render.fmt(None, "percentunit") != render.fmt(0.0, "percentunit")
