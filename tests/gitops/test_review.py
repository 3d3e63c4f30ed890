"""Review stacks end to end: `llmops ci review open|close|reap` on a real git repository and engine.

In a throwaway copy of this repository (its own git history, file backend and
ports), the `local` stack serves base's tiny-chat, and pull request #7 changes
tiny-chat. One pr-7 stack is opened and shared:
- open brings it up for tiny-chat alone, beside the running local stack, on the ports
  derived for #7, tagged pr / head-sha / created-at / ttl, and the comment holds the
  endpoint's real answers to the registry's example prompts beside the local stack's
  (base's), its health and latency, and each evaluation gate's value on head beside
  base's;
- a second push updates pr-7 in place (created-at kept, head-sha moved);
- reap destroys an expired review stack and leaves the fresh pr-7;
- a destroy that fails (stopped by the runner's timeout) leaves its stack listed,
  reported and exit 1; the next reap removes it;
- two pull requests open at once (#7 and #11, both changing tiny-chat) each get their
  own stack, ports and comment with real answers; closing #11 leaves #7 serving;
- close destroys pr-7, removes it and frees every process and port it held, and
  the local stack keeps serving.
Cannot prove: GitHub's runner; AWS review stacks (tests/gitops/test_review_aws.py,
tests/mocks/test_review_stack.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from components.local.process import port_free  # as the servers bind (SO_REUSEADDR)
from llmops.ci.review import PORT_SPAN, base_port
from llmops.engine import DEV_PASSPHRASE
from tests.gitops.conftest import Repo
from tests.support.project import REPO, Project, copy_project, free_port_base

pytestmark = [pytest.mark.engine, pytest.mark.gitops, pytest.mark.timeout(2400)]

MODEL, PR = "tiny-chat", 7


@dataclass
class Clone:
    project: Project
    repo: Repo

    @property
    def root(self) -> Path:
        return self.project.root

    def llmops(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / ".venv" / "bin" / "llmops"), "ci", "review", *args],
            cwd=self.root,
            env={**self.project.env, "LLMOPS_ROOT": str(self.root)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def open(self, pr: int = PR) -> tuple[subprocess.CompletedProcess[str], str]:
        out = self.root / ".state" / f"review-{pr}.md"
        result = self.llmops(
            "open", "--pr", str(pr), "--base", "main", "--head", "HEAD", "--quiet", "--output", str(out)
        )
        return result, out.read_text() if out.is_file() else ""

    def stacks(self) -> set[str]:
        listed = json.loads(self.project.pulumi("stack", "ls", "--json").stdout)
        return {s["name"] for s in listed}

    def tags(self, stack: str) -> dict[str, str]:
        return dict(json.loads(self.project.pulumi("stack", "tag", "ls", "--json", stack=stack).stdout))

    def empty_review_stack(self, pr: int, created: datetime, ttl_hours: float = 1) -> str:
        name = f"pr-{pr}"
        self.project.write_stack(name, {"llmops:target": "local", "llmops:environment": "local"})
        self.project.pulumi("stack", "init", name, "--secrets-provider", "passphrase")
        for key, value in {"pr": str(pr), "created-at": created.isoformat(), "ttl": str(ttl_hours)}.items():
            self.project.pulumi("stack", "tag", "set", key, value, stack=name)
        return name


def processes_and_ports(exported: dict[str, Any]) -> tuple[set[int], set[int]]:
    pids: set[int] = set()
    ports: set[int] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("pid"), int | float):
                pids.add(int(value["pid"]))
            if isinstance(value.get("port"), int | float):
                ports.add(int(value["port"]))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for resource in exported["deployment"].get("resources", []):
        walk(resource.get("outputs") or {})
    return pids, ports


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clone]:
    root = tmp_path_factory.mktemp("review") / "llmops"
    project = copy_project(root)
    project.env["PULUMI_CONFIG_PASSPHRASE"] = DEV_PASSPHRASE
    # Trained artifacts are content-addressed by their training inputs: reuse this checkout's.
    if (REPO / ".state" / "artifacts").is_dir():
        shutil.copytree(REPO / ".state" / "artifacts", root / ".state" / "artifacts", symlinks=True)
    repo = Repo(root)
    repo.git("init", "-q", "-b", "main")
    # Review stack files are written into the checkout by `open`, never committed (as in CI).
    exclude = ".venv\nbin\n.pulumi/\n.state/\n__pycache__/\nstacks/Pulumi.pr-*.yaml\n"
    (root / ".git" / "info" / "exclude").write_text(exclude)
    local = {"basePort": free_port_base(), "stateDir": ".state/base", "healthTimeoutSeconds": 300}
    stack_file = root / "stacks" / "Pulumi.local.yaml"
    stack = yaml.safe_load(stack_file.read_text())
    stack["config"]["llmops:local"] = local
    stack_file.write_text(yaml.safe_dump(stack, sort_keys=False))
    repo.commit("base")
    project.pulumi("stack", "init", "local")
    project.pulumi("up", "--yes", "--skip-preview", stack="local", timeout=1200)
    repo.git("checkout", "-q", "-b", "pr-7")
    project.edit_model(MODEL, lambda d: d.update({"description": d["description"] + " Reviewed."}))
    repo.commit("tiny-chat: a clearer description")
    c = Clone(project, repo)
    try:
        yield c
    finally:
        for stack in c.stacks():
            project.pulumi("destroy", "--yes", "--skip-preview", stack=stack, check=False, timeout=600)


def test_open_brings_up_the_changed_model_alone_on_its_own_ports(clone: Clone) -> None:
    result, comment = clone.open()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "pr-7" in clone.stacks()
    tags = clone.tags("pr-7")
    assert tags["pr"] == "7" and tags["head-sha"] == clone.repo.head() and float(tags["ttl"]) > 0
    datetime.fromisoformat(tags["created-at"])
    outputs = json.loads(clone.project.pulumi("stack", "output", "--json", stack="pr-7").stdout)
    assert set(outputs["endpoints"]) == {MODEL}  # other local models are not started
    port = int(outputs["endpoints"][MODEL]["url"].rsplit(":", 1)[1])
    assert base_port(PR) <= port < base_port(PR) + PORT_SPAN
    # The comment holds real answers, health and latency, per example prompt.
    assert "health: ok; metrics: ok" in comment and "latency over 2 request(s)" in comment
    rows = [line for line in comment.splitlines() if line.startswith("| Once upon a time |")]
    assert len(rows) == 1 and "_failed" not in rows[0] and " ms) |" in rows[0]
    base_cell = rows[0].rstrip(" |").rsplit(" | ", 1)[1]
    assert base_cell and not base_cell.startswith("_"), rows[0]  # base's real answer, from the local stack
    # Every gate measured on head beside base's record: the same weights (a description change), no change.
    assert f"#### Evaluation of `{MODEL}`, base → head" in comment
    gates = [line for line in comment.splitlines() if line.startswith("| `v1` | tiny-chat-")]
    assert len(gates) == 4 and all(" | +0 | passed |" in line for line in gates), gates


def test_a_second_push_updates_the_stack_in_place(clone: Clone) -> None:
    before = clone.tags("pr-7")
    clone.project.edit_model(MODEL, lambda d: d.update({"examples": [*d["examples"], "Hello there"]}))
    clone.repo.commit("tiny-chat: one more example prompt")
    result, comment = clone.open()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    after = clone.tags("pr-7")
    assert after["created-at"] == before["created-at"] and after["head-sha"] == clone.repo.head() != before["head-sha"]
    assert "| Hello there |" in comment
    assert {s for s in clone.stacks() if s.startswith("pr-")} == {"pr-7"}


def test_reap_destroys_an_expired_stack_and_leaves_a_fresh_one(clone: Clone) -> None:
    clone.empty_review_stack(8, datetime.now(UTC) - timedelta(hours=3), ttl_hours=1)
    result = clone.llmops("reap", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "pr-8: expired" in result.stderr
    assert {s for s in clone.stacks() if s.startswith("pr-")} == {"pr-7"}


def test_a_failed_destroy_keeps_the_stack_listed_and_reported(clone: Clone) -> None:
    clone.empty_review_stack(9, datetime.now(UTC), ttl_hours=48)
    # #9 is closed: reap takes it; a timeout far too short for the engine stops its destroy.
    result = clone.llmops("reap", "--open-prs", "[7]", "--timeout", "0.05", "--quiet")
    assert result.returncode == 1
    assert "pr-9: pull request #9 is closed; destroy FAILED" in result.stderr
    assert "pr-9" in clone.stacks()
    retry = clone.llmops("reap", "--open-prs", "[7]", "--quiet")
    assert retry.returncode == 0, retry.stderr
    assert {s for s in clone.stacks() if s.startswith("pr-")} == {"pr-7"}


def test_two_pull_requests_open_at_once_and_closing_one_leaves_the_other_serving(clone: Clone) -> None:
    # Pull request #11, from main, changes tiny-chat too; #7's stack keeps running meanwhile.
    clone.repo.git("checkout", "-q", "-b", "pr-11", "main")
    try:
        clone.project.edit_model(MODEL, lambda d: d.update({"description": d["description"] + " Second."}))
        clone.repo.commit("tiny-chat: another description")
        result, comment = clone.open(11)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert {s for s in clone.stacks() if s.startswith("pr-")} == {"pr-7", "pr-11"}
        assert clone.tags("pr-11")["head-sha"] == clone.repo.head() != clone.tags("pr-7")["head-sha"]
        # Each has its own comment with real answers, from its own endpoint.
        assert comment.splitlines()[1] == "### Review stack `pr-11`"
        urls = {}
        for pr in (7, 11):
            outputs = json.loads(clone.project.pulumi("stack", "output", "--json", stack=f"pr-{pr}").stdout)
            urls[pr] = outputs["endpoints"][MODEL]["url"]
            port = int(urls[pr].rsplit(":", 1)[1])
            assert base_port(pr) <= port < base_port(pr) + PORT_SPAN
        assert f"- endpoint: {urls[11]} (health: ok; metrics: ok)" in comment
        rows = [line for line in comment.splitlines() if line.startswith("| Once upon a time |")]
        assert len(rows) == 1 and "_failed" not in rows[0]
        first = (clone.root / ".state" / "review-7.md").read_text()
        assert first.splitlines()[1] == "### Review stack `pr-7`" and f"- endpoint: {urls[7]} " in first
        # Closing #11 leaves #7 serving.
        closed = clone.llmops("close", "--pr", "11", "--quiet")
        assert closed.returncode == 0, closed.stderr
        assert {s for s in clone.stacks() if s.startswith("pr-")} == {"pr-7"}
        assert httpx.get(f"{urls[7]}/health", timeout=10).status_code == 200
        assert port_free(int(urls[11].rsplit(":", 1)[1]))
    finally:
        clone.repo.git("checkout", "-q", "pr-7")


def test_close_destroys_the_stack_and_frees_every_process_and_port(clone: Clone) -> None:
    exported = json.loads(clone.project.pulumi("stack", "export", stack="pr-7").stdout)
    pids, ports = processes_and_ports(exported)
    assert pids and ports
    result = clone.llmops("close", "--pr", str(PR), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "pr-7" not in clone.stacks()
    assert not (clone.root / "stacks" / "Pulumi.pr-7.yaml").exists()
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert all(port_free(p) for p in ports)
    local = json.loads(clone.project.pulumi("stack", "output", "--json", stack="local").stdout)
    assert httpx.get(f"{local['endpoints'][MODEL]['url']}/health", timeout=10).status_code == 200
