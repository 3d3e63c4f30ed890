"""`llmops migrate-stacks` on a serving local stack, under load, with the real engine.

Deploys a throwaway local-target stack (the tiny model, trained and evaluated) in a copy of the
project, sends it requests without pause from another thread, and runs the installed
console script `llmops migrate-stacks <stack>` from a fresh shell's environment.
Proves: the endpoint moves into its model stack `<stack>.tiny-chat` with 0 failed requests
and its front keeps its process; the stack file says `llmops:layout: split` and nothing
else of it changed; every stack's preview after the migration shows no change; the model's
scrape target, rules and dashboard records come from its model stack and Prometheus
scrapes the front through them; `llmops outputs --stack <stack>` still lists the endpoint;
a second run moves nothing; `make destroy STACK=<stack>` removes both stacks.
Cannot prove: the AWS target (tests/mocks/test_split_layout.py holds its URNs to the contract).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.project import Project, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1800)]

STACK = "fleet"
MODEL = "tiny-chat"
MODEL_STACK = f"{STACK}.{MODEL}"


@dataclass
class Load:
    """Chat requests one after another until stopped; every answer that is not a 200 is a failure."""

    url: str
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                self.sent += 1
                try:
                    response = client.post(f"{self.url}/v1/chat/completions", json=body)
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))


def llmops(project: Project, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    """The installed console script, from a fresh shell's environment, in the copy."""
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin", "PULUMI_CONFIG_PASSPHRASE": "throwaway-test-passphrase"}
    return subprocess.run(
        [str(project.root / ".venv" / "bin" / "llmops"), *args],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def outputs(project: Project, stack: str) -> dict[str, object]:
    return dict(json.loads(project.pulumi("stack", "output", "--json", "--show-secrets", stack=stack).stdout))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    project = copy_project(tmp_path_factory.mktemp("migrate") / "project")
    project.local_stack(STACK)  # the tiny model trained in full: its evaluation gates pass
    project.pulumi("up", "--yes", "--skip-preview", stack=STACK, timeout=1200)
    try:
        yield project
    finally:
        for stack in (MODEL_STACK, STACK):
            project.pulumi("destroy", "--yes", "--skip-preview", stack=stack, check=False)


def test_a_serving_endpoint_moves_under_load_and_nothing_changes_after(deployed: Project) -> None:
    project = deployed
    stack_file = project.root / "stacks" / f"Pulumi.{STACK}.yaml"
    before_file = stack_file.read_text()
    endpoint = outputs(project, STACK)["endpoints"][MODEL]  # type: ignore[index]
    front_pid = _front_pid(project, STACK)

    load = Load(endpoint["url"])
    worker = threading.Thread(target=load.run, daemon=True)
    worker.start()
    time.sleep(3)
    try:
        result = llmops(project, "migrate-stacks", STACK)
    finally:
        time.sleep(3)
        load.stop.set()
        worker.join(timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert load.sent > 20 and load.failures == [], (load.sent, load.failures[:5])
    assert f"{MODEL_STACK}: no change" in result.stdout and f"{STACK}: no change" in result.stdout, result.stdout

    # The model's resources are the model stack's now, with the same front process.
    moved = _urns(project, MODEL_STACK)
    assert any(u.endswith(f"::llmops-{MODEL}") for u in moved)
    assert not any(u.endswith(f"::llmops-{MODEL}") for u in _urns(project, STACK))
    assert _front_pid(project, MODEL_STACK) == front_pid
    # One line added to the stack file, every other line kept.
    after_file = stack_file.read_text()
    added = [line for line in after_file.splitlines() if line not in before_file.splitlines()]
    assert added[-1] == "  llmops:layout: split" and len(added) == 2, added
    assert [line for line in after_file.splitlines() if line not in added] == before_file.splitlines()

    # Monitoring: the model stack's target and rules, scraped by the platform's Prometheus.
    state = project.root / ".state" / STACK
    assert (state / "monitoring" / "serving-targets" / f"{MODEL}.json").is_file()
    assert (state / "monitoring" / "rules.d" / f"{MODEL}.yml").is_file()
    prometheus = str(outputs(project, STACK)["prometheusUrl"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        if any(t["labels"].get("endpoint") == MODEL and t["health"] == "up" for t in targets):
            break
        time.sleep(2)
    else:
        pytest.fail(f"Prometheus does not scrape {MODEL} through its model stack's target: {targets}")
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert any(MODEL in json.dumps(g) for g in rules), "the model's alert rules are not loaded"

    # The environment reads as one: its outputs list the model's endpoint.
    listed = llmops(project, "outputs", "--stack", STACK)
    assert listed.returncode == 0 and endpoint["url"] in listed.stdout, listed.stdout + listed.stderr
    # A second run has nothing left to move.
    again = llmops(project, "migrate-stacks", STACK, "--no-up")
    assert again.returncode == 0 and "nothing of tiny-chat left" in again.stdout, again.stdout + again.stderr


def _urns(project: Project, stack: str) -> list[str]:
    state = json.loads(project.pulumi("stack", "export", stack=stack).stdout)
    return [r["urn"] for r in state["deployment"]["resources"]]


def _front_pid(project: Project, stack: str) -> int:
    state = json.loads(project.pulumi("stack", "export", stack=stack).stdout)
    fronts = [
        r["outputs"]["pid"]
        for r in state["deployment"]["resources"]
        if r["urn"].endswith("::llmops-tiny-chat-front") and "pid" in (r.get("outputs") or {})
    ]
    assert len(fronts) == 1, f"{stack}: {len(fronts)} fronts"
    return int(fronts[0])
