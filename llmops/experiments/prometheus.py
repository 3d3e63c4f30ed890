"""Per-variant metrics of the local target from Prometheus' HTTP API.

Every number is one instant query of `increase(...[window])` summed by version, so
Prometheus handles counter resets and scrape gaps; the series are the front end's
metrics contract (`llmops.local.serve.Metrics`, and the feedback counters of
`llmops.local.experiment_routing`). Only generation routes count: `/v1/models` and
the like are not part of the experiment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx

from llmops.experiments.data import ExperimentData, Histogram, VariantData
from llmops.registry import Variant

GENERATION_ROUTES = '"/v1/chat/completions|/v1/completions"'


class SourceError(Exception):
    """The metrics source could not be read; the message says which and why."""


def _window(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


def queries(model: str, window_seconds: float) -> dict[str, str]:
    sel = f'model="{model}",route=~{GENERATION_ROUTES}'
    w = _window(window_seconds)
    return {
        "requests": f"sum by (version) (increase(llmops_requests_total{{{sel}}}[{w}]))",
        "errors": f"sum by (version) (increase(llmops_request_errors_total{{{sel}}}[{w}]))",
        "buckets": f"sum by (version, le) (increase(llmops_request_duration_seconds_bucket{{{sel}}}[{w}]))",
        "feedback": f'sum by (version) (increase(llmops_feedback_total{{model="{model}"}}[{w}]))',
        "positive": f'sum by (version) (increase(llmops_feedback_positive_total{{model="{model}"}}[{w}]))',
    }


class PrometheusSource:
    def __init__(self, url: str, *, client: httpx.Client | None = None, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.client = client or httpx.Client(timeout=timeout)

    def query(self, promql: str, at: float) -> list[dict[str, Any]]:
        try:
            r = self.client.get(f"{self.url}/api/v1/query", params={"query": promql, "time": f"{at:.3f}"})
        except httpx.HTTPError as exc:
            raise SourceError(f"Prometheus at {self.url} is unreachable: {type(exc).__name__}: {exc}") from None
        try:
            body = r.json()
        except ValueError:
            raise SourceError(f"Prometheus at {self.url} answered {r.status_code} without JSON") from None
        if r.status_code != 200 or body.get("status") != "success":
            raise SourceError(f"Prometheus rejected {promql!r}: {body.get('error') or r.status_code}")
        result = body.get("data", {}).get("result", [])
        return result if isinstance(result, list) else []

    def collect(
        self, model: str, environment: str, variants: Sequence[Variant], start: float, end: float
    ) -> ExperimentData:
        q = queries(model, end - start)
        by_version: dict[str, dict[str, float]] = {}
        buckets: dict[str, dict[float, float]] = {}
        for key in ("requests", "errors", "feedback", "positive"):
            for row in self.query(q[key], end):
                version = row.get("metric", {}).get("version", "")
                by_version.setdefault(version, {})[key] = _value(row)
        for row in self.query(q["buckets"], end):
            labels = row.get("metric", {})
            version, le = labels.get("version", ""), labels.get("le")
            if le is not None:
                buckets.setdefault(version, {})[float(le)] = _value(row)
        out: list[VariantData] = []
        for v in variants:
            got = by_version.get(v.version, {})
            hist = Histogram.from_cumulative(buckets[v.version]) if buckets.get(v.version) else None
            out.append(
                VariantData(
                    version=v.version,
                    weight=v.weight,
                    requests=round(got.get("requests", 0.0)),
                    errors=round(got.get("errors", 0.0)),
                    feedback_total=round(got.get("feedback", 0.0)),
                    feedback_positive=round(got.get("positive", 0.0)),
                    latency=hist,
                )
            )
        return ExperimentData(model, environment, start, end, out, source=f"prometheus {self.url}")


def _value(row: dict[str, Any]) -> float:
    try:
        value = float(row["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0
