"""Measured usage of an EKS endpoint, from the cluster's Prometheus (kube-prometheus-stack).

Three sources, joined per model and version:
- the serving runtime's own `/metrics`, scraped by the `llmops-serving` ServiceMonitor, which
  labels every series with `model` (the Service's `app.kubernetes.io/name`), `version` (the pod's
  `llmops.io/version`), `namespace` and `pod` (components/aws/monitoring.py). What each runtime
  the EKS builder pins exports (vLLM v0.9.2, V1 engine: `vllm/v1/metrics/loggers.py`; TGI 3.3.4:
  the router's `metrics::` calls), names read in those sources:

  | series                | vLLM                                   | TGI                                   |
  |-----------------------|----------------------------------------|---------------------------------------|
  | answered requests     | `vllm:request_success_total`           | `tgi_request_success`                 |
  | prompt tokens         | `vllm:prompt_tokens_total`             | `tgi_request_input_length_sum`        |
  | completion tokens     | `vllm:generation_tokens_total`         | `tgi_request_generated_tokens_sum`    |
  | requests generating   | `vllm:num_requests_running`            | `tgi_batch_current_size`              |
  | requests queued       | `vllm:num_requests_waiting`            | `tgi_queue_size`                      |
  | latency histogram     | `vllm:e2e_request_latency_seconds`     | `tgi_request_duration`                |
  | refused at capacity   | none: vLLM queues past `--max-num-seqs`| `tgi_request_failure{err="overloaded"}`|

  TGI's histograms' `_sum` are token counts (monotonic, read as counters); its counters carry
  no `_total` suffix (metrics-exporter-prometheus).
- kube-state-metrics' `kube_deployment_status_replicas{namespace, deployment}`: the pods each
  version's Deployment (`workload_name`) holds, ready or still loading weights, which is what
  holds GPUs; a Pending pod counts too (it holds no node: an over-count while one cannot schedule).
- DCGM exporter's `DCGM_FI_DEV_GPU_UTIL{namespace, pod, gpu}` (percent per GPU), joined to a
  version through the runtime series of the same pod.

Per step (a minute): replicas = mean of the replica gauge; concurrency = mean requests in flight
(generating + queued) summed over the version's pods; busy = replica time with at least one
request generating (sampled every `SCRAPE` seconds). Totals over the window are exact counter
growth, as on the local target. A series absent for a version is unmeasured (None, with a note),
never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmops.experiments.prometheus import PrometheusSource
from llmops.observability import workload_name
from llmops.usage.data import VersionUsage
from llmops.usage.prometheus import STEP, p95_latency, per_step, present, totals

SCRAPE = 15.0  # seconds: the ServiceMonitors' scrape interval, the busy clock's resolution
REPLICAS = "kube_deployment_status_replicas"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"


@dataclass(frozen=True)
class RuntimeSeries:
    """The series one serving runtime exports, by what the report reads from them."""

    requests: str
    prompt_tokens: str
    completion_tokens: str
    running: str
    waiting: str
    latency_bucket: str
    shed: tuple[str, str] | None  # (counter, extra matcher) of requests refused at capacity


RUNTIMES = {
    "vllm": RuntimeSeries(
        requests="vllm:request_success_total",
        prompt_tokens="vllm:prompt_tokens_total",
        completion_tokens="vllm:generation_tokens_total",
        running="vllm:num_requests_running",
        waiting="vllm:num_requests_waiting",
        latency_bucket="vllm:e2e_request_latency_seconds_bucket",
        shed=None,
    ),
    "tgi": RuntimeSeries(
        requests="tgi_request_success",
        prompt_tokens="tgi_request_input_length_sum",
        completion_tokens="tgi_request_generated_tokens_sum",
        running="tgi_batch_current_size",
        waiting="tgi_queue_size",
        latency_bucket="tgi_request_duration_bucket",
        shed=("tgi_request_failure", 'err="overloaded"'),
    ),
}


def _in(namespace: str | None) -> str:
    return f'namespace="{namespace}",' if namespace else ""


def load_queries(series: RuntimeSeries, selector: str, step: float) -> tuple[str, str]:
    """(requests in flight, busy replica-seconds) per version per step."""
    r, w = f"{series.running}{{{selector}}}", f"{series.waiting}{{{selector}}}"
    running = f"sum by (version) (avg_over_time({r}[{step:g}s]))"
    waiting = f"sum by (version) (avg_over_time({w}[{step:g}s]))"
    in_flight = f"{running} + ({waiting} or {running} * 0)"
    busy = f"sum by (version) (avg_over_time(({r} > bool 0)[{step:g}s:{SCRAPE:g}s])) * {step:g}"
    return in_flight, busy


def gpu_query(series: RuntimeSeries, selector: str, namespace: str | None, window: float) -> str:
    """Mean DCGM GPU use (0..1) of each version's pods over the window, sample-weighted; a GPU
    belongs to the version whose runtime series share its (namespace, pod)."""
    w = f"{max(60, round(window))}s"
    pods = f"group by (namespace, pod, version) (last_over_time({series.running}{{{selector}}}[{w}]))"
    dcgm = f"{GPU_UTIL}{{{_in(namespace).rstrip(',')}}}"
    join = f"on (namespace, pod) group_left (version) {pods}"
    return (
        f"sum by (version) (sum_over_time({dcgm}[{w}]) * {join}) / "
        f"sum by (version) (count_over_time({dcgm}[{w}]) * {join}) / 100"
    )


def collect(
    source: PrometheusSource,
    model: str,
    runtime: str,
    versions: list[str],
    window: float,
    end: float,
    *,
    namespace: str | None = None,
    step: float = STEP,
) -> list[VersionUsage]:
    """Each version's usage over `window` seconds before `end` (the caller's clock); `namespace`:
    the serving namespace (None: any), `step`: seconds per sample of the per-minute series."""
    series = RUNTIMES[runtime]
    at = end + source.clock_offset()
    start = at - window
    sel = f'{_in(namespace)}model="{model}"'
    workloads = {workload_name(model, v): v for v in versions}
    deployments = f'{_in(namespace)}deployment=~"{"|".join(sorted(workloads))}"'

    def counter(metric: str, matcher: str = "") -> tuple[dict[str, float], set[str]]:
        full = f"{sel},{matcher}" if matcher else sel
        return totals(source, metric, full, window, at), present(source, metric, full, at, window)

    requests = counter(series.requests)[0]
    prompt, completion = counter(series.prompt_tokens), counter(series.completion_tokens)
    shed = counter(*series.shed)[0] if series.shed else {}
    scraped = present(source, series.running, sel, at, window)
    held = {
        workloads[d]: values
        for d, values in per_step(
            source, f"avg_over_time({REPLICAS}{{{deployments}}}[{step:g}s])", start, at, step, by="deployment"
        ).items()
        if d in workloads
    }
    in_flight_q, busy_q = load_queries(series, sel, step)
    in_flight, busy = per_step(source, in_flight_q, start, at, step), per_step(source, busy_q, start, at, step)
    p95 = p95_latency(source, series.latency_bucket, sel, window, at)
    gpu = {
        row.get("metric", {}).get("version", ""): float(row["value"][1])
        for row in source.query(gpu_query(series, sel, namespace, window), at)
        if row.get("value") and row["value"][1] not in ("NaN", "+Inf")
    }
    out = []
    for version in versions:
        served = sorted(ts for ts, n in held.get(version, {}).items() if n > 0)
        measured_load = version in scraped
        notes = []
        if version not in held:
            notes.append(f"no {REPLICAS} for deployment {workload_name(model, version)}: replica time not measured")
        if not measured_load:
            notes.append(f"no {series.running} from its pods (the llmops-serving scrape): load not measured")
        if version not in prompt[1] and version not in completion[1]:
            notes.append(f"no {series.prompt_tokens} or {series.completion_tokens}: tokens not measured")
        if served and version not in gpu:
            notes.append(f"no {GPU_UTIL} for its pods (is the DCGM exporter running?): GPU use not measured")
        load = in_flight.get(version, {})
        replicas = [held[version][ts] for ts in served]
        out.append(
            VersionUsage(
                model=model,
                version=version,
                window_seconds=window,
                source=f"prometheus {source.url}",
                requests=requests.get(version, 0.0),
                shed=shed.get(version, 0.0),
                prompt_tokens=prompt[0].get(version, 0.0) if version in prompt[1] else None,
                completion_tokens=completion[0].get(version, 0.0) if version in completion[1] else None,
                replica_seconds=math.fsum(n * step for n in replicas) if version in held else None,
                busy_seconds=math.fsum(busy.get(version, {}).get(ts, 0.0) for ts in served) if measured_load else None,
                served_minutes=round(len(served) * step / 60),
                concurrency=[max(0.0, load.get(ts, 0.0)) for ts in served] if measured_load else [],
                replicas=replicas,
                p95_latency_s=p95.get(version),
                gpu_utilisation=gpu.get(version),
                notes=notes,
            )
        )
    return out
