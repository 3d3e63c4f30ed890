"""Measured usage of the local target, from Prometheus (the front's cost counters).

Totals over the window are exact counter growth (the experiments' `counter_queries`:
end value minus start value, `increase()` only where a counter reset). Per-minute
series come from a range query at a 60 s step:

- replica time: `llmops_replica_up_seconds_total`, which the front adds to each health
  tick for every replica it holds (started, not parked); a minute with any is a minute served;
- concurrency: request-seconds completed in the minute / 60, the mean number of requests
  in flight (Little's law) from `llmops_request_duration_seconds_sum`;
- tokens: `llmops_prompt_tokens_total`, `llmops_completion_tokens_total`;
- busy time: `llmops_replica_busy_seconds_total` (a request in flight on the replica).
"""

from __future__ import annotations

from llmops.experiments.prometheus import GENERATION_ROUTES, PrometheusSource, counter_queries
from llmops.usage.data import VersionUsage

STEP = 60.0


def totals(
    source: PrometheusSource, metric: str, selector: str, window: float, at: float, by: str = "version"
) -> dict[str, float]:
    """Each group's exact counter growth over the window (counter_queries)."""
    q = counter_queries(f"{metric}{{{selector}}}", by, f"{max(60, round(window))}s")
    return {group: value for (group, _), value in source.counts(q, at).items()}


def present(
    source: PrometheusSource, metric: str, selector: str, at: float, window: float, by: str = "version"
) -> set[str]:
    """Groups with the series at all in the window (a counter at 0 is measured; absent is not)."""
    rows = source.query(f"count by ({by}) (last_over_time({metric}{{{selector}}}[{max(60, round(window))}s]))", at)
    return {row.get("metric", {}).get(by, "") for row in rows}


def per_step(
    source: PrometheusSource, promql: str, start: float, end: float, step: float = STEP, by: str = "version"
) -> dict[str, dict[float, float]]:
    """Each group's value at every step after `start` up to `end` (the step ending there)."""
    out: dict[str, dict[float, float]] = {}
    for row in source.query_range(promql, start + step, end, step):
        group = row.get("metric", {}).get(by, "")
        out[group] = {float(ts): float(v) for ts, v in row.get("values", [])}
    return out


def p95_latency(source: PrometheusSource, bucket: str, selector: str, window: float, at: float) -> dict[str, float]:
    """Each version's p95 request latency (seconds) over the window, from a histogram's buckets."""
    promql = (
        f"histogram_quantile(0.95, sum by (version, le) (increase({bucket}{{{selector}}}[{max(60, round(window))}s])))"
    )
    return {
        row.get("metric", {}).get("version", ""): float(row["value"][1])
        for row in source.query(promql, at)
        if row.get("value") and row["value"][1] not in ("NaN", "+Inf")
    }


def collect(source: PrometheusSource, model: str, versions: list[str], window: float, end: float) -> list[VersionUsage]:
    """Each version's usage over `window` seconds before `end` (on the caller's clock)."""
    at = end + source.clock_offset()
    start = at - window
    m = f'model="{model}"'
    gen = f"{m},route=~{GENERATION_ROUTES}"
    requests = totals(source, "llmops_requests_total", gen, window, at)
    shed = totals(source, "llmops_requests_total", f'{gen},code="429"', window, at)
    counters = {
        name: (totals(source, metric, m, window, at), present(source, metric, m, at, window))
        for name, metric in (
            ("prompt", "llmops_prompt_tokens_total"),
            ("completion", "llmops_completion_tokens_total"),
            ("up", "llmops_replica_up_seconds_total"),
            ("busy", "llmops_replica_busy_seconds_total"),
        )
    }
    held = per_step(source, f"sum by (version) (increase(llmops_replica_up_seconds_total{{{m}}}[1m]))", start, at)
    busy_minutes = per_step(
        source, f"sum by (version) (increase(llmops_request_duration_seconds_sum{{{gen}}}[1m])) / 60", start, at
    )
    p95 = p95_latency(source, "llmops_request_duration_seconds_bucket", gen, window, at)
    out = []
    for version in versions:

        def measured(name: str, version: str = version) -> float | None:
            grown, seen = counters[name]
            return grown.get(version, 0.0) if version in seen else None

        served = sorted(ts for ts, v in held.get(version, {}).items() if v > 0)
        load = busy_minutes.get(version, {})
        notes = []
        if measured("up") is None:
            notes.append("no replica time recorded: the front predates the cost counters, or nothing was served")
        out.append(
            VersionUsage(
                model=model,
                version=version,
                window_seconds=window,
                source=f"prometheus {source.url}",
                requests=requests.get(version, 0.0),
                shed=shed.get(version, 0.0),
                prompt_tokens=measured("prompt"),
                completion_tokens=measured("completion"),
                replica_seconds=measured("up"),
                busy_seconds=measured("busy"),
                served_minutes=len(served),
                concurrency=[max(0.0, load.get(ts, 0.0)) for ts in served],
                replicas=[held[version][ts] / STEP for ts in served],
                p95_latency_s=p95.get(version),
                notes=notes,
            )
        )
    return out
