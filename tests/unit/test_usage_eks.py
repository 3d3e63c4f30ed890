"""Measured usage of EKS endpoints: the PromQL against a real Prometheus, and the way to it.

Proves: against Debian's `prometheus` scraping a fixture exporter that serves vLLM's, TGI's,
kube-state-metrics' and DCGM's exposition text (tests/support/runtime_exporter.py, 20 minutes of
history compressed into 30 s), `llmops.usage.eks` reads per model and version the replicas held
per minute (a scale-out mid-window included), exact token and request counts, requests in flight,
busy share, p95 latency, TGI's refusals at capacity, and GPU use joined to a version through its
pods (another model's GPU does not leak in); a version without DCGM, without replica series, or
without runtime series says so and reports None, never 0; right-sizing proposes from those
series and refuses a version whose load was not measured. The EKS token is a presigned STS
GetCallerIdentity URL signed over `x-k8s-aws-id`, made by botocore with no network call;
the service-proxy path comes from the in-cluster URL.
Cannot prove: that a live cluster's runtimes export these exact series (their sources were read,
versions named in llmops/usage/eks.py), or that EKS accepts the token (AWS-side).
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
import yaml

from llmops.engine import pulumi_binary
from llmops.experiments.prometheus import PrometheusSource, SourceError
from llmops.observability import workload_name
from llmops.settings import StackSettings
from llmops.usage import eks
from llmops.usage.cluster_access import EksAuth, eks_token, proxy_path
from llmops.usage.data import VersionUsage
from llmops.usage.rightsize import propose
from tests.support.project import REPO
from tests.support.runtime_exporter import Exporter, History, Pod, scraping_prometheus
from tests.unit.test_cost_loop import PRICE, deployment

pytestmark = pytest.mark.unit

NS = "llmops-serving"
HISTORY_S, SPEED = 1200.0, 40.0  # 20 minutes in 30 s; a 0.5 s scrape is 20 s of history
WINDOW = 900.0
FOREVER = 1e9

PODS = [
    # chat v1: two pods all along (one busy, one idle), a third for the last 5 minutes
    Pod("vllm", "chat", "v1", "chat-v1-5d9c7b6f4-x1", 0, FOREVER, running=2, waiting=1, requests_per_s=0.5,
        prompt_per_s=50, completion_per_s=100, latency_s=1.2, gpu_util=80),
    Pod("vllm", "chat", "v1", "chat-v1-5d9c7b6f4-x2", 0, FOREVER, gpu_util=20),
    Pod("vllm", "chat", "v1", "chat-v1-5d9c7b6f4-x3", 900, FOREVER, running=1, requests_per_s=0.25,
        prompt_per_s=25, completion_per_s=50, latency_s=1.2, gpu_util=50),
    # chat v2: served, no DCGM series for its GPU
    Pod("vllm", "chat", "v2", "chat-v2-7f8b9c5d6-y1", 0, FOREVER, running=1, requests_per_s=0.1,
        prompt_per_s=10, completion_per_s=20, latency_s=0.6),
    Pod("tgi", "tgi-chat", "v1", "tgi-chat-v1-6c5b4a3d2-z1", 0, FOREVER, running=3, waiting=2, requests_per_s=1,
        prompt_per_s=100, completion_per_s=150, latency_s=2.2, overloaded_per_s=0.2, gpu_util=90),
    # still loading its weights: a replica held, no /metrics yet
    Pod("vllm", "loading", "v1", "loading-v1-8d7c6b5a4-w1", 0, FOREVER, scraped=False),
    # dev's EKS model (models/mistral-7b-instruct.yaml), for the installed CLI
    Pod("vllm", "mistral-7b-instruct", "v1", "mistral-7b-instruct-v1-6b5c4d3e2-m1", 0, FOREVER, running=1,
        requests_per_s=0.2, prompt_per_s=40, completion_per_s=60, latency_s=0.6, gpu_util=60),
    # another model's pod at 100 % GPU: must not count for chat
    Pod("vllm", "other", "v1", "other-v1-9e8d7c6b5-o1", 0, FOREVER, gpu_util=100),
]  # fmt: skip


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSource]:
    deployments = sorted({workload_name(p.model, p.version) for p in PODS})
    exporter = Exporter(PODS, History(HISTORY_S, SPEED), NS, deployments)
    with scraping_prometheus(exporter, tmp_path_factory.mktemp("prometheus")) as url:
        yield PrometheusSource(url)


def usage(source: PrometheusSource, model: str, runtime: str, versions: list[str]) -> dict[str, VersionUsage]:
    got = eks.collect(source, model, runtime, versions, WINDOW, time.time(), namespace=NS)
    return {u.version: u for u in got}


def test_vllm_replicas_tokens_load_and_gpu_per_version(prometheus: PrometheusSource) -> None:
    v1 = usage(prometheus, "chat", "vllm", ["v1", "v2", "v3"])["v1"]
    assert 14 <= v1.served_minutes <= 16
    # Two replicas, then three after the scale-out five minutes before the end.
    assert v1.replicas[0] == pytest.approx(2.0) and v1.replicas[-1] == pytest.approx(3.0)
    assert v1.replica_seconds == pytest.approx(2 * 900 + 300, rel=0.05)
    # Exact counter growth over the window, a pod born inside it counted from its first sample.
    assert v1.prompt_tokens == pytest.approx(50 * 900 + 25 * 300, rel=0.05)
    assert v1.completion_tokens == pytest.approx(100 * 900 + 50 * 300, rel=0.05)
    assert v1.requests == pytest.approx(0.5 * 900 + 0.25 * 300, rel=0.05)
    # In flight = generating + queued over the version's pods: 2 + 1 + 0, then + 1.
    assert v1.concurrency[0] == pytest.approx(3.0) and v1.concurrency[-1] == pytest.approx(4.0)
    # Busy: x1 all along, x3 for its 5 minutes, x2 never.
    assert v1.busy_seconds == pytest.approx(900 + 300, rel=0.06)
    assert v1.utilisation == pytest.approx(1200 / 2100, rel=0.08)
    # GPU samples of x1 (80 %), x2 (20 %), x3 (50 %), weighted by samples; other-v1's 100 % not joined.
    assert v1.gpu_utilisation == pytest.approx((80 * 900 + 20 * 900 + 50 * 300) / 2100 / 100, rel=0.05)
    assert v1.p95_latency_s is not None and 1.0 < v1.p95_latency_s <= 1.5  # every request 1.2 s
    assert v1.shed == 0.0 and v1.notes == []


def test_missing_series_say_so_and_are_never_zero(prometheus: PrometheusSource) -> None:
    got = usage(prometheus, "chat", "vllm", ["v1", "v2", "v3"])
    v2, v3 = got["v2"], got["v3"]
    assert v2.prompt_tokens == pytest.approx(10 * 900, rel=0.05) and v2.replicas[0] == pytest.approx(1.0)
    assert v2.gpu_utilisation is None and any("no DCGM_FI_DEV_GPU_UTIL" in n for n in v2.notes)
    # v3 is in the registry, and nothing in the cluster serves it.
    assert v3.replica_seconds is None and v3.tokens is None and v3.busy_seconds is None
    assert v3.served_minutes == 0 and v3.utilisation is None
    assert any("no kube_deployment_status_replicas for deployment chat-v3" in n for n in v3.notes)
    assert any("tokens not measured" in n for n in v3.notes)


def test_tgi_series_and_refusals_at_capacity(prometheus: PrometheusSource) -> None:
    v1 = usage(prometheus, "tgi-chat", "tgi", ["v1"])["v1"]
    assert v1.prompt_tokens == pytest.approx(100 * 900, rel=0.05)
    assert v1.completion_tokens == pytest.approx(150 * 900, rel=0.05)
    assert v1.requests == pytest.approx(900, rel=0.05) and v1.shed == pytest.approx(180, rel=0.05)
    assert v1.concurrency[0] == pytest.approx(5.0) and v1.utilisation == pytest.approx(1.0, rel=0.05)
    assert v1.p95_latency_s is not None and 2.0 < v1.p95_latency_s <= 2.5
    assert v1.gpu_utilisation == pytest.approx(0.9, rel=0.02)


def test_rightsizing_reads_the_eks_series_and_refuses_unmeasured_load(prometheus: PrometheusSource) -> None:
    settings = StackSettings(target="aws", environment="dev", default_endpoint_platform="eks")
    dep = deployment("dev", **{"deployments.dev": {"min_replicas": 3, "max_replicas": 3}})  # concurrency 4
    chat = list(usage(prometheus, "chat", "vllm", ["v1"]).values())
    thin = propose(dep, settings, chat, PRICE, None, window="15m", min_minutes=60)
    assert not thin.changed and "fewer than the minimum of 60" in thin.reasons[0]
    p = propose(dep, settings, chat, PRICE, None, window="15m", min_minutes=10)
    # p95 of 3..4 in flight x 1.3 headroom over 4 per replica: 2 replicas.
    assert p.evidence is not None and p.evidence.p95_concurrency == pytest.approx(4.0, abs=0.3)
    assert p.proposed == {"min_replicas": 2, "max_replicas": 2}
    loading = usage(prometheus, "loading", "vllm", ["v1"])["v1"]
    assert loading.replica_seconds == pytest.approx(900, rel=0.05) and loading.busy_seconds is None
    assert loading.concurrency == [] and loading.tokens is None
    blind = propose(dep, settings, [loading], PRICE, None, window="15m", min_minutes=1)
    assert not blind.changed and blind.reasons == ["no proposal: no load (requests in flight) recorded for v1"]


# --------------------------------------------------------------------------- reaching the cluster


def _sts() -> Any:
    return boto3.client("sts", region_name="eu-west-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")


def test_the_eks_token_is_a_presigned_get_caller_identity_naming_the_cluster() -> None:
    token = eks_token(_sts(), "llmops-dev-eks-1a2b3c")
    assert token.startswith("k8s-aws-v1.") and "=" not in token
    raw = token.removeprefix("k8s-aws-v1.")
    url = urlsplit(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.scheme == "https" and url.hostname == "sts.eu-west-1.amazonaws.com"
    assert query["Action"] == "GetCallerIdentity" and query["X-Amz-Expires"] == "60"
    assert query["X-Amz-SignedHeaders"].split(";") == ["host", "x-k8s-aws-id"]
    assert query["X-Amz-Credential"].startswith("AKIDEXAMPLE/") and len(query["X-Amz-Signature"]) == 64


def test_the_token_is_renewed_before_eks_stops_accepting_it() -> None:
    now = [0.0]
    auth = EksAuth(_sts(), "c", clock=lambda: now[0])
    first = next(auth.auth_flow(httpx.Request("GET", "https://x"))).headers["Authorization"]
    now[0] = 300.0
    assert next(auth.auth_flow(httpx.Request("GET", "https://x"))).headers["Authorization"] == first
    now[0] = 700.0
    renewed = next(auth.auth_flow(httpx.Request("GET", "https://x"))).headers["Authorization"]
    assert renewed.startswith("Bearer k8s-aws-v1.")


def test_the_proxy_path_comes_from_the_in_cluster_url() -> None:
    url = "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
    assert proxy_path(url) == "/api/v1/namespaces/monitoring/services/kube-prometheus-stack-prometheus:9090/proxy"
    with pytest.raises(SourceError, match="not an in-cluster Service URL"):
        proxy_path("http://127.0.0.1:9090")


# --------------------------------------------------------------------------- the installed commands

CLUSTER = "llmops-dev-eks-0a1b2c3"
PROXY = "/api/v1/namespaces/monitoring/services/kube-prometheus-stack-prometheus:9090/proxy"


class ApiServer:
    """A stand-in for the EKS API server's service proxy over TLS: it accepts only an EKS token for
    CLUSTER (a presigned GetCallerIdentity signed over x-k8s-aws-id), answers 403 as Kubernetes
    does when `forbid` is set, and forwards the proxy path to the real Prometheus."""

    def __init__(self, prometheus: str, tmp: Path) -> None:
        self.prometheus, self.forbid, self.seen = prometheus, False, []  # type: list[str]
        self.cert, self.key = tmp / "ca.pem", tmp / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip

    def answer(self, path: str, authorization: str) -> tuple[int, bytes]:
        def status(code: int, message: str) -> tuple[int, bytes]:
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
            return code, json.dumps(body).encode()

        token = authorization.removeprefix("Bearer k8s-aws-v1.")
        try:
            url = urlsplit(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
            query = parse_qs(url.query)
        except ValueError:
            return status(401, "Unauthorized")
        if token == authorization or "x-k8s-aws-id" not in query.get("X-Amz-SignedHeaders", [""])[0]:
            return status(401, "Unauthorized")
        self.seen.append(path)
        if self.forbid:
            return status(
                403,
                'services "kube-prometheus-stack-prometheus:9090" is forbidden: User "ci" cannot get resource '
                '"services/proxy" in API group "" in the namespace "monitoring"',
            )
        if not path.startswith(PROXY + "/api/v1/"):
            return status(404, "the server could not find the requested resource")
        r = httpx.get(self.prometheus + path.removeprefix(PROXY), timeout=30)
        return r.status_code, r.content

    @contextmanager
    def serving(self) -> Iterator[str]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code, body = api.answer(self.path, self.headers.get("Authorization", ""))
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.cert, self.key)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"https://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def dev_copy(
    prometheus: PrometheusSource, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, ApiServer, dict[str, str]]]:
    """A copy of the project whose `dev` stack (serving its EKS model only) has the outputs a deploy
    exports, in a file backend: the cluster's endpoint is the stand-in API server."""
    tmp = tmp_path_factory.mktemp("dev")
    root = tmp / "project"
    root.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", root)
    shutil.copytree(REPO / "models", root / "models", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "stacks", root / "stacks")
    stack_file = root / "stacks" / "Pulumi.dev.yaml"
    data = yaml.safe_load(stack_file.read_text())
    data.pop("secretsprovider")
    data["config"]["llmops:models"] = ["mistral-7b-instruct"]  # its SageMaker models would ask CloudWatch
    stack_file.write_text(yaml.safe_dump(data))
    (root / "bin").symlink_to(Path(pulumi_binary()).parent)
    api = ApiServer(prometheus.url, tmp)
    env = {
        "HOME": str(tmp),
        "PATH": "/usr/bin:/bin",
        "PULUMI_BACKEND_URL": f"file://{tmp / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": "test-only",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    (tmp / "state").mkdir()
    with api.serving() as endpoint:
        outputs = {
            "environment": "dev",
            "prometheusUrl": "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090",
            "cluster": {
                "name": CLUSTER,
                "endpoint": endpoint,
                "certificateAuthority": base64.b64encode(api.cert.read_bytes()).decode(),
                "servingNamespace": NS,
            },
        }
        stack = {"urn": "urn:pulumi:dev::llmops::pulumi:pulumi:Stack::llmops-dev", "custom": False,
                 "type": "pulumi:pulumi:Stack", "outputs": outputs}  # fmt: skip
        deployment_file = tmp / "deployment.json"
        manifest = {"time": "2026-12-07T00:00:00Z", "magic": "", "version": ""}
        deployment_file.write_text(
            json.dumps({"version": 3, "deployment": {"manifest": manifest, "resources": [stack]}})
        )
        pulumi = [str(root / "bin" / "pulumi"), "--non-interactive"]
        run_env = {**env, "PULUMI_HOME": str(tmp / "pulumi-home"), "PULUMI_SKIP_UPDATE_CHECK": "true"}
        for args in (
            ["stack", "init", "dev", "--secrets-provider", "passphrase"],
            ["stack", "import", "--stack", "dev", "--file", str(deployment_file)],
        ):
            subprocess.run([*pulumi, *args], cwd=root, env=run_env, check=True, capture_output=True, timeout=120)
        yield root, api, env


def _llmops(root: Path, env: dict[str, str], *args: str) -> Any:
    exe = Path(sys.executable).with_name("llmops")
    return subprocess.run([str(exe), *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_cost_measured_reads_an_eks_stack_through_the_api_server(dev_copy: Any) -> None:
    root, api, env = dev_copy
    api.forbid = False
    done = _llmops(root, env, "cost", "--measured", "--stack", "dev", "--window", "10m", "--json")
    assert done.returncode == 0, done.stderr
    (v1,) = json.loads(done.stdout)["versions"]
    assert (v1["model"], v1["version"], v1["replicas"]) == ("mistral-7b-instruct", "v1", 1.0)
    assert v1["prompt_tokens"] == pytest.approx(40 * 600, rel=0.05)
    assert v1["completion_tokens"] == pytest.approx(60 * 600, rel=0.05)
    assert v1["gpu_utilisation"] == pytest.approx(0.6, rel=0.02) and v1["utilisation"] == pytest.approx(1.0, rel=0.05)
    hours = v1["replica_hours"]
    assert v1["usd_per_million_tokens"] == pytest.approx(hours * v1["hourly_usd"] / (100 * 600) * 1e6, rel=0.06)
    assert v1["source"].endswith(PROXY) and v1["instance_type"].startswith("g")  # an EC2 node type
    assert api.seen and all(p.startswith(PROXY + "/api/v1/") for p in api.seen)
    table = _llmops(root, env, "cost", "--measured", "--stack", "dev", "--window", "10m")
    assert table.returncode == 0 and "mistral-7b-instruct/v1" in table.stdout and " 60.0%" in table.stdout


def test_rightsize_proposes_from_eks_series_and_a_refusal_is_one_located_line(dev_copy: Any) -> None:
    root, api, env = dev_copy
    api.forbid = False
    done = _llmops(root, env, "rightsize", "--stack", "dev", "--window", "10m", "--min-minutes", "5", "--json")
    assert done.returncode == 0, done.stderr
    (p,) = json.loads(done.stdout)["proposals"]
    # 1 in flight x 1.3 over 2 per replica (serving.concurrency): 1 replica, peak too.
    assert p["evidence"]["p95_concurrency"] == pytest.approx(1.0) and p["evidence"]["capacity"] == 2
    assert p["proposed"] == {"max_replicas": 1} and p["evidence"]["source"].endswith(PROXY)
    api.forbid = True
    refused = _llmops(root, env, "rightsize", "--stack", "dev", "--window", "10m")
    assert refused.returncode == 1 and refused.stdout == ""
    (line,) = refused.stderr.strip().splitlines()
    assert "the EKS API server refused the Prometheus query (403)" in line and "services/proxy" in line
    assert "llmops:usage-readers" in line
