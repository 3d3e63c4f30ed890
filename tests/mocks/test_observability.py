"""Registry SLOs become Prometheus alert rules; the committed dashboard is the generator's output.

Proves the rule file's shape (one group per model, three alerts with `model`
and `severity` labels and the threshold in an annotation), that each
threshold is the registry's number in the unit of the query (latency in ms
from seconds histograms), that each runtime's metric names are used, and that
`components/dashboards/llm-serving.json` has not drifted from
`grafana_dashboard()`.

Cannot prove: that Prometheus accepts the expressions or that the runtimes
export these series (the local serving tests and a live cluster do).
"""

from __future__ import annotations

import json

import pytest

from llmops.observability import (
    ALERT_ERRORS,
    ALERT_GPU_MEMORY,
    ALERT_LATENCY,
    DASHBOARD_PATH,
    dashboard_json,
    grafana_dashboard,
    prometheus_rules,
    workload_name,
)
from llmops.registry import Registry

pytestmark = pytest.mark.unit


def test_one_group_per_model_with_the_slo_thresholds(fixture_registry: Registry) -> None:
    deployments = fixture_registry.deployed_to("prod")
    rules = prometheus_rules(deployments)
    assert [g["name"] for g in rules["groups"]] == sorted(f"llmops-slo-{d.name}" for d in deployments)
    for dep, group in zip(sorted(deployments, key=lambda d: d.name), rules["groups"], strict=True):
        slo = dep.model.monitoring.slo
        by_alert = {r["alert"]: r for r in group["rules"]}
        assert set(by_alert) == {ALERT_LATENCY, ALERT_ERRORS, ALERT_GPU_MEMORY}
        for rule in group["rules"]:
            assert rule["labels"]["model"] == dep.name and rule["labels"]["severity"] in ("critical", "warning")
            assert f'model="{dep.name}"' in rule["expr"]
            assert rule["for"] == "5m"
        latency, errors, memory = by_alert[ALERT_LATENCY], by_alert[ALERT_ERRORS], by_alert[ALERT_GPU_MEMORY]
        assert float(latency["annotations"]["threshold"]) == slo.p95_latency_ms
        assert latency["expr"].startswith("histogram_quantile(0.95,") and " * 1000 > " in latency["expr"]
        assert float(latency["expr"].rsplit(">", 1)[1]) == slo.p95_latency_ms
        assert float(errors["expr"].rsplit(">", 1)[1]) == slo.error_rate
        assert float(memory["expr"].rsplit(">", 1)[1]) == slo.gpu_memory_utilization
        assert "llmops_request_duration_seconds_bucket" in latency["expr"]
        assert "llmops_request_errors_total" in errors["expr"] and "llmops_requests_total" in errors["expr"]
        assert "llmops_gpu_memory_utilization" in memory["expr"]


@pytest.mark.parametrize(
    ("runtime", "latency", "errors"),
    [
        ("vllm", "vllm:e2e_request_latency_seconds_bucket", 'status="5xx"'),
        ("tgi", "tgi_request_duration_bucket", "tgi_request_failure"),
    ],
)
def test_runtime_metric_names_on_eks(fixture_registry: Registry, runtime: str, latency: str, errors: str) -> None:
    dep = fixture_registry.models["code-eks"].deployment("prod")
    (group,) = prometheus_rules([dep], runtime_metrics=runtime, rate_window="2m", for_="10m")["groups"]
    by_alert = {r["alert"]: r for r in group["rules"]}
    assert latency in by_alert[ALERT_LATENCY]["expr"] and "[2m]" in by_alert[ALERT_LATENCY]["expr"]
    assert errors in by_alert[ALERT_ERRORS]["expr"]
    memory = by_alert[ALERT_GPU_MEMORY]["expr"]
    assert "DCGM_FI_DEV_FB_USED" in memory and "DCGM_FI_DEV_FB_FREE" in memory
    # GPU series are matched to the model's own pods, not to another model sharing a name prefix.
    for variant in dep.variants:
        assert workload_name(dep.name, variant.version) in memory
    assert all(r["for"] == "10m" for r in group["rules"])


def test_workload_names_are_dns_labels() -> None:
    assert workload_name("code-eks", "2025-06-01-rc1.hotfix") == "code-eks-2025-06-01-rc1-hotfix"
    assert len(workload_name("m" * 40, "v" * 21)) <= 63


def test_the_committed_dashboard_is_the_generated_one() -> None:
    assert DASHBOARD_PATH.read_text() == dashboard_json()
    dashboard = json.loads(DASHBOARD_PATH.read_text())
    assert dashboard == grafana_dashboard()
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource", "model"]
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "llmops_requests_total",
        "llmops_request_errors_total",
        "llmops_request_duration_seconds_bucket",
        "llmops_time_to_first_token_seconds_bucket",
        "llmops_generated_tokens_total",
        "llmops_requests_in_flight",
        "llmops_gpu_memory_utilization",
        "DCGM_FI_DEV_FB_USED",
    ):
        assert metric in exprs
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
