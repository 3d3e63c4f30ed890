"""The cost loop on the real local stack: measured $/1M tokens, right-sizing, scale to zero.

One module-scoped throwaway stack (a copy of the project, its own backend, ports and
state) serves two models from an initialised checkpoint (no training run):
- tiny-chat with 3 replicas, given light generated load;
- tiny-idle (the same weights under another name) with one replica and
  `scale_to_zero: {idle_seconds: 20}`, given no load until its test;
- tiny-hot (the same weights) with one replica taking one request at a time, given more
  concurrent clients than that for over two minutes.
In file order:
1. `llmops cost --measured --json` (the installed console script, in a clean
   environment) gives tiny-chat v1 tokens, replica hours and a $/1M tokens above zero,
   read from the stack's real Prometheus.
2. `llmops rightsize --json` proposes fewer replicas for over-provisioned tiny-chat, with
   the evidence; `--write` edits the registry so that validation passes, and the measured
   cost's estimate then counts the proposed replicas.
3. `llmops rightsize --json` proposes more replicas for tiny-hot, loaded beyond its capacity,
   with the measured p95 concurrency above what one replica carries.
4. tiny-idle holds no replica process after its idle time; `preview --refresh
   --expect-no-changes` reads that as the state wanted (no drift); its next requests are
   answered after a cold start with none failed.
Cannot prove: the aws target (CloudWatch is covered by Stubber tests), or GPU utilisation.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from components.local.process import ProcessRef, is_running
from llmops.local.serving.supervisor import read_pid_file
from llmops.local.train import initialised_checkpoint
from llmops.registry import SCHEMA_HEADER
from tests.support.project import REPO, Project, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1200)]

BUSY, IDLE, HOT = "tiny-chat", "tiny-idle", "tiny-hot"
MODEL_DIR = "fixtures/tiny-chat-model"
IDLE_SECONDS = 20
LOAD_REQUESTS = 90
HOT_CLIENTS, HOT_SECONDS = 3, 150  # one request in flight per replica (+1 queued): the rest wait or are shed


@dataclass
class CostStack:
    project: Project
    name: str
    urls: dict[str, str]
    prometheus: str

    def llmops(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The console script as a user runs it: a clean environment, the copy as the root."""
        env = {k: v for k, v in self.project.env.items() if k in ("HOME", "PATH", "PULUMI_HOME", "PULUMI_BACKEND_URL")}
        env |= {"LLMOPS_ROOT": str(self.project.root), "PULUMI_CONFIG_PASSPHRASE": "throwaway-test-passphrase"}
        exe = self.project.root / ".venv" / "bin" / "llmops"
        return subprocess.run(
            [str(exe), *args], cwd=self.project.root, env=env, capture_output=True, text=True, timeout=300
        )

    def json(self, *args: str) -> dict[str, Any]:
        result = self.llmops(*args, "--json", "--prometheus-url", self.prometheus)
        assert result.returncode == 0, result.stderr[-3000:]
        return dict(json.loads(result.stdout))

    def table(self) -> str:
        result = self.llmops(
            "cost", "--measured", "--stack", self.name, "--window", "15m", "--prometheus-url", self.prometheus
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def measured(self, model: str) -> dict[str, Any]:
        report = self.json("cost", "--measured", "--stack", self.name, "--window", "15m")
        return next(v for v in report["versions"] if v["model"] == model and v["version"] == "v1")

    def replica_records(self, model: str) -> list[dict[str, Any]]:
        state = json.loads(self.project.pulumi("stack", "export", stack=self.name).stdout)
        return [
            r
            for res in state["deployment"]["resources"]
            if res["type"] == "pulumi-python:dynamic/local:ReplicaSet" and res["outputs"].get("model") == model
            for r in res["outputs"].get("replicas") or []
        ]


def _serve_fixture(entry: dict[str, Any]) -> None:
    entry["versions"] = {"v1": {"local": MODEL_DIR}}  # weights are declared per version
    entry.pop("training", None)
    entry["serving"]["max_new_tokens"] = 4
    entry["serving"]["variants"] = [{"version": "v1", "weight": 100}]
    entry["compliance"]["evaluation"] = []  # an untrained checkpoint fails every quality gate
    entry["monitoring"].pop("drift", None)  # fewer processes: drift has its own engine tests
    entry["monitoring"]["capture"] = {"enabled": False}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CostStack]:
    project = copy_project(tmp_path_factory.mktemp("cost-loop") / "project", REPO)
    initialised_checkpoint(project.root, project.root / MODEL_DIR)

    def busy(entry: dict[str, Any]) -> None:
        _serve_fixture(entry)
        entry["serving"]["min_replicas"] = entry["serving"]["max_replicas"] = 3

    project.edit_model(BUSY, busy)
    for model, serving in (
        (IDLE, {"scale_to_zero": {"idle_seconds": IDLE_SECONDS, "cold_start_wait_seconds": 120}}),
        (HOT, {"concurrency": 1}),
    ):
        copy = yaml.safe_load((project.root / "models" / f"{BUSY}.yaml").read_text())
        copy["name"] = model
        copy["compliance"]["model_card"] = f"docs/model-cards/{model}.md"
        copy["serving"] |= {"min_replicas": 1, "max_replicas": 1, **serving}
        (project.root / "models" / f"{model}.yaml").write_text(
            f"{SCHEMA_HEADER}\n{yaml.safe_dump(copy, sort_keys=False)}"
        )
    name = project.local_stack("cost-loop", healthTimeoutSeconds=180)
    try:
        project.pulumi("up", "--yes", "--skip-preview", stack=name)
        outputs = json.loads(project.pulumi("stack", "output", "--json", stack=name).stdout)
        urls = {m: outputs["endpoints"][m]["url"] for m in (BUSY, IDLE, HOT)}
        yield CostStack(project, name, urls, outputs["prometheusUrl"])
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", stack=name, check=False)
        project.pulumi("stack", "rm", "--yes", "--force", stack=name, check=False)


def _chat(http: httpx.Client, url: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
    return http.post(f"{url}/v1/chat/completions", json=body, timeout=180)


def _scraped(stack: CostStack, promql: str) -> float:
    body = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": promql}, timeout=10).json()
    rows = body["data"]["result"]
    return float(rows[0]["value"][1]) if rows else 0.0


def test_measured_cost_gives_dollars_per_million_tokens_after_load(stack: CostStack) -> None:
    with httpx.Client() as http:
        codes = [_chat(http, stack.urls[BUSY], BUSY).status_code for _ in range(LOAD_REQUESTS)]
    assert codes == [200] * LOAD_REQUESTS
    front = httpx.get(f"{stack.urls[BUSY]}/metrics", timeout=10).text
    deadline = time.monotonic() + 60
    query = f'sum(llmops_completion_tokens_total{{model="{BUSY}"}})'
    expected = sum(
        float(line.rsplit(" ", 1)[1])
        for line in front.splitlines()
        if line.startswith("llmops_completion_tokens_total{")
    )
    while _scraped(stack, query) < expected and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(65)  # one more whole minute of replica time, so the window holds at least two served minutes

    row = stack.measured(BUSY)
    assert row["completion_tokens"] >= expected > 0 and row["prompt_tokens"] > 0, row
    assert row["replica_hours"] > 0 and row["usd_per_million_tokens"] > 0, row
    # Three replicas held; over the two or three served minutes of a fresh stack the first is partial, so the
    # column reads between 1.5 and 3 here (measured 1.8, 2.1, 2.6): more than one, not a precise three.
    assert 1.0 < row["replicas"] <= 3.5, row
    assert 0 < row["utilisation"] < 0.5, row  # one client at a time keeps at most one replica busy
    assert row["estimate"]["replicas"] == 3 and row["instance_type"].startswith("ml."), row
    table = stack.table()
    assert f"{BUSY}/v1" in table
    print(f"\nbefore the proposal:\n{table}")


def test_rightsize_proposes_fewer_replicas_for_the_over_provisioned_model(stack: CostStack) -> None:
    args = ("rightsize", "--stack", stack.name, "--window", "15m", "--min-minutes", "2")
    thin = stack.json("rightsize", "--stack", stack.name, "--window", "15m", "--min-minutes", "600")
    assert all(not p["changed"] and "fewer than the minimum of 600" in p["reasons"][0] for p in thin["proposals"])

    proposals = {p["model"]: p for p in stack.json(*args)["proposals"]}
    busy = proposals[BUSY]
    assert busy["changed"] and busy["current"]["min_replicas"] == 3, busy
    assert busy["proposed"]["min_replicas"] == 1 and busy["proposed"]["max_replicas"] == 1, busy
    assert busy["evidence"]["capacity"] == 16 and busy["evidence"]["p95_concurrency"] < 1, busy
    assert busy["monthly_saving_usd"] > 0

    registry_file = stack.project.root / "models" / f"{BUSY}.yaml"
    # --write edits every model with a proposal (tiny-hot, not loaded yet, is idle): all are restored below.
    before = {m: (stack.project.root / "models" / f"{m}.yaml").read_text() for m in (BUSY, IDLE, HOT)}
    written = stack.llmops(*args, "--write", "--prometheus-url", stack.prometheus)
    assert written.returncode == 0, written.stderr
    entry = yaml.safe_load(registry_file.read_text())
    assert entry["deployments"]["local"] == {"min_replicas": 1, "max_replicas": 1}
    assert stack.llmops("registry", "validate").returncode == 0
    print(f"\nafter the proposal (estimate at the proposed replicas):\n{stack.table()}")
    assert stack.measured(BUSY)["estimate"]["replicas"] == 1
    for m, text in before.items():  # not deployed: a later test's preview compares with the stack as it runs
        (stack.project.root / "models" / f"{m}.yaml").write_text(text)


def test_rightsize_proposes_more_replicas_for_the_model_loaded_beyond_its_capacity(stack: CostStack) -> None:
    codes: list[int] = []
    stop = time.monotonic() + HOT_SECONDS

    def client() -> None:
        with httpx.Client() as http:
            while time.monotonic() < stop:
                code = _chat(http, stack.urls[HOT], HOT).status_code
                codes.append(code)
                if code == 429:  # shed at once with Retry-After: come back shortly, as a client would
                    time.sleep(0.2)

    clients = [threading.Thread(target=client) for _ in range(HOT_CLIENTS)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    assert codes.count(200) > 0 and set(codes) <= {200, 429}, sorted(set(codes))
    query = f'sum(llmops_requests_total{{model="{HOT}"}})'
    deadline = time.monotonic() + 60
    while _scraped(stack, query) < len(codes) and time.monotonic() < deadline:
        time.sleep(1)

    args = ("rightsize", "--stack", stack.name, "--window", "15m", "--min-minutes", "2")
    hot = next(p for p in stack.json(*args)["proposals"] if p["model"] == HOT)
    evidence = hot["evidence"]
    assert hot["changed"] and hot["current"]["min_replicas"] == 1, hot
    assert evidence["p95_concurrency"] > evidence["capacity"], hot  # more in flight than one replica carries
    assert hot["proposed"]["min_replicas"] > 1 and hot["proposed"]["max_replicas"] >= hot["proposed"]["min_replicas"]
    print(f"\nloaded beyond capacity ({codes.count(200)} answered, {codes.count(429)} shed): {hot['proposed']}, "
          f"p95 concurrency {evidence['p95_concurrency']:.2f} vs capacity {evidence['capacity']:.2f}")  # fmt: skip


def test_an_idle_model_scales_to_zero_and_answers_after_a_cold_start(stack: CostStack) -> None:
    records = stack.replica_records(IDLE)
    assert len(records) == 1

    def process() -> ProcessRef | None:
        live = read_pid_file(Path(records[0]["launch"]["pid_file"]))
        return ProcessRef(live.pid, live.started) if live else None

    first = process()
    deadline = time.monotonic() + IDLE_SECONDS + 60
    while first is not None and is_running(first) and time.monotonic() < deadline:
        time.sleep(1)
    assert first is not None and not is_running(first), "the idle replica still runs"
    health = httpx.get(f"{stack.urls[IDLE]}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "idle"
    # Parked is the state wanted: a refresh reads it as such, and nothing would change.
    stack.project.pulumi("preview", "--refresh", "--expect-no-changes", stack=stack.name)

    results: list[int] = []
    began = time.perf_counter()

    def one() -> None:
        with httpx.Client() as http:
            results.append(_chat(http, stack.urls[IDLE], IDLE).status_code)

    clients = [threading.Thread(target=one) for _ in range(3)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    waited = time.perf_counter() - began
    assert results == [200, 200, 200]
    woken = process()
    assert woken is not None and woken != first and is_running(woken)
    metrics = httpx.get(f"{stack.urls[IDLE]}/metrics", timeout=10).text
    cold = [line for line in metrics.splitlines() if line.startswith("llmops_cold_start_seconds_sum{")]
    assert cold, "no cold start recorded"
    print(f"\ncold start: {float(cold[0].rsplit(' ', 1)[1]):.2f} s to healthy; first answers after {waited:.2f} s")
