"""End to end on the local target: an A/B experiment judged from Prometheus and rolled back by git.

In a throwaway copy of this repository (its own git history, backend, ports, state),
tiny-chat serves v1 at 80 % and a canary v2 at 20 % with a `rollout:` gated on
feedback, and a shadow v3 mirrored 25 % of requests, from an initialised checkpoint
(no training run). Then, in order:
- with no traffic yet, `llmops experiment report` is inconclusive;
- the installed `llmops experiment smoke` sends each live variant the model's example
  prompts pinned to it (four each, whatever the 80/20 split) and passes; with the
  registry naming a version the stack does not serve, it fails that one, located;
- under generated load from distinct users (sticky assignment), with simulated
  ratings that score v2's answers lower, the report read from the stack's real
  Prometheus is a roll back with the feedback test's p below the corrected alpha; the
  shadow replica set got its share of copies, counted apart from the live series;
- `llmops experiment advance` commits the canary's removal with the report in the
  message, and `llmops ci deploy --base HEAD~1 --head HEAD` applies it while a client
  keeps sending requests: none fails, and afterwards only v1 answers.
- a new canary that is as good (gated on errors) is walked 20 → 50 → 100 % by
  `advance` and `ci deploy`, one commit per step, until it serves alone.
Cannot prove: the aws target (CloudWatch is covered by Stubber tests).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmops.engine import DEV_PASSPHRASE
from llmops.local.train import initialised_checkpoint
from llmops.plan import ZERO_SHA
from tests.gitops.conftest import Repo
from tests.support.project import Project, copy_project, free_port_base

pytestmark = [pytest.mark.engine, pytest.mark.gitops, pytest.mark.timeout(1800)]

MODEL, MODEL_DIR = "tiny-chat", "fixtures/tiny-chat-model"
REQUESTS, CLIENTS = 240, 3
POSITIVE = {"v1": 0.8, "v2": 0.3}  # the simulated users like v2's answers less


@dataclass
class Clone:
    project: Project
    repo: Repo

    @property
    def root(self) -> Path:
        return self.project.root

    def llmops(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / ".venv" / "bin" / "llmops"), *args],
            cwd=self.root,
            env={**self.project.env, "LLMOPS_ROOT": str(self.root)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.project.pulumi("stack", "output", "--json", stack="local").stdout))

    def report(self, *window: str) -> dict[str, Any]:
        result = self.llmops("experiment", "report", "--stack", "local", "--model", MODEL, "--json", *window)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    def deploy(self) -> None:
        result = self.llmops("ci", "deploy", "--base", "HEAD~1", "--head", "HEAD", "--target", "local")
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def wait_until_routed(clone: Clone, weights: dict[str, int], timeout: float = 60) -> None:
    """Until Prometheus has scraped the front routing `weights`. The experiment's window starts at
    that scrape: load sent before it (a replica not yet healthy, or a scrape not yet taken) is
    rightly outside the window, and this test's load can finish within one scrape interval."""
    prometheus = clone.outputs()["prometheusUrl"]
    deadline, routed = time.monotonic() + timeout, {}
    while routed != weights:
        assert time.monotonic() < deadline, f"Prometheus never saw the split {weights}: {routed}"
        time.sleep(0.5)
        body = httpx.get(
            f"{prometheus}/api/v1/query", params={"query": f'llmops_route_weight{{model="{MODEL}"}} > 0'}, timeout=10
        ).json()
        routed = {row["metric"]["version"]: int(float(row["value"][1])) for row in body["data"]["result"]}


def chat(client: httpx.Client, url: str, user: str) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2, "user": user}
    return client.post(f"{url}/v1/chat/completions", json=body, timeout=120)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clone]:
    root = tmp_path_factory.mktemp("e2e-exp") / "llmops"
    project = copy_project(root)
    project.env["PULUMI_CONFIG_PASSPHRASE"] = DEV_PASSPHRASE
    initialised_checkpoint(root, root / MODEL_DIR)
    stack_file = root / "stacks" / "Pulumi.local.yaml"
    stack = yaml.safe_load(stack_file.read_text())
    stack["config"]["llmops:local"] = {"basePort": free_port_base(), "stateDir": ".state/e2e-exp"}
    stack_file.write_text(yaml.safe_dump(stack, sort_keys=False))

    def canary(entry: dict[str, Any]) -> None:
        entry["versions"] = {v: {"local": MODEL_DIR} for v in ("v1", "v2", "v3", "v4")}
        entry.pop("training", None)
        entry["serving"]["max_new_tokens"] = 2
        entry["serving"]["max_replicas"] = 1
        # An untrained checkpoint fails every quality gate: the experiment is what these tests judge.
        entry["compliance"]["evaluation"] = []
        entry["deployments"]["local"] = {
            "variants": [{"version": "v1", "weight": 80}, {"version": "v2", "weight": 20}],
            "rollout": {"steps": [20, 50, 100], "min_samples": 30, "looks": 2, "metrics": ["feedback"]},
            "shadow": {"version": "v3", "percent": 25},
        }

    project.edit_model(MODEL, canary)
    # The untrained checkpoint has no quality gates, which local's evaluation-gate policy would refuse:
    # this test judges the experiment loop, the Evaluation has its own engine tests.
    (root / "policies" / "config" / "local.json").write_text('{"all": "mandatory", "evaluation-gate": "advisory"}\n')
    repo = Repo(root)
    repo.git("init", "-q", "-b", "main")
    (root / ".git" / "info" / "exclude").write_text(f".venv\nbin\n.pulumi/\n.state/\n__pycache__/\n{MODEL_DIR}/\n")
    repo.commit("base: tiny-chat v1 with a v2 canary at 20 %")
    c = Clone(project, repo)
    try:
        result = c.llmops("ci", "deploy", "--base", ZERO_SHA, "--head", "HEAD", "--target", "local")
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        yield c
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", stack="local", check=False, timeout=600)
        shutil.rmtree(root / ".state", ignore_errors=True)


def test_no_traffic_is_inconclusive(clone: Clone) -> None:
    report = clone.report("--window", "900")
    assert report["verdict"] == "inconclusive"
    assert [v["n"] for v in report["variants"]] == [0, 0]


def test_the_smoke_check_sends_each_variant_its_examples_and_fails_one_it_cannot_reach(clone: Clone) -> None:
    def smoke() -> subprocess.CompletedProcess[str]:
        # The installed console script, as deploy.yml runs it after a deploy.
        return subprocess.run(
            [str(Path(sys.executable).parent / "llmops"), "experiment", "smoke", "--stack", "local"],
            cwd=clone.root,
            env={**clone.project.env, "LLMOPS_ROOT": str(clone.root)},
            capture_output=True,
            text=True,
            timeout=300,
        )

    url = clone.outputs()["endpoints"][MODEL]["url"]
    result = smoke()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # tiny-chat's two examples, twice each, to each variant; the shadow v3 serves no user and gets none.
    assert [line.split(":")[0] for line in lines] == ["ok   tiny-chat v1", "ok   tiny-chat v2"], lines
    assert all(": 4 requests, 0 errors, p95 " in line for line in lines), lines
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    for version in ("v1", "v2"):  # pinned: each variant answered exactly its own four, whatever the 80/20 split
        series = f'llmops_requests_total{{code="200",model="{MODEL}",route="/v1/chat/completions",version="{version}"}}'
        assert f"{series} 4.0" in metrics, [m for m in metrics.splitlines() if m.startswith("llmops_requests_total")]

    # The registry names a version the stack does not serve (say, a deploy that never applied):
    # no request reaches it, and the check fails there, naming where it sent them.
    path = clone.root / "models" / f"{MODEL}.yaml"
    committed = path.read_text()

    def unapplied(entry: dict[str, Any]) -> None:
        entry["versions"]["v5"] = {"local": MODEL_DIR}  # declared, as a served version must be
        entry["deployments"]["local"]["variants"] = [{"version": "v1", "weight": 80}, {"version": "v5", "weight": 20}]

    clone.project.edit_model(MODEL, unapplied)
    try:
        result = smoke()
    finally:
        path.write_text(committed)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("ok   tiny-chat v1: 4 requests, 0 errors"), result.stdout
    assert "FAIL tiny-chat v5: 4 requests, 4 errors: every request failed at " in result.stdout
    assert f"{url} (x-llmops-version: v5): HTTP 404" in result.stdout
    assert "tiny-chat has no version 'v5' here (serves: v1, v2)" in result.stdout
    assert "smoke check failed for 1 variant(s)" in result.stderr


def test_a_worse_rated_canary_is_rolled_back_and_deployed_away_without_a_failed_request(clone: Clone) -> None:
    url = clone.outputs()["endpoints"][MODEL]["url"]
    rng = random.Random(7)
    rated: dict[str, int] = {"v1": 0, "v2": 0}
    errors: list[str] = []
    lock = threading.Lock()

    def user_load(worker: int) -> None:
        with httpx.Client() as http:
            for i in range(worker, REQUESTS, CLIENTS):
                r = chat(http, url, f"user-{i}")
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    continue
                version = r.headers["x-llmops-version"]
                with lock:
                    score = 1.0 if rng.random() < POSITIVE[version] else 0.0
                fb = http.post(f"{url}/v1/feedback", json={"id": r.headers["x-llmops-response-id"], "score": score})
                if fb.status_code == 200:
                    with lock:
                        rated[version] += 1

    wait_until_routed(clone, {"v1": 80, "v2": 20})
    threads = [threading.Thread(target=user_load, args=(w,)) for w in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert rated["v2"] >= 30, rated

    last: dict[str, Any] = {}

    def scraped() -> dict[str, Any]:
        # The default window (since the split was routed) is the one `advance` judges by.
        nonlocal last
        last = clone.report()
        counts = {v["version"]: v["feedback"] for v in last["variants"]}
        return last if counts == rated else {}

    deadline, report = time.monotonic() + 60, {}
    while time.monotonic() < deadline and not (report := scraped()):
        time.sleep(2)
    assert report, f"Prometheus never showed the ratings {rated}: {last.get('window')} {last.get('variants')}"
    assert report["verdict"] == "rollback", report["reasons"]
    feedback = report["canaries"][0]["metrics"][0]
    assert feedback["metric"] == "feedback" and feedback["p_value"] < report["alpha_per_test"]
    assert report["sample_ratio"]["mismatch"] is False
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    shadowed = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("llmops_shadow_requests_total{") and 'code="200"' in line and 'version="v3"' in line
    ]
    assert shadowed and 0.1 * REQUESTS < shadowed[0] < 0.4 * REQUESTS, shadowed
    assert (
        'llmops_requests_total{code="200",model="tiny-chat",route="/v1/chat/completions",version="v3"}' not in metrics
    )

    advanced = clone.llmops("experiment", "advance", "--stack", "local")
    assert advanced.returncode == 0, advanced.stderr
    message = clone.repo.git("log", "-1", "--format=%B")
    assert message.startswith(f"revert(models): roll back {MODEL} v2 in local"), advanced.stdout
    assert "VERDICT: ROLLBACK" in message

    failures: list[str] = []
    versions: list[str] = []
    done = threading.Event()

    def steady_client() -> None:
        with httpx.Client() as http:
            while not done.is_set():
                try:
                    r = chat(http, url, "steady")
                    (
                        versions.append(r.headers["x-llmops-version"])
                        if r.status_code == 200
                        else failures.append(r.text)
                    )
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    worker = threading.Thread(target=steady_client, daemon=True)
    worker.start()
    try:
        deployed = clone.llmops("ci", "deploy", "--base", "HEAD~1", "--head", "HEAD", "--target", "local")
        assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-2000:]
        seen = len(versions)
        deadline = time.monotonic() + 60
        while len(versions) < seen + 3 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        done.set()
        worker.join(timeout=120)
    assert failures == []
    assert versions[-3:] == ["v1"] * 3
    with httpx.Client() as http:
        assert {chat(http, url, f"after-{i}").headers["x-llmops-version"] for i in range(10)} == {"v1"}


def test_an_equally_good_canary_is_walked_to_100_percent(clone: Clone) -> None:
    def walk(entry: dict[str, Any]) -> None:
        entry["deployments"]["local"] = {
            "variants": [{"version": "v1", "weight": 80}, {"version": "v4", "weight": 20}],
            "rollout": {"steps": [20, 50, 100], "min_samples": 30, "looks": 2, "metrics": ["error_rate"]},
        }

    clone.project.edit_model(MODEL, walk)
    clone.repo.commit("feat(models): tiny-chat v4 canary at 20 %")
    clone.deploy()
    url = clone.outputs()["endpoints"][MODEL]["url"]
    subjects, routed = [], [("v1", 80), ("v4", 20)]
    for step, expected in enumerate([[("v1", 50), ("v4", 50)], [("v4", 100)]]):
        answered: dict[str, int] = {"v1": 0, "v4": 0}
        # A new replica takes traffic once the front's probe found it healthy; load sent before
        # that all lands on v1 and the report rightly calls the split mismatched.
        wait_until_routed(clone, dict(routed))
        with httpx.Client() as http:
            for i in range(600):  # new users until each variant has answered enough of them
                r = chat(http, url, f"walk-{step}-{i}")
                assert r.status_code == 200, r.text
                answered[r.headers["x-llmops-version"]] += 1
                if min(answered.values()) >= 35:
                    break
        assert min(answered.values()) >= 35, answered

        deadline, seen = time.monotonic() + 120, {}
        while min(seen.values() or [0]) < 30:
            assert time.monotonic() < deadline, f"Prometheus never showed the load: {seen}"
            time.sleep(2)
            # Since the split was committed, as `advance` reads it.
            seen = {v["version"]: v["n"] for v in clone.report()["variants"]}
        advanced = clone.llmops("experiment", "advance", "--stack", "local")
        assert advanced.returncode == 0 and "promote" in advanced.stdout, advanced.stdout + advanced.stderr
        subjects.append(clone.repo.git("log", "-1", "--format=%s"))
        served = yaml.safe_load((clone.root / "models" / f"{MODEL}.yaml").read_text())["deployments"]["local"]
        assert [(v["version"], v["weight"]) for v in served["variants"]] == expected
        clone.deploy()
        routed = expected
    assert subjects == [
        f"feat(models): promote {MODEL} v4 to local at 50% (experiment: promote)",
        f"feat(models): promote {MODEL} v4 to local (experiment: promote)",
    ]
    with httpx.Client() as http:
        assert {chat(http, url, f"done-{i}").headers["x-llmops-version"] for i in range(5)} == {"v4"}
