"""A fixture exporter serving what an EKS cluster's scrape targets serve, and a real Prometheus scraping it.

Each pod serves its runtime's exposition text as the real server does (vLLM's prometheus_client
names and `model_name`/`engine` labels, TGI's metrics-exporter-prometheus names with no `_total`);
`/ksm` serves kube-state-metrics' Deployment replica gauges and `/dcgm` the DCGM exporter's GPU
use with its `namespace`/`pod` labels. Prometheus scrapes them with the labels the monitoring
stack's ServiceMonitors give (`model`, `version`, `namespace`, `pod` on runtime series; honour_labels
for kube-state-metrics and DCGM).

Time is compressed so a test sees a stretch of history in seconds: every sample carries an explicit
timestamp on a simulated clock that runs `speed` times faster than the real one and meets it when
the history ends, so one 0.5 s scrape is a 15-20 s scrape interval of history. Counters grow
linearly with simulated time while a pod is up; gauges hold their value.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

from llmops.observability import workload_name
from tests.support.prometheus import free_port

LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0)


@dataclass(frozen=True)
class Pod:
    """One serving pod: up from `start` to `stop` seconds into the history, at a steady load."""

    runtime: str  # vllm | tgi
    model: str
    version: str
    name: str
    start: float
    stop: float
    running: float = 0.0  # requests generating
    waiting: float = 0.0  # requests queued
    requests_per_s: float = 0.0
    prompt_per_s: float = 0.0
    completion_per_s: float = 0.0
    latency_s: float = 1.0  # every request takes this long
    overloaded_per_s: float = 0.0  # refused at capacity (TGI)
    gpu_util: float | None = None  # DCGM percent of its one GPU; None: DCGM has no series for it
    scraped: bool = True  # False: the runtime serves no /metrics yet (loading weights)


class History:
    """The simulated clock: `history_s` of history squeezed into `history_s / speed` real seconds."""

    def __init__(self, history_s: float, speed: float) -> None:
        self.history_s, self.speed = history_s, speed
        self.real_start = time.time()
        self.real_end = self.real_start + history_s / speed

    def now(self) -> float:
        """Simulated epoch seconds (never ahead of the real clock)."""
        real = time.time()
        return min(real, self.real_end - self.history_s + (real - self.real_start) * self.speed)

    def offset(self, sim: float) -> float:
        """Seconds into the history."""
        return sim - (self.real_end - self.history_s)


def _labels(**kv: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in kv.items()) + "}" if kv else ""


def _histogram(name: str, count: float, value: float, labels: dict[str, str], ts: int) -> list[str]:
    lines = [f"# TYPE {name} histogram"]
    for le in LATENCY_BUCKETS:
        lines.append(f"{name}_bucket{_labels(**labels, le=str(le))} {count if value <= le else 0.0} {ts}")
    lines.append(f"{name}_bucket{_labels(**labels, le='+Inf')} {count} {ts}")
    lines += [f"{name}_sum{_labels(**labels)} {count * value} {ts}", f"{name}_count{_labels(**labels)} {count} {ts}"]
    return lines


def runtime_text(pod: Pod, up_s: float, ts: int) -> str:
    """The pod's /metrics after `up_s` seconds up, every sample at `ts` (ms)."""
    done = pod.requests_per_s * up_s
    if pod.runtime == "vllm":
        lab = {"model_name": pod.model, "engine": "0"}
        lines = [
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{_labels(**lab)} {pod.running} {ts}",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{_labels(**lab)} {pod.waiting} {ts}",
            "# TYPE vllm:prompt_tokens counter",
            f"vllm:prompt_tokens_total{_labels(**lab)} {pod.prompt_per_s * up_s} {ts}",
            "# TYPE vllm:generation_tokens counter",
            f"vllm:generation_tokens_total{_labels(**lab)} {pod.completion_per_s * up_s} {ts}",
            "# TYPE vllm:request_success counter",
            f"vllm:request_success_total{_labels(**lab, finished_reason='stop')} {done} {ts}",
            f"vllm:request_success_total{_labels(**lab, finished_reason='length')} 0.0 {ts}",
            *_histogram("vllm:e2e_request_latency_seconds", done, pod.latency_s, lab, ts),
        ]
    else:
        lines = [
            "# TYPE tgi_batch_current_size gauge",
            f"tgi_batch_current_size {pod.running} {ts}",
            "# TYPE tgi_queue_size gauge",
            f"tgi_queue_size {pod.waiting} {ts}",
            "# TYPE tgi_request_count counter",
            f"tgi_request_count {done + pod.overloaded_per_s * up_s} {ts}",
            "# TYPE tgi_request_success counter",
            f"tgi_request_success{_labels(stop_reason='eos_token', kind='chat')} {done} {ts}",
            *_histogram("tgi_request_duration", done, pod.latency_s, {}, ts),
            f"tgi_request_input_length_sum {pod.prompt_per_s * up_s} {ts}",
            f"tgi_request_input_length_count {done} {ts}",
            f"tgi_request_generated_tokens_sum {pod.completion_per_s * up_s} {ts}",
            f"tgi_request_generated_tokens_count {done} {ts}",
        ]
        if pod.overloaded_per_s:
            lines += [
                "# TYPE tgi_request_failure counter",
                f"tgi_request_failure{_labels(err='overloaded')} {pod.overloaded_per_s * up_s} {ts}",
            ]
    return "\n".join(lines) + "\n"


class Exporter:
    """Serves /pods/<name>, /ksm and /dcgm for `pods` on `history`'s clock."""

    def __init__(self, pods: list[Pod], history: History, namespace: str, deployments: list[str]) -> None:
        self.pods, self.history, self.namespace = pods, history, namespace
        self.deployments = deployments  # the workloads kube-state-metrics reports (pods or not)
        self.port = free_port()

    def body(self, path: str) -> str:
        sim = self.history.now()
        at, ts = self.history.offset(sim), int(sim * 1000)
        up = [p for p in self.pods if p.start <= at < p.stop]
        if path.startswith("/pods/"):
            pod = next((p for p in up if p.name == path.removeprefix("/pods/") and p.scraped), None)
            return runtime_text(pod, at - pod.start, ts) if pod else ""
        if path == "/ksm":
            lines = ["# TYPE kube_deployment_status_replicas gauge"]
            for d in self.deployments:
                n = sum(1 for p in up if workload_name(p.model, p.version) == d)
                lines.append(
                    f"kube_deployment_status_replicas{_labels(namespace=self.namespace, deployment=d)} {n} {ts}"
                )
            return "\n".join(lines) + "\n"
        if path == "/dcgm":
            lines = ["# TYPE DCGM_FI_DEV_GPU_UTIL gauge"]
            for i, p in enumerate(q for q in up if q.gpu_util is not None):
                lab = _labels(gpu="0", UUID=f"GPU-{i}", Hostname=f"node-{i}", container="server",
                              namespace=self.namespace, pod=p.name)  # fmt: skip
                lines.append(f"DCGM_FI_DEV_GPU_UTIL{lab} {p.gpu_util} {ts}")
            return "\n".join(lines) + "\n"
        raise KeyError(path)

    @contextmanager
    def serving(self) -> Iterator[None]:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    data = exporter.body(self.path).encode()
                except KeyError:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()

    def scrape_config(self, interval: str) -> dict[str, object]:
        target = [f"127.0.0.1:{self.port}"]
        runtime = [
            {
                "targets": target,
                "labels": {
                    "__metrics_path__": f"/pods/{p.name}",
                    "namespace": self.namespace,
                    "pod": p.name,
                    "model": p.model,  # the llmops-serving ServiceMonitor's relabelings
                    "version": p.version,
                },
            }
            for p in self.pods
        ]
        jobs = [
            {"job_name": "llmops-serving", "static_configs": runtime},
            {"job_name": "kube-state-metrics", "honor_labels": True, "metrics_path": "/ksm",
             "static_configs": [{"targets": target}]},
            {"job_name": "dcgm-exporter", "honor_labels": True, "metrics_path": "/dcgm",
             "static_configs": [{"targets": target}]},
        ]  # fmt: skip
        return {"global": {"scrape_interval": interval, "scrape_timeout": interval}, "scrape_configs": jobs}


@contextmanager
def scraping_prometheus(exporter: Exporter, tmp: Path, interval: str = "500ms") -> Iterator[str]:
    """A real Prometheus scraping `exporter`; yields its URL once the history has been scraped."""
    assert shutil.which("prometheus"), "needs Debian's prometheus: run `make setup`"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(exporter.scrape_config(interval)))
    port = free_port()
    with exporter.serving():
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "prometheus.log").open("w"),
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait = exporter.history.real_end - time.time() + 3.0  # the history, then two more scrapes
            time.sleep(max(0.0, wait))
            assert httpx.get(f"{url}/-/ready", timeout=5).status_code == 200, "prometheus is not ready"
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)
