"""The front end's metrics contract (see llmops/observability.py for the rules that read it)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets from a tiny CPU model (tens of ms) to a large one under load (a minute).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The metrics contract of the front end, in its own registry (one per app)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llmops_requests", "Requests by route and status.", ["model", "version", "route", "code"], registry=r
        )
        self.errors = Counter(
            "llmops_request_errors", "Responses >= 500 or failed upstream.", ["model", "version", "route"], registry=r
        )
        self.duration = Histogram(
            "llmops_request_duration_seconds",
            "End-to-end request latency.",
            ["model", "version", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "llmops_time_to_first_token_seconds",
            "Time from request to the first generated token (streamed requests).",
            ["model", "version"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("llmops_generated_tokens", "Generated tokens.", ["model", "version"], registry=r)
        # The cost contract (llmops/usage): tokens served, and replica time held and busy, per version.
        self.prompt_tokens = Counter(
            "llmops_prompt_tokens", "Prompt tokens of answered requests.", ["model", "version"], registry=r
        )
        self.completion_tokens = Counter(
            "llmops_completion_tokens", "Completion tokens of answered requests.", ["model", "version"], registry=r
        )
        self.replica_up = Counter(
            "llmops_replica_up_seconds",
            "Seconds a replica process was held (started and not parked): the time a bill counts.",
            ["model", "version", "replica"],
            registry=r,
        )
        self.replica_busy = Counter(
            "llmops_replica_busy_seconds",
            "Seconds a replica had at least one request in flight (utilisation = busy / up).",
            ["model", "version", "replica"],
            registry=r,
        )
        self.parked = Gauge(
            "llmops_replicas_parked", "Replicas stopped by scale to zero, by version.", ["model", "version"], registry=r
        )
        self.cold_start = Histogram(
            "llmops_cold_start_seconds",
            "From a request finding every replica parked to the first replica healthy again.",
            ["model", "version"],
            buckets=(0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0),
            registry=r,
        )
        self.in_flight = Gauge("llmops_requests_in_flight", "Requests being served.", ["model"], registry=r)
        self.restarts = Counter(
            "llmops_replica_restarts",
            "Replicas the supervisor restarted after failed liveness probes.",
            ["model", "replica"],
            registry=r,
        )
        self.autoscale_blocked = Counter(
            "llmops_autoscale_blocked",
            "Scale-ups not taken because the machine had no room for another replica.",
            ["model", "version"],
            registry=r,
        )
        self.replicas = Gauge("llmops_replicas", "Replicas routed to, by version.", ["model", "version"], registry=r)
        # What an experiment's window starts from: the split as routed, not as committed
        # (a deploy and a new replica's first health check come after the commit).
        self.route_weight = Gauge(
            "llmops_route_weight",
            "A version's routing weight now: its registry weight while one of its replicas is routable, else 0.",
            ["model", "version"],
            registry=r,
        )
        self._weighted: set[tuple[str, str]] = set()
        self.gpu_memory = Gauge(
            "llmops_gpu_memory_utilization",
            "GPU memory used by a replica, fraction of its GPU (0 on CPU).",
            ["model", "replica"],
            registry=r,
        )

    def set_route_weights(self, model: str, weights: dict[str, int]) -> None:
        """Report the live split; versions switched away from stop being reported."""
        current = {(model, version) for version in weights}
        for gone in self._weighted - current:
            with contextlib.suppress(KeyError):
                self.route_weight.remove(*gone)
        for version, weight in weights.items():
            self.route_weight.labels(model, version).set(weight)
        self._weighted = current

    def declare(self, model: str, version: str, routes: tuple[str, ...]) -> None:
        """Create a served version's series at zero before its first request.

        Prometheus's rate() cannot see a series' birth: a burst that lands between two scrapes
        would otherwise read as no tokens, no latency and no time to first token at all.
        """
        for counter in (self.tokens, self.prompt_tokens, self.completion_tokens):
            counter.labels(model, version).inc(0)
        self.ttft.labels(model, version)
        for route in routes:
            self.requests.labels(model, version, route, "200").inc(0)
            self.errors.labels(model, version, route).inc(0)
            self.duration.labels(model, version, route)

    def observe(self, model: str, version: str, route: str, code: int, seconds: float) -> None:
        self.requests.labels(model, version, route, str(code)).inc()
        self.duration.labels(model, version, route).observe(seconds)
        if code >= 500:
            self.errors.labels(model, version, route).inc()


def nvidia_smi(query: str) -> str | None:
    """nvidia-smi's CSV answer to one `--query-...=fields` argument; None without NVIDIA GPUs."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        return subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def gpu_memory_by_pid() -> dict[int, float]:
    """Each GPU process's share of its GPU's memory, from nvidia-smi ({} without NVIDIA GPUs)."""
    totals = nvidia_smi("--query-gpu=uuid,memory.total")
    apps = nvidia_smi("--query-compute-apps=pid,gpu_uuid,used_memory")
    if totals is None or apps is None:
        return {}
    total = {u.strip(): float(m) for u, m in (line.split(",") for line in totals.splitlines() if "," in line)}
    out: dict[int, float] = {}
    for line in apps.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1] in total and total[parts[1]] > 0:
            out[int(parts[0])] = out.get(int(parts[0]), 0.0) + float(parts[2]) / total[parts[1]]
    return out
