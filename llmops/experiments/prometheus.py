"""Per-variant metrics of the local target from Prometheus' HTTP API.

Counts are exact: a counter's value at the end of the window minus its value at the
start (0 for a series born inside the window), summed by version. PromQL's
`increase()` would extrapolate to the window's edges and miss what a series counted
before its first scrape, which skews small counts and the sample-ratio check. Where a
counter reset inside the window (the front restarted), that version falls back to
`increase()`, which handles resets. The series are the front end's metrics contract
(`llmops.local.serve.Metrics`, and the feedback counters of
`llmops.local.experiment_routing`). Only generation routes count: `/v1/models` and
the like are not part of the experiment.

The window starts when the committed split was routed, not when it was committed: a
deploy, and a new replica's first health check, come after the commit, and counting
the old split's traffic would fail the sample-ratio check on every step. The front's
`llmops_route_weight` gauge says which split it routes; the window starts at the first
scrape that matched the registry after the last scrape that routed another split. A
blip (a committed version briefly unroutable, weights otherwise as committed) is not
another split: it stays inside the window, and the sample-ratio check sees what it cost.

Edges are read on Prometheus' clock. The commit date comes from the committer's clock
and `now` from the caller's; where either differs from the server's (a sandbox, a remote
Prometheus, a skewed laptop) by more than a scrape, the window is shifted by the
measured offset, so it neither starts after the traffic it should count nor counts
from before the split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from llmops.experiments.data import ExperimentData, Histogram, VariantData
from llmops.registry import Variant

MAX_POINTS = 10_000  # Prometheus refuses a range query of more than 11,000 points
CLOCK_TOLERANCE = 2.0  # seconds; one scrape interval of the local target
GENERATION_ROUTES = '"/v1/chat/completions|/v1/completions"'


class SourceError(Exception):
    """The metrics source could not be read; the message says which and why."""


def _window(seconds: float) -> str:
    # To the millisecond: the start value must be read at the scrape the window starts at, not up to
    # a second before it (where a counter could still be absent and count its whole value).
    return f"{max(1000, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class CounterQueries:
    delta: str  # end value - start value (0 when the series is born in the window)
    resets: str  # counter resets in the window, per group
    increase: str  # the fallback where a counter reset


def counter_queries(selector: str, by: str, window: str) -> CounterQueries:
    end = f"sum by ({by}) ({selector})"
    start = f"sum by ({by}) ({selector} offset {window})"
    return CounterQueries(
        delta=f"{end} - ({start} or {end} * 0)",
        resets=f"sum by ({by}) (resets({selector}[{window}]))",
        increase=f"sum by ({by}) (increase({selector}[{window}]))",
    )


def queries(model: str, window_seconds: float) -> dict[str, CounterQueries]:
    sel = f'model="{model}",route=~{GENERATION_ROUTES}'
    w = _window(window_seconds)
    return {
        "requests": counter_queries(f"llmops_requests_total{{{sel}}}", "version", w),
        "errors": counter_queries(f"llmops_request_errors_total{{{sel}}}", "version", w),
        "buckets": counter_queries(f"llmops_request_duration_seconds_bucket{{{sel}}}", "version, le", w),
        "feedback": counter_queries(f'llmops_feedback_total{{model="{model}"}}', "version", w),
        "positive": counter_queries(f'llmops_feedback_positive_total{{model="{model}"}}', "version", w),
    }


class PrometheusSource:
    def __init__(self, url: str, *, client: httpx.Client | None = None, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.client = client or httpx.Client(timeout=timeout)

    def query(self, promql: str, at: float) -> list[dict[str, Any]]:
        return self._get("query", promql, {"time": f"{at:.3f}"})

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._get("query_range", promql, {"start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})

    def _get(self, api: str, promql: str, params: dict[str, str]) -> list[dict[str, Any]]:
        try:
            r = self.client.get(f"{self.url}/api/v1/{api}", params={"query": promql, **params})
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

    def server_time(self) -> float:
        """Prometheus' own clock: an instant query with no time evaluates at the server's now."""
        result: list[Any] = self._get("query", "time()", {})  # a scalar: [timestamp, "value"]
        try:
            return float(result[0])
        except (IndexError, TypeError, ValueError):
            raise SourceError(f"Prometheus at {self.url} answered time() without a timestamp") from None

    def clock_offset(self) -> float:
        """The server's clock minus ours (0 within a scrape interval)."""
        before = time.time()
        server = self.server_time()
        offset = server - (before + time.time()) / 2
        return offset if abs(offset) > CLOCK_TOLERANCE else 0.0

    def routed_since(self, model: str, variants: Sequence[Variant], start: float, end: float) -> float | None:
        """When the front began routing the committed split: the first matching scrape after the
        last one that routed another split, no earlier than `start`; None if it never matched.
        `start` itself where the front reports no split (nothing to judge by)."""
        want = {v.version: float(v.weight) for v in variants if v.weight > 0}
        step = max(1.0, math.ceil((end - start) / MAX_POINTS))
        states = self._routed(model, start, end, step)
        if not states:
            return start
        since = _regime_start(states, want)
        if since is None or step == 1.0:
            return since
        # A coarse grid (a long window) places the change within one step: find the scrape.
        refined = _regime_start(self._routed(model, max(start, since - step), since, 1.0), want)
        return since if refined is None else refined

    def _routed(self, model: str, start: float, end: float, step: float) -> list[tuple[float, dict[str, float]]]:
        """(timestamp, {version: routed weight > 0}) per grid point, oldest first."""
        rows = self.query_range(f'llmops_route_weight{{model="{model}"}}', start, end, step)
        routed: dict[float, dict[str, float]] = {}
        for row in rows:
            version = row.get("metric", {}).get("version", "")
            for ts, value in row.get("values", []):
                weights = routed.setdefault(float(ts), {})
                if float(value) > 0:
                    weights[version] = float(value)
        return sorted(routed.items())

    def counts(self, q: CounterQueries, at: float) -> dict[tuple[str, str], float]:
        """(version, le) -> the counter's growth over the window ("" for le where not grouped by it)."""

        def rows(promql: str) -> dict[tuple[str, str], float]:
            out = {}
            for row in self.query(promql, at):
                labels = row.get("metric", {})
                out[(labels.get("version", ""), labels.get("le", ""))] = _value(row)
            return out

        values = rows(q.delta)
        reset = {version for (version, _), n in rows(q.resets).items() if n > 0}
        if reset:
            values.update({k: v for k, v in rows(q.increase).items() if k[0] in reset})
        return values

    def collect(
        self, model: str, environment: str, variants: Sequence[Variant], start: float, end: float
    ) -> ExperimentData:
        offset = self.clock_offset()
        since = self.routed_since(model, variants, start + offset, end + offset)
        if since is None:
            note = "the front does not route the committed split yet: nothing is counted"
            return ExperimentData(
                model,
                environment,
                end,
                end,
                [VariantData(v.version, v.weight) for v in variants],
                source=f"prometheus {self.url}",
                note=note,
            )
        at = end + offset  # the window's end on the server's clock; `since` is on it already
        q = queries(model, at - since)
        by_version: dict[str, dict[str, float]] = {}
        buckets: dict[str, dict[float, float]] = {}
        for key in ("requests", "errors", "feedback", "positive"):
            for (version, _), value in self.counts(q[key], at).items():
                by_version.setdefault(version, {})[key] = value
        for (version, le), value in self.counts(q["buckets"], at).items():
            if le:
                buckets.setdefault(version, {})[float(le)] = value
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
        # Reported on the caller's clock, as it gave the window.
        return ExperimentData(model, environment, since - offset, end, out, source=f"prometheus {self.url}")


def _regime_start(states: Sequence[tuple[float, dict[str, float]]], want: dict[str, float]) -> float | None:
    """The first state equal to `want` after the last state that routed another split. A state
    that routes a subset of `want` at its weights is a blip (a replica missed a health check),
    not another split; a grid point without series (the front restarting) is neither."""

    def other(weights: dict[str, float]) -> bool:
        return any(want.get(version) != weight for version, weight in weights.items())

    since: float | None = None
    for ts, weights in states:
        if other(weights):
            since = None
        elif weights == want and since is None:
            since = ts
    return since


def _value(row: dict[str, Any]) -> float:
    try:
        value = float(row["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0
