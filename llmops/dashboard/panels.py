"""The serving panels, defined once: the local dashboard and the Grafana JSON are both generated from here.

A panel is a title, a unit and either PromQL queries (written with Grafana's own
variables `$model` and `$__rate_interval`, which the local dashboard substitutes)
or the name of a record the platform keeps (an experiment report, evaluation
records, lineage, measured cost). Grafana shows the Prometheus panels
(`llmops.observability.grafana_dashboard`); the local dashboard shows all of them,
and the overview's columns are instant queries by model and version.
Each Prometheus panel queries the front end's `llmops_*` series and the vLLM/TGI/DCGM
equivalents side by side; a target shows only the series it exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Record = Literal["experiment", "evaluations", "lineage", "cost"]
# The registry number a panel is judged against, drawn as a line on the local dashboard.
Threshold = Literal["p95_latency_s", "error_rate", "drift_share"]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str  # Grafana's legendFormat: `{{label}}` placeholders


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    unit: str  # a Grafana unit id: reqps, s, percentunit, short, percent, currencyUSD
    queries: tuple[Query, ...] = ()
    record: Record | None = None
    threshold: Threshold | None = None

    @property
    def prometheus(self) -> bool:
        return bool(self.queries)


@dataclass(frozen=True)
class Column:
    """One overview column: an instant query by version for `$model` (a single number per row)."""

    title: str
    unit: str
    expr: str


def p95(bucket: str, sel: str, window: str, by: str = "le", q: float = 0.95) -> str:
    return f"histogram_quantile({q:g}, sum by ({by}) (rate({bucket}{{{sel}}}[{window}])))"


def rate(counter: str, sel: str, window: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping}(rate({counter}{{{sel}}}[{window}]))"


def ratio(part: str, whole: str, sel: str, window: str, by: str = "", part_sel: str | None = None) -> str:
    """part/whole; a part counter with no series yet (no error so far) counts 0 while `whole` has traffic.

    Without traffic the ratio stays empty: no data, never a zero line.
    """
    p, w = rate(part, part_sel or sel, window, by), rate(whole, sel, window, by)
    return f"({p} or 0 * {w}) / {w}"


M, W = 'model="$model"', "$__rate_interval"
_M_5XX = M + ',status="5xx"'
_PODS = 'pod=~"$model-.+"'
_FB_RATIO = f"DCGM_FI_DEV_FB_USED{{{_PODS}}} / (DCGM_FI_DEV_FB_USED{{{_PODS}}} + DCGM_FI_DEV_FB_FREE{{{_PODS}}})"

PANELS: tuple[Panel, ...] = (
    Panel(
        "requests",
        "Requests per second",
        "reqps",
        (
            Query(rate("llmops_requests_total", M, W, "version, code"), "{{version}} {{code}}"),
            Query(rate("http_requests_total", M, W, "status"), "vllm {{status}}"),
            Query(rate("tgi_request_count", M, W), "tgi"),
        ),
    ),
    Panel(
        "latency",
        "Latency p95",
        "s",
        (
            Query(p95("llmops_request_duration_seconds_bucket", M, W, "le, version"), "{{version}}"),
            Query(p95("vllm:e2e_request_latency_seconds_bucket", M, W), "vllm"),
            Query(p95("tgi_request_duration_bucket", M, W), "tgi"),
        ),
        threshold="p95_latency_s",
    ),
    Panel(
        "errors",
        "Error ratio",
        "percentunit",
        (
            Query(ratio("llmops_request_errors_total", "llmops_requests_total", M, W), "errors"),
            Query(ratio("http_requests_total", "http_requests_total", M, W, part_sel=_M_5XX), "vllm"),
            Query(ratio("tgi_request_failure", "tgi_request_count", M, W), "tgi"),
        ),
        threshold="error_rate",
    ),
    Panel(
        "ttft",
        "Time to first token p95",
        "s",
        (
            Query(p95("llmops_time_to_first_token_seconds_bucket", M, W, "le, version"), "{{version}}"),
            Query(p95("vllm:time_to_first_token_seconds_bucket", M, W), "vllm"),
        ),
    ),
    Panel(
        "tokens",
        "Generated tokens per second",
        "short",
        (
            Query(rate("llmops_generated_tokens_total", M, W, "version"), "{{version}}"),
            Query(rate("vllm:generation_tokens_total", M, W), "vllm"),
            Query(rate("tgi_request_generated_tokens_sum", M, W), "tgi"),
        ),
    ),
    Panel(
        "in_flight",
        "Requests in flight",
        "short",
        (
            Query(f"sum(llmops_requests_in_flight{{{M}}})", "front end"),
            Query(f"sum(vllm:num_requests_running{{{M}}})", "vllm"),
            Query(f"sum(tgi_batch_current_size{{{M}}})", "tgi"),
        ),
    ),
    Panel(
        "gpu_memory",
        "GPU memory utilisation",
        "percentunit",
        (
            Query(f"max by (replica) (llmops_gpu_memory_utilization{{{M}}})", "{{replica}}"),
            Query(f"max by (pod, gpu) ({_FB_RATIO})", "{{pod}} gpu{{gpu}}"),
        ),
    ),
    Panel(
        "gpu_util",
        "GPU utilisation",
        "percent",
        (Query(f"avg by (pod, gpu) (DCGM_FI_DEV_GPU_UTIL{{{_PODS}}})", "{{pod}} gpu{{gpu}}"),),
    ),
    Panel(
        "replicas",
        "Replicas per version",
        "short",
        (
            Query(f"sum by (version) (llmops_replicas{{{M}}})", "{{version}}"),
            Query(f'count(kube_pod_status_ready{{{_PODS},condition="true"}} == 1)', "pods ready"),
        ),
    ),
    Panel(
        "feedback",
        "Positive feedback rate",
        "percentunit",
        (Query(ratio("llmops_feedback_positive_total", "llmops_feedback_total", M, W, "version"), "{{version}}"),),
    ),
    Panel(
        "token_counters",
        "Prompt and completion tokens per second",
        "short",
        # One query per counter: rate() over a name regex drops the names, and two counters with the
        # same labels then collide ("vector cannot contain metrics with the same labelset").
        (
            Query(rate("llmops_prompt_tokens_total", M, W, "version"), "{{version}} prompt"),
            Query(rate("llmops_completion_tokens_total", M, W, "version"), "{{version}} completion"),
        ),
    ),
    Panel(
        "drift",
        "Drift score (share of drifted descriptors)",
        "percentunit",
        (Query(f"max(llmops_drift_score{{{M}}})", "drift score"),),
        threshold="drift_share",
    ),
    Panel(
        "alerts",
        "Alerts firing",
        "short",
        (Query(f'count by (alertname) (ALERTS{{{M},alertstate="firing"}})', "{{alertname}}"),),
    ),
    Panel("experiment", "Experiment: variants, verdict and effect", "short", record="experiment"),
    Panel("evaluations", "Evaluation gates per version", "short", record="evaluations"),
    Panel("lineage", "Lineage", "short", record="lineage"),
    Panel("cost", "Measured cost", "currencyUSD", record="cost"),
)

_SEL = 'model="$model",route!~"/v1/feedback|/v1/models"'
OVERVIEW: tuple[Column, ...] = (
    Column("traffic", "reqps", rate("llmops_requests_total", _SEL, W, "version")),
    Column(
        "error rate",
        "percentunit",
        ratio("llmops_request_errors_total", "llmops_requests_total", _SEL, W, "version"),
    ),
    Column("p50", "s", p95("llmops_request_duration_seconds_bucket", _SEL, W, "le, version", q=0.5)),
    Column("p95", "s", p95("llmops_request_duration_seconds_bucket", _SEL, W, "le, version")),
    Column("tokens/s", "short", rate("llmops_generated_tokens_total", M, W, "version")),
    Column("replicas", "short", f"sum by (version) (llmops_replicas{{{M}}})"),
)
ALERTS_FIRING = 'count by (model) (ALERTS{alertstate="firing"})'


def prometheus_panels() -> list[Panel]:
    return [p for p in PANELS if p.prometheus]


def substitute(expr: str, model: str, rate_interval: str) -> str:
    """A panel query as the local dashboard sends it: Grafana's variables replaced by values."""
    return expr.replace("$model", model).replace("$__rate_interval", rate_interval)
