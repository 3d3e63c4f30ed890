"""Measured usage of a SageMaker endpoint, from CloudWatch (the aws target).

What SageMaker itself publishes per `EndpointName` x `VariantName` (a scale-to-zero endpoint's
invocations and latency: per `InferenceComponentName`):
- `AWS/SageMaker`: `Invocations` (requests) and `ModelLatency` (microseconds), whatever the
  runtime; per-minute concurrency is Invocations x mean ModelLatency / 60 (Little's law);
- `/aws/sagemaker/Endpoints`: `GPUUtilization` (percent, summed over an instance's GPUs),
  one sample per instance per minute, so a minute's SampleCount is the instances held.
No runtime's token counts reach CloudWatch on their own: TGI and vLLM count tokens on
their in-container Prometheus `/metrics` (`tgi_request_input_length`/
`tgi_request_generated_tokens`, `vllm:prompt_tokens_total`/`vllm:generation_tokens_total`),
which SageMaker real-time endpoints do not scrape; LMI (DJL Serving) logs them. Tokens
are read from `LLMOps/Usage` `PromptTokens`/`CompletionTokens` (same dimensions), which
whatever fronts the endpoint publishes (as `LLMOps/Experiments` feedback is); without
them, tokens are reported as not measured, never as zero.
"""

from __future__ import annotations

import math
from typing import Any

from llmops.experiments.cloudwatch import SAGEMAKER_NAMESPACE, CloudWatchSource, metric_query
from llmops.usage.data import VersionUsage

INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
USAGE_NAMESPACE = "LLMOps/Usage"
PERIOD = 60
INVOCATION_SERIES = ("req", "lat", "p95")

# (query-id suffix, namespace, metric, stat, whole window: one period spanning it)
SERIES = (
    ("req", SAGEMAKER_NAMESPACE, "Invocations", "Sum", False),
    ("lat", SAGEMAKER_NAMESPACE, "ModelLatency", "Average", False),
    ("p95", SAGEMAKER_NAMESPACE, "ModelLatency", "p95", True),
    ("inst", INSTANCE_NAMESPACE, "GPUUtilization", "SampleCount", False),
    ("gpu", INSTANCE_NAMESPACE, "GPUUtilization", "Average", False),
    ("pt", USAGE_NAMESPACE, "PromptTokens", "Sum", True),
    ("ct", USAGE_NAMESPACE, "CompletionTokens", "Sum", True),
)


def usage_queries(
    endpoint: str, variant_names: dict[str, str], window: float, component: str | None = None
) -> list[dict[str, Any]]:
    """The series of each variant; on a scale-to-zero endpoint SageMaker reports invocations and
    latency per inference component (`InferenceComponentName`), instances per its one variant."""
    span = max(PERIOD, int(window) - int(window) % PERIOD)
    out = []
    for i, (_version, name) in enumerate(sorted(variant_names.items())):
        dims = {"EndpointName": endpoint, "VariantName": name}
        for suffix, namespace, metric, stat, whole in SERIES:
            where = {"InferenceComponentName": component} if component and suffix in INVOCATION_SERIES else dims
            out.append(metric_query(f"u{i}_{suffix}", namespace, metric, where, stat, span if whole else PERIOD))
    return out


def collect(
    client: Any,
    endpoint: str,
    model: str,
    variant_names: dict[str, str],
    gpus: int,
    window: float,
    end: float,
    component: str | None = None,
) -> list[VersionUsage]:
    """Each version's usage; `variant_names` maps versions to SageMaker variant names, `gpus` per instance,
    `component` names a scale-to-zero endpoint's inference component."""
    source = CloudWatchSource(client, endpoint, period=PERIOD)
    series = source.fetch(usage_queries(endpoint, variant_names, window, component), end - window, end)
    out = []
    for i, version in enumerate(sorted(variant_names)):

        def by_time(suffix: str, i: int = i) -> dict[Any, float]:
            ts, values = series.get(f"u{i}_{suffix}", ([], []))
            return dict(zip(ts, values, strict=False))

        def total(suffix: str, i: int = i) -> float | None:
            values = series.get(f"u{i}_{suffix}", ([], []))[1]
            return math.fsum(values) if values else None

        requests, latency, instances, gpu = by_time("req"), by_time("lat"), by_time("inst"), by_time("gpu")
        served = sorted(t for t, n in instances.items() if n > 0)
        notes = []
        if not served:
            notes.append(f"no {INSTANCE_NAMESPACE} GPUUtilization samples: instance time not measured")
        tokens = total("pt"), total("ct")
        if tokens == (None, None):
            notes.append(f"no {USAGE_NAMESPACE} token metrics: tokens not measured")
        p95 = series.get(f"u{i}_p95", ([], []))[1]
        share = {t: gpu[t] / (100.0 * max(1, gpus)) for t in served if t in gpu}
        busy = [share.get(t, 0.0) * instances[t] * PERIOD for t in served]
        out.append(
            VersionUsage(
                model=model,
                version=version,
                window_seconds=window,
                source=f"cloudwatch {endpoint}",
                requests=math.fsum(requests.values()),
                prompt_tokens=tokens[0],
                completion_tokens=tokens[1],
                replica_seconds=math.fsum(instances[t] * PERIOD for t in served) if served else None,
                busy_seconds=math.fsum(busy) if served and gpu else None,
                served_minutes=len(served),
                replicas=[instances[t] for t in served],
                concurrency=[requests.get(t, 0.0) * latency.get(t, 0.0) / 1e6 / PERIOD for t in served],
                p95_latency_s=p95[-1] / 1e6 if p95 else None,
                gpu_utilisation=math.fsum(share.values()) / len(share) if share else None,
                notes=notes,
            )
        )
    return out
