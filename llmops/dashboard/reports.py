"""Reports as pictures: single-file, offline HTML for the experiment report and the cost.

(The drift report is Evidently's own HTML, saved by `llmops.datasets.drift`.)
An experiment's effect is drawn with its confidence interval at the per-test alpha the
report uses (Newcombe's score interval for a difference of proportions, statsmodels' default);
latency's test works on histograms, so its effect is drawn as a point without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.dashboard import render
from llmops.dashboard.data import Series

if TYPE_CHECKING:
    from llmops.experiments.report import Report
    from llmops.registry import Deployment


def html_target(path: Path | None) -> Path | None:
    """An `--html FILE` argument, refused before any work when its folder does not exist."""
    from llmops.errors import UserError

    if path is not None and not path.parent.is_dir():
        raise UserError(f"--html {path}: no folder {path.parent}")
    return path


def load_deployment(root: Path, environment: str, name: str) -> Deployment | None:
    """The registry's deployment of `name` in `environment` (None if it has none or the registry is invalid)."""
    from llmops import paths
    from llmops.registry import RegistryError, load_registry
    from llmops.settings import load_all_stacks

    try:
        registry = load_registry(paths.models_dir(root), load_all_stacks(paths.stacks_dir(root)))
    except (RegistryError, OSError, ValueError):
        return None
    return next((d for d in registry.deployed_to(environment) if d.name == name), None)


def effect_interval(report: Report, version: str, metric: str) -> tuple[float, float] | None:
    """The canary-minus-baseline confidence interval of a proportion metric, at the per-test alpha."""
    if metric not in ("error_rate", "feedback") or report.analysis.baseline is None:
        return None
    from statsmodels.stats.proportion import confint_proportions_2indep

    by = {v.version: v for v in report.data.variants}
    base, canary = by.get(report.analysis.baseline), by.get(version)
    if base is None or canary is None:
        return None
    if metric == "error_rate":
        (sc, nc), (sb, nb) = (canary.errors, canary.requests), (base.errors, base.requests)
    else:
        (sc, nc), (sb, nb) = (
            (canary.feedback_positive, canary.feedback_total),
            (base.feedback_positive, base.feedback_total),
        )
    if min(nc, nb) == 0:
        return None
    low, high = confint_proportions_2indep(sc, nc, sb, nb, compare="diff", alpha=report.analysis.alpha_per_test)
    return float(low), float(high)


def effect_chart(report: Report, div_id: str) -> str | None:
    """Each canary metric's effect (canary - baseline) with its interval; None without canaries."""
    points = []
    for c in report.analysis.canaries:
        for m in c.metrics:
            if m.effect is not None:
                points.append(
                    (
                        f"{c.version} {m.metric} ({m.effect_unit})",
                        m.effect,
                        effect_interval(report, c.version, m.metric),
                        m.verdict,
                    )
                )
    if not points:
        return None
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Scatter(
            x=[p[1] for p in points],
            y=[p[0] for p in points],
            mode="markers",
            marker={"size": 10},
            text=[p[3] for p in points],
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [(p[2][1] - p[1]) if p[2] else 0 for p in points],
                "arrayminus": [(p[1] - p[2][0]) if p[2] else 0 for p in points],
            },
            name="effect",
        )
    )
    fig.add_vline(x=0, line_dash="dot")
    return render.figure(fig, div_id)


def sample_ratio_chart(report: Report, div_id: str) -> str | None:
    srm = report.analysis.srm
    total = sum(srm.observed.values())
    if not total:
        return None
    import plotly.graph_objects as go

    versions = sorted(srm.observed)
    fig = go.Figure(
        [
            go.Bar(name="observed share", x=versions, y=[srm.observed[v] / total for v in versions]),
            go.Bar(name="expected share", x=versions, y=[srm.expected_share.get(v, 0.0) for v in versions]),
        ]
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%")
    return render.figure(fig, div_id)


def experiment_body(report: Report, div_id: str) -> str:
    """Verdict, the effect chart and the report's own text."""
    verdict = report.verdict.upper()
    chart = effect_chart(report, div_id) or '<p class="no-data">no canary effect (one variant, or no data)</p>'
    return f"<p><strong>verdict: {render.esc(verdict)}</strong></p>{chart}{render.pre(report.text())}"


def experiment_html(report: Report, over_time: Sequence[Series]) -> str:
    """`llmops experiment report --html`: variants over time, effect with its interval, sample ratio, the text."""
    sections = [
        render.panel(
            "variants", "Requests per second by version", render.timeseries(over_time, "reqps", "variants-over-time")
        ),
        render.panel("effect", "Effect with its confidence interval", experiment_body(report, "effect")),
        render.panel("sample-ratio", f"Sample ratio: {report.analysis.srm.reason}", sample_ratio_chart(report, "srm")),
    ]
    return render.page(
        f"Experiment {report.data.model}",
        f'<div class="grid">{"".join(sections)}</div>',
        plotly_src=None,
        meta=render.esc(report.heading()),
    )


def cost_html(costs: dict[str, dict[str, Any]], measured: dict[str, Any] | None) -> str:
    """`llmops cost --html`: each stack's monthly cost by line (`StackCost.to_dict()`), and measured cost."""
    import plotly.graph_objects as go

    sections = []
    for name, cost in costs.items():
        lines = cost["lines"]
        billed = [line for line in lines if line["monthly_usd"] > 0]
        chart = None
        if billed:
            fig = go.Figure(
                go.Bar(
                    x=[line["monthly_usd"] for line in billed],
                    y=[f"{line['kind']} {line['name']}" for line in billed],
                    orientation="h",
                    name="$/month",
                )
            )
            fig.update_xaxes(tickprefix="$")
            chart = render.figure(fig, f"cost-{name}")
        rows = [
            [
                render.esc(line["kind"]),
                render.esc(line["name"]),
                f"{line['count']:g} x {render.esc(line['instance_type'])}",
                f"${line['hourly_usd']:.4f}",
                f"${line['monthly_usd']:,.2f}",
            ]
            for line in lines
        ]
        body = (chart or "") + render.table(["kind", "name", "instances", "$/hour", "$/month"], rows) if rows else None
        title = f"{name} ({cost['environment']}): ${cost['total_monthly_usd']:,.2f}/month"
        sections.append(render.panel(f"stack-{name}", title, body, "" if billed else "nothing billed"))
    note = "" if measured else "llmops cost --measured has no numbers"
    sections.append(render.panel("measured", "Measured cost", render.json_block(measured) if measured else None, note))
    return render.page(
        "Cost",
        f'<div class="grid">{"".join(sections)}</div>',
        plotly_src=None,
        meta="on-demand catalog prices, 730 hours a month",
    )


def write_experiment_html(path: Path, report: Report, prometheus_url: str | None) -> None:
    """The report's HTML; on the local target with each version's request rate over the report's window."""
    from llmops.dashboard.data import Prometheus, SourceError, panel_series
    from llmops.dashboard.panels import Panel, Query, rate

    over_time: list[Series] = []
    if prometheus_url is not None:
        sel = 'model="$model",route!~"/v1/feedback|/v1/models"'
        requests = Panel(
            "variants", "", "reqps", (Query(rate("llmops_requests_total", sel, "1m", "version"), "{{version}}"),)
        )
        d = report.data
        step = max(5.0, (d.end - d.start) / 300)
        try:
            over_time = panel_series(
                Prometheus(prometheus_url), requests, d.model, start=d.start, end=d.end, step=step, rate_interval="1m"
            )
        except SourceError:
            over_time = []
    path.write_text(experiment_html(report, over_time))


def write_cost_html(path: Path, costs: dict[str, dict[str, Any]], root: Path, stack: str | None) -> None:
    """The cost's HTML, with `llmops cost --measured --json` where that exists."""
    import json
    import subprocess
    import sys

    measured = None
    argv = [sys.executable, "-m", "llmops.cli", "cost", "--measured", "--json"] + (["--stack", stack] if stack else [])
    result = subprocess.run(argv, capture_output=True, text=True, cwd=root, timeout=120, check=False)
    if result.returncode == 0 and result.stdout.strip():
        try:
            measured = json.loads(result.stdout)
        except ValueError:
            measured = None
    path.write_text(cost_html(costs, measured))
