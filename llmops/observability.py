"""Registry SLOs as Prometheus alert rules, and the serving dashboard, for both targets.

One source for what "the SLO is broken" means: the local target's Prometheus and
the EKS clusters' kube-prometheus-stack load rules generated here, and both
Grafanas show the dashboard generated here (committed as
`components/dashboards/llm-serving.json`; `python -m llmops.observability`
rewrites it). Metric names follow the serving front end's contract (`llmops`)
or the serving runtimes on EKS (`vllm`, `tgi`, with DCGM for GPU memory).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmops.dashboard.panels import p95, prometheus_panels, rate
from llmops.registry import Deployment

RuntimeMetrics = Literal["llmops", "vllm", "tgi"]
DASHBOARD_PATH = Path(__file__).resolve().parent.parent / "components" / "dashboards" / "llm-serving.json"
DASHBOARD_UID = "llmops-serving"

ALERT_LATENCY = "LLMOpsLatencyP95High"
ALERT_ERRORS = "LLMOpsErrorRateHigh"
ALERT_GPU_MEMORY = "LLMOpsGpuMemoryHigh"
ALERT_DRIFT = "LLMOpsDriftDetected"


def workload_name(model: str, version: str) -> str:
    """The Kubernetes Deployment (and pod name prefix) of one model version on EKS.

    Kept here because the GPU memory rule matches DCGM's `pod` label against it.
    """
    safe = "".join(c if c.isalnum() else "-" for c in f"{model}-{version}".lower()).strip("-")
    return safe[:63].rstrip("-")


def eks_runtime(deployment: Deployment) -> str:
    """The runtime serving a deployment on EKS: TGI for `tgi`, vLLM for the rest (LMI's engine is
    vLLM). Kept here because the SLO rules and the measured usage read that runtime's series."""
    return "tgi" if deployment.model.serving.runtime == "tgi" else "vllm"


@dataclass(frozen=True)
class _Queries:
    latency_p95_ms: str
    error_ratio: str
    gpu_memory: str


def _queries(deployment: Deployment, runtime_metrics: RuntimeMetrics, window: str) -> _Queries:
    # Every series carries `model`: the front end exports it, and on EKS the scrape
    # config copies it from the serving Service onto the runtime's series.
    sel = f'model="{deployment.name}"'
    if runtime_metrics == "llmops":
        return _Queries(
            latency_p95_ms=f"{_p95('llmops_request_duration_seconds_bucket', sel, window)} * 1000",
            error_ratio=f"{_rate('llmops_request_errors_total', sel, window)} / "
            f"{_rate('llmops_requests_total', sel, window)}",
            gpu_memory=f"max(llmops_gpu_memory_utilization{{{sel}}})",
        )
    # DCGM labels each GPU's series with the pod using it; Deployment names prefix pod names.
    pods = "|".join(sorted(workload_name(deployment.name, v.version) for v in deployment.variants))
    on_pods = f'pod=~"({pods})-[a-z0-9]+-[a-z0-9]+"'
    used, free = f"DCGM_FI_DEV_FB_USED{{{on_pods}}}", f"DCGM_FI_DEV_FB_FREE{{{on_pods}}}"
    gpu_memory = f"max({used} / ({used} + {free}))"
    if runtime_metrics == "vllm":
        server_errors = sel + ',status="5xx"'  # vLLM's OpenAI server counts responses by status class
        return _Queries(
            latency_p95_ms=f"{_p95('vllm:e2e_request_latency_seconds_bucket', sel, window)} * 1000",
            error_ratio=f"{_rate('http_requests_total', server_errors, window)} / "
            f"{_rate('http_requests_total', sel, window)}",
            gpu_memory=gpu_memory,
        )
    return _Queries(
        latency_p95_ms=f"{_p95('tgi_request_duration_bucket', sel, window)} * 1000",
        error_ratio=f"{_rate('tgi_request_failure', sel, window)} / {_rate('tgi_request_count', sel, window)}",
        gpu_memory=gpu_memory,
    )


def prometheus_rules(
    deployments: Sequence[Deployment],
    *,
    runtime_metrics: RuntimeMetrics = "llmops",
    rate_window: str = "5m",
    for_: str = "5m",
    drift: bool = False,
) -> dict[str, Any]:
    """A Prometheus rule file (`{"groups": [...]}`): one group per model, three SLO alerts each."""
    groups: list[dict[str, Any]] = []
    for dep in sorted(deployments, key=lambda d: d.name):
        slo = dep.model.monitoring.slo
        q = _queries(dep, runtime_metrics, rate_window)
        labels = {"model": dep.name, "team": dep.model.owner, "environment": dep.environment}
        groups.append(
            {
                "name": f"llmops-slo-{dep.name}",
                "rules": [
                    {
                        "alert": ALERT_LATENCY,
                        "expr": f"{q.latency_p95_ms} > {_num(slo.p95_latency_ms)}",
                        "for": for_,
                        "labels": {**labels, "severity": "critical"},
                        "annotations": {
                            "summary": f"{dep.name}: p95 latency above {_num(slo.p95_latency_ms)} ms",
                            "threshold": _num(slo.p95_latency_ms),
                            "unit": "ms",
                        },
                    },
                    {
                        "alert": ALERT_ERRORS,
                        "expr": f"({q.error_ratio}) > {_num(slo.error_rate)}",
                        "for": for_,
                        "labels": {**labels, "severity": "critical"},
                        "annotations": {
                            "summary": f"{dep.name}: error rate above {_num(slo.error_rate)}",
                            "threshold": _num(slo.error_rate),
                            "unit": "ratio",
                        },
                    },
                    {
                        "alert": ALERT_GPU_MEMORY,
                        "expr": f"{q.gpu_memory} > {_num(slo.gpu_memory_utilization)}",
                        "for": for_,
                        "labels": {**labels, "severity": "warning"},
                        "annotations": {
                            "summary": f"{dep.name}: GPU memory above {_num(slo.gpu_memory_utilization)}",
                            "threshold": _num(slo.gpu_memory_utilization),
                            "unit": "ratio",
                        },
                    },
                ],
            }
        )
    if drift:  # the local target scrapes its drift monitors; on AWS drift is a CloudWatch alarm
        groups += drift_rule_groups(deployments, for_=for_)
    return {"groups": groups}


def drift_rule_groups(deployments: Sequence[Deployment], *, for_: str = "5m") -> list[dict[str, Any]]:
    """One group per model with `monitoring.drift`: the scheduled monitor's verdict as an alert."""
    groups = []
    for dep in sorted(deployments, key=lambda d: d.name):
        drift = dep.model.monitoring.drift
        if drift is None:
            continue
        labels = {"model": dep.name, "team": dep.model.owner, "environment": dep.environment}
        groups.append(
            {
                "name": f"llmops-drift-{dep.name}",
                "rules": [
                    {
                        "alert": ALERT_DRIFT,
                        "expr": f'max(llmops_drift_detected{{model="{dep.name}"}}) > 0',
                        "for": for_,
                        "labels": {**labels, "severity": "warning"},
                        "annotations": {
                            "summary": f"{dep.name}: captured traffic drifted from its dataset "
                            f"(at least {_num(drift.drift_share)} of descriptors)",
                            "threshold": _num(drift.drift_share),
                            "unit": "ratio",
                        },
                    }
                ],
            }
        )
    return groups


def _num(value: float) -> str:
    """A threshold as PromQL and humans write it (5000, not 5000.0)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --------------------------------------------------------------------------- dashboard


def _panel(pid: int, title: str, unit: str, targets: list[tuple[str, str]], x: int, y: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _p95(bucket: str, sel: str, window: str, by: str = "le") -> str:
    return p95(bucket, sel, window, by)


def _rate(counter: str, sel: str, window: str, by: str = "") -> str:
    return rate(counter, sel, window, by)


def grafana_dashboard() -> dict[str, Any]:
    """The serving dashboard: one model at a time (template variable), every runtime's series.

    Its panels are the Prometheus panels of `llmops.dashboard.panels`, the definition the
    local dashboard draws too; record panels (experiments, evaluations, lineage, cost) are
    the local dashboard's, since Grafana reads Prometheus only.
    """
    series = "llmops_requests_total|http_requests_total|tgi_request_count"
    return {
        "uid": DASHBOARD_UID,
        "title": "LLMOps serving",
        "tags": ["llmops"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
                {
                    "name": "model",
                    "label": "Model",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": {"query": f'label_values({{__name__=~"{series}"}}, model)', "refId": "model"},
                    "refresh": 2,
                    "includeAll": False,
                    "multi": False,
                },
            ]
        },
        "panels": [
            _panel(i + 1, p.title, p.unit, [(q.expr, q.legend) for q in p.queries], x=(i % 2) * 12, y=(i // 2) * 8)
            for i, p in enumerate(prometheus_panels())
        ],
    }


def dashboard_json() -> str:
    """The dashboard as committed: stable key order, so the file diffs only when it changes."""
    return json.dumps(grafana_dashboard(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DASHBOARD_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dashboard_json())
    print(f"wrote {target}")
