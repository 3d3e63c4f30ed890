"""The dashboard's pages: the overview of every model and version, and one page per model.

`Site` is what a page is drawn from: Prometheus, the stack's deployed models (with
their registry thresholds) and the records the stack keeps (evaluation results and
lineage from the stack's resources, written to the dashboard's records file by its
provider), the experiment report computed from Prometheus, and measured cost from
`llmops cost --measured` where that exists.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.dashboard import render
from llmops.dashboard.data import Prometheus, SourceError, panel_series
from llmops.dashboard.panels import ALERTS_FIRING, OVERVIEW, PANELS, Panel, substitute

RANGE_SECONDS = 900  # what a chart shows: the last 15 minutes
RATE_INTERVAL = "30s"  # a few of the local scrape interval (2 s), as the local SLO rules use
OVERVIEW_CHARTS = ("requests", "latency", "errors", "tokens")  # per model, under the overview's table
OVERVIEW_WINDOW = "5m"  # the overview's numbers: the last five minutes, steadier than a chart's point
PLOTLY_PATH = "/static/plotly.min.js"
MODEL_RECORDS = "records.d"  # a model stack's records, beside the dashboard's own (llmops.layout)


@dataclass
class Site:
    prometheus: Prometheus
    records_file: Path  # JSON: {stack, environment, root, models: {...}, evaluations: {...}, lineage: {...}}

    def records(self) -> dict[str, Any]:
        """The stack's records, with each model stack's (`records.d/<model>.json` beside them, written
        by components/local/model_monitoring.py) merged in by model."""
        try:
            records = dict(json.loads(self.records_file.read_text()))
        except (OSError, ValueError):
            records = {}
        for fragment in sorted((self.records_file.parent / MODEL_RECORDS).glob("*.json")):
            try:
                parts = json.loads(fragment.read_text())
            except (OSError, ValueError):
                continue  # being replaced, or removed with its model: the next request reads it again
            for kind, by_model in parts.items():
                if isinstance(by_model, dict):
                    records[kind] = {**(records.get(kind) or {}), **by_model}
        return records

    def models(self) -> dict[str, dict[str, Any]]:
        return dict(self.records().get("models") or {})


def _threshold(panel: Panel, model: dict[str, Any]) -> float | None:
    if panel.threshold == "p95_latency_s":
        return float(model["slo"]["p95_latency_ms"]) / 1000
    if panel.threshold == "error_rate":
        return float(model["slo"]["error_rate"])
    if panel.threshold == "drift_share" and model.get("drift_share") is not None:
        return float(model["drift_share"])
    return None


def overview(site: Site) -> str:
    """Every model and version: traffic, error rate, p50/p95, tokens/s, replicas, alerts firing."""
    rows, notes = [], []
    firing: dict[str, float] = {}
    try:
        firing = {labels.get("model", ""): v for labels, v in site.prometheus.instant(ALERTS_FIRING)}
    except SourceError as exc:
        notes.append(str(exc))
    for name, model in sorted(site.models().items()):
        values: dict[str, dict[str, float]] = {}
        for col in OVERVIEW:
            try:
                found = site.prometheus.instant(substitute(col.expr, name, OVERVIEW_WINDOW))
            except SourceError as exc:
                notes.append(str(exc))
                found = []
            values[col.title] = {labels.get("version", ""): v for labels, v in found}
        for variant in model["versions"]:
            v = variant["version"]
            cells = [
                f'<a href="/models/{render.esc(name)}">{render.esc(name)}</a>',
                render.esc(v),
                f"{variant['weight']}%",
            ]
            cells += [render.fmt(values[c.title].get(v), c.unit) for c in OVERVIEW]
            cells.append(str(int(firing.get(name, 0))))
            rows.append(cells)
    headers = ["model", "version", "weight", *(f"{c.title} (5 min)" for c in OVERVIEW[:5]), "replicas", "alerts firing"]
    body = render.table(headers, rows) if rows else None
    table = render.panel("overview", "Models served", body, "; ".join(dict.fromkeys(notes)))
    charts = [
        _chart(site, p, name, model, key=f"{name}/{p.key}", title=f"{name}: {p.title}")
        for name, model in sorted(site.models().items())
        for p in PANELS
        if p.key in OVERVIEW_CHARTS
    ]
    return f'{table}<div class="grid" style="margin-top:1rem">{"".join(charts)}</div>'


def _chart(site: Site, p: Panel, name: str, model: dict[str, Any], *, key: str, title: str) -> str:
    """One Prometheus panel of one model, or "no data" with why."""
    end = time.time()
    try:
        series = panel_series(
            site.prometheus, p, name, start=end - RANGE_SECONDS, end=end, step=5, rate_interval=RATE_INTERVAL
        )
    except SourceError as exc:
        return render.panel(key, title, None, str(exc))
    return render.panel(
        key, title, render.timeseries(series, p.unit, f"panel-{key.replace('/', '-')}", _threshold(p, model))
    )


def model_page(site: Site, name: str) -> str | None:
    models = site.models()
    if name not in models:
        return None
    model = models[name]
    sections = []
    for p in PANELS:
        if p.prometheus:
            sections.append(_chart(site, p, name, model, key=p.key, title=p.title))
            continue
        try:
            body, note = record_panel(site, p, name)
        except SourceError as exc:
            body, note = None, str(exc)
        sections.append(render.panel(p.key, p.title, body, note))
    return f'<p><a href="/">all models</a></p><div class="grid">{"".join(sections)}</div>'


def record_panel(site: Site, p: Panel, name: str) -> tuple[str | None, str]:
    records = site.records()
    if p.record == "evaluations":
        return evaluations_chart(records.get("evaluations", {}).get(name) or {}, f"panel-{p.key}"), ""
    if p.record == "lineage":
        from llmops.datasets.lineage import chain_lines

        chain = (records.get("lineage") or {}).get(name)
        return (render.pre("\n".join(chain_lines(name, chain))) if chain else None), ""
    if p.record == "experiment":
        return experiment_panel(site, records, name)
    return measured_cost(str(records.get("root", ".")), str(records.get("stack", "")))


def evaluations_chart(results: dict[str, dict[str, Any]], div_id: str) -> str | None:
    """Each gate's measured value per version, with the gate's threshold as a marker."""
    gates: dict[str, dict[str, tuple[float | None, float]]] = {}
    for version, suites in sorted(results.items()):
        for suite, result in sorted(suites.items()):
            for metric, gate in sorted((result.get("gates") or {}).items()):
                gates.setdefault(f"{suite}/{metric}", {})[version] = (gate.get("value"), float(gate["threshold"]))
    if not gates:
        return None
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = sorted(gates)
    versions = sorted({v for g in gates.values() for v in g})
    for v in versions:
        fig.add_trace(go.Bar(name=v, x=labels, y=[gates[g].get(v, (None, 0))[0] for g in labels]))
    fig.add_trace(
        go.Scatter(
            name="threshold",
            x=labels,
            y=[next(iter(gates[g].values()))[1] for g in labels],
            mode="markers",
            marker={"symbol": "line-ew-open", "size": 30, "color": "#cf222e", "line": {"width": 3}},
        )
    )
    fig.update_layout(barmode="group")
    return render.figure(fig, div_id)


def experiment_panel(site: Site, records: dict[str, Any], name: str) -> tuple[str | None, str]:
    """The experiment report over the last hour: variants, verdict, each canary's effect with its interval."""
    from llmops.dashboard.reports import experiment_body, load_deployment
    from llmops.experiments.prometheus import PrometheusSource
    from llmops.experiments.prometheus import SourceError as ExperimentSourceError
    from llmops.experiments.report import build_report

    dep = load_deployment(Path(str(records.get("root", "."))), str(records.get("environment", "")), name)
    if dep is None:
        return None, "the registry does not deploy it here"
    end = time.time()
    try:
        data = PrometheusSource(site.prometheus.url).collect(dep.name, dep.environment, dep.variants, end - 3600, end)
    except ExperimentSourceError as exc:
        return None, str(exc).splitlines()[0]
    report = build_report(dep, data)
    if not any(v.requests for v in data.variants):
        return None, "no requests in the last hour"
    return experiment_body(report, "panel-experiment-effect"), "window: the last hour"


_COST_TTL = 300.0  # the command costs seconds (it imports the CLI); cost moves slowly
_cost_cache: dict[tuple[str, str], tuple[float, tuple[str | None, str]]] = {}


def measured_cost(root: str, stack: str) -> tuple[str | None, str]:
    """`llmops cost --measured --json` where that command exists and has numbers; otherwise no data."""
    cached = _cost_cache.get((root, stack))
    if cached and time.monotonic() - cached[0] < _COST_TTL:
        return cached[1]
    answer = _measured_cost(root, stack)
    _cost_cache[(root, stack)] = (time.monotonic(), answer)
    return answer


def _measured_cost(root: str, stack: str) -> tuple[str | None, str]:
    result = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "cost", "--measured", "--json", "--stack", stack],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip():
        why = (result.stderr.strip().splitlines() or ["no measured cost"])[-1]
        if "unrecognized arguments: --measured" in why:
            why = "this llmops has no `llmops cost --measured`"
        return None, why[:200]
    try:
        return render.json_block(json.loads(result.stdout)), "llmops cost --measured"
    except ValueError:
        return None, "llmops cost --measured gave no JSON"
