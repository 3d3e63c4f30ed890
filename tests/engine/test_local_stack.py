"""The local target's endpoint and monitoring, through the real engine, on one throwaway stack.

One module-scoped deployment (a copy of the project, its own backend, ports and
state folder); each test builds on the state the previous one left, in file order:

1. `up` serves: a chat completion returns generated text under the serving name
   (also streamed), the front's /metrics counts it, Prometheus scrapes the front (target up, series
   queryable).
2. A version bump while a client sends requests without pause: no request fails,
   the new version answers afterwards, the old replicas are gone.
3. A broken new version (a path with no model): `up` fails with the replica's log
   tail, the running version keeps answering, and `up` after reverting succeeds.
4. A replica killed behind the engine's back: the front's supervisor restarts it on
   its port without an operator; `refresh` then reads the restarted process (its
   pid file) as running, and `preview --expect-no-changes` is clean.
5. An SLO far below the measured latency: Prometheus fires LLMOpsLatencyP95High.
6. `destroy`: no process and no port of the stack is left.

The model is a randomly initialised checkpoint from the project's trainer (one
step at a negligible learning rate: seconds, and it never stops early), served
from a path in the copy, so these tests do not depend on a full training run
(the training job has its own engine tests).

Cannot prove: GPU serving, or behaviour under another stack's load on the same
ports (each stack has its own range).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from components.local.process import ProcessRef, is_running, port_free
from llmops.datasets.drift import DESCRIPTORS
from llmops.local.serving.supervisor import read_pid_file
from llmops.local.train import initialised_checkpoint
from tests.support import browser
from tests.support.project import REPO, Project, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]

MODEL = "tiny-chat"
MODEL_DIR = "fixtures/tiny-chat-model"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 6}


@dataclass
class Stack:
    project: Project
    name: str
    state: Path
    url: str = ""
    prometheus: str = ""
    dashboard: str = ""
    seen: dict[str, Any] = field(default_factory=dict)  # pids/ports observed along the way, for the destroy check

    def up(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.project.pulumi("up", "--yes", "--skip-preview", stack=self.name, check=check)

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.project.pulumi("stack", "output", "--json", stack=self.name).stdout))

    def resources(self, kind: str) -> list[dict[str, Any]]:
        """Outputs of this stack's dynamic resources of one kind (ReplicaSet, Frontend, Prometheus)."""
        state = json.loads(self.project.pulumi("stack", "export", stack=self.name).stdout)
        return [
            r.get("outputs", {})
            for r in state["deployment"].get("resources", [])
            if r["type"] == f"pulumi-python:dynamic/local:{kind}"
        ]

    def replicas(self) -> list[dict[str, Any]]:
        return [r for rs in self.resources("ReplicaSet") for r in rs.get("replicas") or []]

    def remember(self) -> None:
        for r in self.replicas():
            live = read_pid_file(Path(r["launch"]["pid_file"]))  # the supervisor may have restarted it
            self.seen.setdefault("procs", []).append(
                ProcessRef(live.pid, live.started) if live else ProcessRef.from_dict(r)
            )
            self.seen.setdefault("ports", set()).add(int(r["port"]))
        for kind in ("Frontend", "Prometheus", "Dashboard"):
            for out in self.resources(kind):
                self.seen.setdefault("procs", []).append(ProcessRef.from_dict(out))
                self.seen.setdefault("ports", set()).add(int(out["port"]))

    def set_variants(self, variants: list[dict[str, Any]]) -> None:
        self.project.edit_model(MODEL, lambda d: d["serving"].__setitem__("variants", variants))

    def chat(self, client: httpx.Client | None = None) -> httpx.Response:
        return (client or httpx).post(f"{self.url}/v1/chat/completions", json=CHAT, timeout=60)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60, interval: float = 1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    project = copy_project(tmp_path_factory.mktemp("local-stack") / "project", REPO)
    initialised_checkpoint(project.root, project.root / MODEL_DIR)

    def serve_fixture(entry: dict[str, Any]) -> None:
        # v1 and v2 are the same checkpoint under two names; v3's folder does not exist.
        entry["versions"] = {
            "v1": {"local": MODEL_DIR},
            "v2": {"local": MODEL_DIR},
            "v3": {"local": "fixtures/no-model-here"},
        }
        entry.pop("training", None)
        entry["serving"]["max_new_tokens"] = 8
        entry["serving"]["variants"] = [{"version": "v1", "weight": 100}]
        # An untrained checkpoint fails every quality gate: serving is what these tests judge
        # (the Evaluation has its own engine tests, tests/engine/test_evaluation.py).
        entry["compliance"]["evaluation"] = []

    project.edit_model(MODEL, serve_fixture)
    name = project.local_stack("serving-engine", healthTimeoutSeconds=120)
    settings = yaml.safe_load((project.root / "stacks" / f"Pulumi.{name}.yaml").read_text())
    s = Stack(project, name, project.root / settings["config"]["llmops:local"]["stateDir"])
    try:
        s.up()
        outputs = s.outputs()
        s.url, s.prometheus, s.dashboard = (
            outputs["endpoints"][MODEL]["url"],
            outputs["prometheusUrl"],
            outputs["dashboardUrl"],
        )
        s.remember()
        yield s
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", stack=name, check=False)
        project.pulumi("stack", "rm", "--yes", "--force", stack=name, check=False)


def test_dashboard_before_any_traffic_draws_measured_zeros_and_no_latency(stack: Stack) -> None:
    wait_for("prometheus has scraped the front", lambda: _query(stack, f'llmops_replicas{{model="{MODEL}"}}'), 60)
    zero_rate = f'rate(llmops_requests_total{{model="{MODEL}"}}[30s])'
    wait_for("two scrapes of the zero counters", lambda: _query(stack, zero_rate))
    page = browser.load(f"{stack.dashboard}/models/{MODEL}", screenshot="dashboard-model-no-traffic")
    assert page.errors == [], page.errors
    for key in ("latency", "ttft"):  # no request, no latency: said, never drawn as 0 s
        assert page.panels[key]["drawn"] == 0 and "no data" in page.panels[key]["text"], page.panels[key]
    for key in ("requests", "tokens", "replicas"):  # the front counted: zero requests is a measurement
        assert page.panels[key]["drawn"] >= 1, page.panels[key]
    overview = browser.load(stack.dashboard)
    assert overview.errors == [], overview.errors
    (row,) = [line for line in overview.text.splitlines() if line.startswith(f"{MODEL}\t")]
    traffic, errors, p50, p95 = row.split("\t")[3:7]
    assert float(traffic) == 0 and p50 == p95 == "no data", (row, errors)


def test_up_serves_a_chat_completion_counted_in_metrics_and_scraped_by_prometheus(stack: Stack) -> None:
    r = stack.chat()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == MODEL
    assert r.headers["x-llmops-version"] == "v1"
    assert body["choices"][0]["message"]["content"], "no generated text"
    assert 1 <= body["usage"]["completion_tokens"] <= 6

    with httpx.stream("POST", f"{stack.url}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=60) as sse:
        events = [line for line in sse.iter_lines() if line.startswith("data: ")]
    assert sse.status_code == 200 and events[-1] == "data: [DONE]"
    assert any(json.loads(e[6:])["choices"][0].get("delta", {}).get("content") for e in events[:-1])

    models = httpx.get(f"{stack.url}/v1/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [MODEL]
    metrics = httpx.get(f"{stack.url}/metrics", timeout=10).text
    assert f'llmops_requests_total{{code="200",model="{MODEL}",route="/v1/chat/completions",version="v1"}}' in metrics
    assert f'llmops_generated_tokens_total{{model="{MODEL}",version="v1"}}' in metrics
    assert f'llmops_time_to_first_token_seconds_count{{model="{MODEL}",version="v1"}} 1.0' in metrics

    def target_up() -> bool:
        targets = httpx.get(f"{stack.prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return any(t["labels"].get("endpoint") == MODEL and t["health"] == "up" for t in targets)

    wait_for("prometheus scrapes the front end", target_up, timeout=60)

    def scraped_requests() -> float:
        query = f'sum(llmops_requests_total{{model="{MODEL}",route="/v1/chat/completions"}})'
        result = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": query}, timeout=10).json()
        return float(result["data"]["result"][0]["value"][1]) if result["data"]["result"] else 0.0

    assert wait_for("the request is visible in prometheus", scraped_requests, timeout=60) >= 1


@contextlib.contextmanager
def _traffic(stack: Stack) -> Iterator[None]:
    """A client sending chat completions without pause while the block runs."""
    done = threading.Event()

    def client() -> None:
        with httpx.Client() as http:
            while not done.is_set():
                stack.chat(http)

    worker = threading.Thread(target=client, daemon=True)
    worker.start()
    try:
        yield
    finally:
        done.set()
        worker.join(timeout=90)


def _query(stack: Stack, query: str) -> list[Any]:
    body = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": query}, timeout=10).json()
    return list(body["data"]["result"])


# Panels the front's series feed on a CPU machine; the others have no source here (DCGM GPU
# utilisation, alerts while none fires, evaluations and lineage the fixture turns off, measured cost).
FED_BY_THE_FRONT = ("requests", "latency", "errors", "ttft", "tokens", "in_flight", "replicas", "gpu_memory")


def test_dashboard_draws_every_fed_panel_after_load_and_the_reports_render(stack: Stack) -> None:
    # Every served version's series is scraped at zero before its first request, so a burst that
    # lands between two scrapes still reads as traffic (rate() cannot see a series' birth).
    for series in ("llmops_requests_total", "llmops_generated_tokens_total", "llmops_time_to_first_token_seconds"):
        selector = f'{{__name__=~"{series}(_count)?",model="{MODEL}"}}'
        wait_for(f"prometheus scrapes {series} before any load", lambda q=selector: _query(stack, q))
    with httpx.Client() as http:
        for i in range(36):  # above the drift monitor's 30 captured records
            body = {**CHAT, "stream": i % 3 == 0}
            assert http.post(f"{stack.url}/v1/chat/completions", json=body, timeout=60).status_code == 200
    rate = f'sum(rate(llmops_generated_tokens_total{{model="{MODEL}"}}[30s])) > 0'
    wait_for("prometheus has two scrapes of the load", lambda: _query(stack, rate), timeout=60)

    with _traffic(stack):  # the page's last 30 s carry requests, as on a served model
        page = browser.load(f"{stack.dashboard}/models/{MODEL}", screenshot="dashboard-model")
    assert page.errors == [], page.errors
    for key in FED_BY_THE_FRONT:
        assert page.panels[key]["drawn"] >= 1, (key, page.panels[key])
    assert "token_counters" in page.panels and page.panels["token_counters"]["drawn"] >= 1
    assert "no data" in page.panels["gpu_util"]["text"]  # no DCGM here: said, not drawn as 0
    assert "VERDICT" in page.panels["experiment"]["text"], page.panels["experiment"]

    with _traffic(stack):
        overview = browser.load(stack.dashboard, screenshot="dashboard-overview")
    assert overview.errors == [], overview.errors
    for key in ("requests", "latency", "errors", "tokens"):
        assert overview.panels[f"{MODEL}/{key}"]["drawn"] >= 1, overview.panels[f"{MODEL}/{key}"]
    (row,) = [line for line in overview.text.splitlines() if line.startswith(f"{MODEL}\t")]
    traffic, errors, p50, p95 = row.split("\t")[3:7]
    assert float(traffic) > 0 and errors == "0.00%" and p50.endswith(" ms") and p95.endswith(" ms"), row

    llmops = [str(REPO / ".venv" / "bin" / "llmops")]
    env = {**stack.project.env, "LLMOPS_ROOT": str(stack.project.root)}
    reports = stack.project.root / "reports"
    reports.mkdir(exist_ok=True)
    for name, args in (
        ("experiment", ["experiment", "report", "--stack", stack.name, "--model", MODEL, "--window", "600"]),
        ("cost", ["cost"]),
    ):
        out = reports / f"{name}.html"
        run = subprocess.run(
            [*llmops, *args, "--html", str(out)], cwd=stack.project.root, env=env, text=True, capture_output=True
        )
        assert run.returncode == 0, run.stderr[-2000:]
        report = browser.load(out.as_uri(), screenshot=f"report-{name}")
        assert report.errors == [], (name, report.errors)
        drawn = {k: p["drawn"] for k, p in report.panels.items()}
        assert any(drawn.values()), (name, drawn)


def test_drift_report_is_evidentlys_own_html_offline(stack: Stack) -> None:
    out = stack.project.root / "reports" / "drift.html"
    out.parent.mkdir(exist_ok=True)
    run = subprocess.run(
        [str(REPO / ".venv" / "bin" / "llmops"), "monitor", "drift", "--stack", stack.name, "--model", MODEL,
         "--html", str(out)],
        cwd=stack.project.root,
        env={**stack.project.env, "LLMOPS_ROOT": str(stack.project.root)},
        text=True,
        capture_output=True,
    )  # fmt: skip
    assert run.returncode in (0, 1) and out.is_file(), run.stderr[-2000:]  # 1: drift (an untrained model's answers)
    page = browser.load(out.as_uri(), screenshot="report-drift", settle=3)
    assert page.errors == [], page.errors
    assert [d for d in DESCRIPTORS if d in page.text], page.text[:1000]  # Evidently drew the descriptors' tests


def test_killed_dashboard_is_drift_that_up_heals(stack: Stack) -> None:
    (before,) = stack.resources("Dashboard")
    os.kill(int(before["pid"]), signal.SIGKILL)
    wait_for("the dashboard is down", lambda: port_free(int(before["port"])), timeout=30)
    stack.project.pulumi("refresh", "--yes", "--skip-preview", stack=stack.name)
    (refreshed,) = stack.resources("Dashboard")
    assert refreshed["running"] is False
    drift = stack.project.pulumi("preview", "--expect-no-changes", stack=stack.name, check=False)
    assert drift.returncode != 0, "a dead dashboard must show as a change"
    stack.up()
    (after,) = stack.resources("Dashboard")
    assert after["running"] is True and after["pid"] != before["pid"] and after["port"] == before["port"]
    assert httpx.get(f"{stack.dashboard}/models/{MODEL}", timeout=60).status_code == 200
    stack.project.pulumi("preview", "--expect-no-changes", stack=stack.name)
    stack.remember()


def test_version_bump_under_load_fails_no_request(stack: Stack) -> None:
    old = stack.replicas()
    answers: list[tuple[int, str]] = []
    failures: list[str] = []
    done = threading.Event()

    def client() -> None:
        with httpx.Client() as http:
            while not done.is_set():
                try:
                    r = stack.chat(http)
                    if r.status_code == 200:
                        answers.append((r.status_code, r.headers["x-llmops-version"]))
                    else:
                        failures.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    worker = threading.Thread(target=client, daemon=True)
    worker.start()
    try:
        wait_for("the client is getting answers", lambda: len(answers) >= 2, timeout=60)
        stack.set_variants([{"version": "v2", "weight": 100}])
        stack.up()
        seen = len(answers)
        wait_for("answers after the switch", lambda: len(answers) >= seen + 3, timeout=60)
    finally:
        done.set()
        worker.join(timeout=90)

    assert failures == [], failures
    versions = [v for _, v in answers]
    assert "v1" in versions and versions[-1] == "v2"
    assert versions.index("v2") > versions.index("v1")
    assert "v1" not in versions[versions.index("v2") :], "traffic went back to the old version"
    assert all(not is_running(ProcessRef.from_dict(r)) for r in old), "the old replicas still run"
    stack.remember()


def test_broken_version_fails_up_with_its_log_tail_and_the_old_keeps_serving(stack: Stack) -> None:
    stack.set_variants([{"version": "v3", "weight": 100}])
    result = stack.up(check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "v3 replica 0" in out and "exited before it became healthy" in out
    assert "log tail" in out and "no-model-here" in out, out[-3000:]

    r = stack.chat()
    assert r.status_code == 200 and r.headers["x-llmops-version"] == "v2"
    assert all(r["version"] == "v2" for r in stack.resources("ReplicaSet")), "the failed set left state behind"
    ports = json.loads((stack.state / "ports.json").read_text())
    assert not any("-v3-" in owner for owner in ports), ports

    stack.set_variants([{"version": "v2", "weight": 100}])
    stack.up()
    assert stack.chat().headers["x-llmops-version"] == "v2"


def test_killed_replica_is_restarted_by_the_supervisor_and_is_no_drift(stack: Stack) -> None:
    (victim,) = stack.replicas()
    before = read_pid_file(Path(victim["launch"]["pid_file"]))
    assert before is not None
    os.kill(before.pid, signal.SIGKILL)
    wait_for("the front notices", lambda: httpx.get(f"{stack.url}/health", timeout=5).status_code == 503, timeout=30)
    wait_for("healthy again", lambda: httpx.get(f"{stack.url}/health", timeout=5).status_code == 200, timeout=120)
    after = read_pid_file(Path(victim["launch"]["pid_file"]))
    assert after is not None and after.pid != before.pid and after.running()
    r = stack.chat()
    assert r.status_code == 200 and r.headers["x-llmops-version"] == "v2"

    stack.project.pulumi("refresh", "--yes", "--skip-preview", stack=stack.name)
    (refreshed,) = stack.resources("ReplicaSet")
    assert refreshed["running"] is True
    stack.project.pulumi("preview", "--expect-no-changes", stack=stack.name)
    stack.remember()


def test_slo_breach_fires_the_prometheus_alert(stack: Stack) -> None:
    stack.project.edit_model(MODEL, lambda d: d["monitoring"]["slo"].__setitem__("p95_latency_ms", 0.001))
    stack.up()
    rules = httpx.get(f"{stack.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    latency = [r for g in rules for r in g["rules"] if r["name"] == "LLMOpsLatencyP95High"]
    assert latency and latency[0]["query"].endswith("> 0.001"), latency

    def firing() -> bool:
        stack.chat()  # keep the latency histogram moving inside the rule's rate window
        alerts = httpx.get(f"{stack.prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return any(
            a["labels"]["alertname"] == "LLMOpsLatencyP95High"
            and a["labels"]["model"] == MODEL
            and a["state"] == "firing"
            for a in alerts
        )

    wait_for("LLMOpsLatencyP95High fires", firing, timeout=90, interval=2)


def test_destroy_leaves_no_process_or_port(stack: Stack) -> None:
    stack.remember()
    procs, ports = stack.seen["procs"], stack.seen["ports"]
    assert len(ports) >= 4  # replicas, front, prometheus, dashboard
    stack.project.pulumi("destroy", "--yes", "--skip-preview", stack=stack.name)
    assert [p for p in procs if is_running(p)] == []
    assert [p for p in sorted(ports) if not port_free(p)] == []
    assert json.loads((stack.state / "ports.json").read_text()) == {}
    assert not (stack.state / "monitoring").exists()
    assert not (stack.state / "dashboard").exists()
