"""CloudWatch as the aws target's experiment source, against botocore's Stubber.

Proves: the source asks GetMetricData for SageMaker's per-variant series (Invocations,
Invocation5XXErrors, ModelLatency Average/SampleCount/p50/p95) and the feedback series,
with the endpoint and variant dimensions; it follows NextToken pages; it turns the
answers into per-variant totals and per-period latency means (microseconds → seconds)
that the statistics judge; an API error becomes a SourceError, never an empty pass.
Stubber validates every request and response against the real botocore service model.
Cannot prove: that SageMaker publishes those series for a given endpoint (AWS-side).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import ANY, Stubber

from llmops.experiments.cloudwatch import CloudWatchSource, metric_queries
from llmops.experiments.data import PeriodMeans
from llmops.experiments.prometheus import SourceError
from llmops.experiments.stats import Plan, analyse
from llmops.registry import Variant

pytestmark = pytest.mark.unit

START = datetime(2026, 1, 1, tzinfo=UTC)
VARIANTS = [Variant(version="v1", weight=90), Variant(version="v2", weight=10)]
NAMES = {"v1": "v1", "v2": "v2"}


def client() -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def results(index: int, periods: int, requests: float, errors: float, latency_us: float) -> list[dict[str, Any]]:
    ts = [START + timedelta(minutes=i) for i in range(periods)]

    def one(suffix: str, values: list[float]) -> dict[str, Any]:
        return {"Id": f"v{index}_{suffix}", "Timestamps": ts[: len(values)], "Values": values, "StatusCode": "Complete"}

    rng = np.random.default_rng(index)
    lat = [float(x) for x in rng.normal(latency_us, latency_us * 0.05, periods)]
    return [
        one("req", [requests] * periods),
        one("err", [errors] * periods),
        one("lat", lat),
        one("latn", [requests] * periods),
        one("p50", [latency_us]),
        one("p95", [latency_us * 2]),
        one("fb", [0.0] * periods),
        one("fbp", [0.0] * periods),
    ]


def test_queries_name_the_endpoint_variant_and_statistics() -> None:
    queries = metric_queries("llmops-staging-chat", NAMES, 60)
    assert len(queries) == 16
    first = queries[0]["MetricStat"]
    assert first["Metric"]["Namespace"] == "AWS/SageMaker" and first["Metric"]["MetricName"] == "Invocations"
    assert first["Metric"]["Dimensions"] == [
        {"Name": "EndpointName", "Value": "llmops-staging-chat"},
        {"Name": "VariantName", "Value": "v1"},
    ]
    stats = {(q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Stat"]) for q in queries}
    assert ("ModelLatency", "p95") in stats and ("FeedbackPositive", "Sum") in stats


def test_pages_are_followed_and_aggregated_into_a_verdict() -> None:
    cw = client()
    source = CloudWatchSource(cw, "llmops-staging-chat", period=60)
    page1 = results(0, 60, 90.0, 1.0, 100_000.0)
    page2 = results(1, 60, 10.0, 2.0, 100_000.0)  # the canary: 20 % errors
    with Stubber(cw) as stub:
        stub.add_response(
            "get_metric_data",
            {"MetricDataResults": page1, "NextToken": "next"},
            {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY, "ScanBy": "TimestampAscending"},
        )
        stub.add_response(
            "get_metric_data",
            {"MetricDataResults": page2},
            {
                "MetricDataQueries": ANY,
                "StartTime": ANY,
                "EndTime": ANY,
                "ScanBy": "TimestampAscending",
                "NextToken": "next",
            },
        )
        start = START.timestamp()
        data = source.collect("chat", "staging", VARIANTS, start, start + 3600, NAMES)
        stub.assert_no_pending_responses()
    v1, v2 = data.variants
    assert (v1.requests, v1.errors, v2.requests, v2.errors) == (5400, 60, 600, 120)
    assert isinstance(v1.latency, PeriodMeans) and v1.latency.means.size == 60
    assert v1.latency_quantile(0.95) == pytest.approx(0.2)  # microseconds → seconds
    a = analyse(data, Plan(alpha=0.05, looks=10, min_samples=200, metrics=("error_rate", "latency")))
    assert a.verdict == "rollback"
    assert a.canaries[0].metrics[0].verdict == "rollback" and a.canaries[0].metrics[1].verdict == "promote"


def test_an_endpoint_without_data_is_inconclusive() -> None:
    cw = client()
    empty = [
        {"Id": q["Id"], "Timestamps": [], "Values": [], "StatusCode": "Complete"}
        for q in metric_queries("e", NAMES, 60)
    ]
    with Stubber(cw) as stub:
        stub.add_response("get_metric_data", {"MetricDataResults": empty})
        data = CloudWatchSource(cw, "e").collect("chat", "staging", VARIANTS, 0.0, 3600.0, NAMES)
    assert [v.requests for v in data.variants] == [0, 0] and data.variants[0].latency is None
    assert analyse(data, Plan()).verdict == "inconclusive"


def test_an_api_error_is_a_source_error() -> None:
    cw = client()
    with Stubber(cw) as stub:
        stub.add_client_error("get_metric_data", "AccessDenied", "not allowed", 403)
        with pytest.raises(SourceError, match="AccessDenied"):
            CloudWatchSource(cw, "e").collect("chat", "staging", VARIANTS, 0.0, 3600.0, NAMES)
