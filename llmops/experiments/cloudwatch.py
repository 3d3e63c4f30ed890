"""Per-variant metrics of a SageMaker endpoint from CloudWatch (the aws target).

SageMaker publishes `Invocations`, `Invocation5XXErrors` and `ModelLatency`
(microseconds) per `EndpointName` x `VariantName` in `AWS/SageMaker`. Feedback is
not a SageMaker metric: the application that receives ratings publishes
`FeedbackCount` and `FeedbackPositive` with the same dimensions in
`LLMOps/Experiments` (the same counters the local front end exports).

One `GetMetricData` call set (paged) fetches every series at `period` seconds;
latency comes back as per-period means with their request counts, so the
statistics compare it with Welch's t-test on period means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmops.experiments.data import ExperimentData, PeriodMeans, VariantData
from llmops.experiments.prometheus import SourceError
from llmops.registry import Variant

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
FEEDBACK_NAMESPACE = "LLMOps/Experiments"
MAX_QUERIES = 500  # GetMetricData's limit per request


def metric_query(qid: str, namespace: str, metric: str, dims: dict[str, str], stat: str, period: int) -> dict[str, Any]:
    return {
        "Id": qid,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            },
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


# (query-id suffix, namespace, metric, stat)
SERIES = (
    ("req", SAGEMAKER_NAMESPACE, "Invocations", "Sum"),
    ("err", SAGEMAKER_NAMESPACE, "Invocation5XXErrors", "Sum"),
    ("lat", SAGEMAKER_NAMESPACE, "ModelLatency", "Average"),
    ("latn", SAGEMAKER_NAMESPACE, "ModelLatency", "SampleCount"),
    ("p50", SAGEMAKER_NAMESPACE, "ModelLatency", "p50"),
    ("p95", SAGEMAKER_NAMESPACE, "ModelLatency", "p95"),
    ("fb", FEEDBACK_NAMESPACE, "FeedbackCount", "Sum"),
    ("fbp", FEEDBACK_NAMESPACE, "FeedbackPositive", "Sum"),
)


def metric_queries(endpoint: str, variant_names: dict[str, str], period: int) -> list[dict[str, Any]]:
    out = []
    for i, (_version, vname) in enumerate(sorted(variant_names.items())):
        dims = {"EndpointName": endpoint, "VariantName": vname}
        for suffix, namespace, metric, stat in SERIES:
            out.append(metric_query(f"v{i}_{suffix}", namespace, metric, dims, stat, period))
    return out


class CloudWatchSource:
    def __init__(self, client: Any, endpoint: str, *, period: int = 60):
        self.client = client  # a boto3 CloudWatch client
        self.endpoint = endpoint
        self.period = period

    def fetch(
        self, queries: list[dict[str, Any]], start: float, end: float
    ) -> dict[str, tuple[list[Any], list[float]]]:
        """Query id -> (timestamps, values), every page of every batch."""
        from botocore.exceptions import BotoCoreError, ClientError

        series: dict[str, tuple[list[Any], list[float]]] = {}
        for first in range(0, len(queries), MAX_QUERIES):
            kwargs: dict[str, Any] = {
                "MetricDataQueries": queries[first : first + MAX_QUERIES],
                "StartTime": start,
                "EndTime": end,
                "ScanBy": "TimestampAscending",
            }
            while True:
                try:
                    page = self.client.get_metric_data(**kwargs)
                except (BotoCoreError, ClientError) as exc:
                    raise SourceError(f"CloudWatch GetMetricData for {self.endpoint} failed: {exc}") from None
                for result in page.get("MetricDataResults", []):
                    ts, vals = series.setdefault(result["Id"], ([], []))
                    ts.extend(result.get("Timestamps", []))
                    vals.extend(result.get("Values", []))
                token = page.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
        return series

    def collect(
        self,
        model: str,
        environment: str,
        variants: Sequence[Variant],
        start: float,
        end: float,
        variant_names: dict[str, str],
    ) -> ExperimentData:
        names = {v.version: variant_names.get(v.version, v.version) for v in variants}
        queries = metric_queries(self.endpoint, names, self.period)
        # The window's p50/p95 come from one period spanning it; Average/SampleCount per period.
        span = max(self.period, int(end - start))
        span -= span % 60 if span > 60 else 0
        for q in queries:
            if q["Id"].endswith(("_p50", "_p95")):
                q["MetricStat"]["Period"] = max(60, span)
        series = self.fetch(queries, start, end)
        return ExperimentData(
            model, environment, start, end, aggregate(series, names, variants), source=f"cloudwatch {self.endpoint}"
        )


def _paired(
    means: tuple[list[Any], list[float]], counts: tuple[list[Any], list[float]]
) -> tuple[np.ndarray, np.ndarray]:
    """(means, counts) of the periods present in both series and with requests."""
    if means[0] == counts[0]:  # the usual case: both series on the same period grid
        m, n = np.asarray(means[1], dtype=np.float64), np.asarray(counts[1], dtype=np.float64)
    else:
        by_time = dict(zip(counts[0], counts[1], strict=False))
        pairs = [(v, by_time.get(t, 0.0)) for t, v in zip(means[0], means[1], strict=False)]
        m = np.array([p[0] for p in pairs], dtype=np.float64)
        n = np.array([p[1] for p in pairs], dtype=np.float64)
    keep = n > 0
    return m[keep], n[keep]


def aggregate(
    series: dict[str, tuple[list[Any], list[float]]], names: dict[str, str], variants: Sequence[Variant]
) -> list[VariantData]:
    """Per-variant totals and per-period latency from the fetched series."""
    index = {version: i for i, version in enumerate(sorted(names))}
    out = []
    for v in variants:
        i = index[v.version]

        def values(suffix: str, i: int = i) -> np.ndarray:
            return np.asarray(series.get(f"v{i}_{suffix}", ([], []))[1], dtype=np.float64)

        def total(suffix: str, i: int = i) -> int:
            return round(math.fsum(series.get(f"v{i}_{suffix}", ([], []))[1]))

        mean_s, count_arr = _paired(series.get(f"v{i}_lat", ([], [])), series.get(f"v{i}_latn", ([], [])))
        p50, p95 = values("p50"), values("p95")
        latency = (
            PeriodMeans(
                mean_s / 1e6,  # ModelLatency is in microseconds
                count_arr,
                float(p50[-1]) / 1e6 if p50.size else None,
                float(p95[-1]) / 1e6 if p95.size else None,
            )
            if mean_s.size
            else None
        )
        out.append(
            VariantData(
                version=v.version,
                weight=v.weight,
                requests=total("req"),
                errors=total("err"),
                feedback_total=total("fb"),
                feedback_positive=total("fbp"),
                latency=latency,
            )
        )
    return out
