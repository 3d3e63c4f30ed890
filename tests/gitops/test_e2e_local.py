"""End to end on the local target: a registry commit deploys exactly its stack, policy first.

In a throwaway copy of this repository (its own git history, file backend, ports and
state folder), with a second local model beside tiny-chat, one deployment is made and
reused. Then:
- `llmops promote tiny-chat --version v2 --to local --commit`, and the deploy workflow's
  entry point `llmops ci deploy --base HEAD~1 --head HEAD` with no stack named: the plan
  holds the local stack alone, no other stack is created, only tiny-chat's resources
  change, the endpoint answers as v2, and the other model's resources (processes
  included) are exactly as before;
- a commit that breaks a policy (a licence off the allowlist, together with a new
  version): the same entry point fails at the preview, before any update, the stack's
  state is unchanged and the endpoint still answers with the version it had.
Cannot prove: anything about the AWS stacks (no cloud here), nor GitHub's runner.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmops.engine import DEV_PASSPHRASE
from llmops.plan import ZERO_SHA
from tests.gitops.conftest import Repo
from tests.support.project import REPO, Project, copy_project, free_port_base

pytestmark = [pytest.mark.engine, pytest.mark.gitops, pytest.mark.timeout(2400)]

MODEL, OTHER = "tiny-chat", "tiny-echo"


@dataclass
class Clone:
    project: Project
    repo: Repo

    @property
    def root(self) -> Path:
        return self.project.root

    def llmops(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        """The installed `llmops` console script, run in the clone as a workflow step runs it."""
        return subprocess.run(
            [str(self.root / ".venv" / "bin" / "llmops"), *args],
            cwd=self.root,
            env={**self.project.env, "LLMOPS_ROOT": str(self.root)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def deploy(self, base: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        report = self.root / ".state" / "deploy-report.json"
        report.unlink(missing_ok=True)
        result = self.llmops("ci", "deploy", "--base", base, "--head", "HEAD", "--report", str(report), *extra)
        return result, json.loads(report.read_text()) if report.is_file() else {}

    def resources(self) -> dict[str, dict[str, Any]]:
        """URN -> the state the engine keeps for it (inputs, outputs: pids, ports, versions).

        Leaves out `__provider`: a dynamic resource's provider code, which the SDK
        re-serialises on every run (the bytes vary) even for a resource left as it was."""
        exported = json.loads(self.project.pulumi("stack", "export", stack="local").stdout)
        return {
            r["urn"]: {
                "inputs": {k: v for k, v in (r.get("inputs") or {}).items() if k != "__provider"},
                "outputs": {k: v for k, v in (r.get("outputs") or {}).items() if k != "__provider"},
                "modified": r.get("modified"),
            }
            for r in exported["deployment"].get("resources", [])
        }

    def declare(self, model: str, version: str) -> None:
        """Declare `version` in the registry, its weights a folder: the artifact v1 was trained into
        (a version must be declared before it serves; the trained one is `@training`, once)."""
        outputs = json.loads(self.project.pulumi("stack", "output", "--json", stack="local").stdout)
        folder = str(outputs["artifacts"][model]["uri"]).removeprefix("file://")
        self.project.edit_model(model, lambda d: d["versions"].__setitem__(version, {"local": folder}))

    def endpoint(self, model: str) -> str:
        outputs = json.loads(self.project.pulumi("stack", "output", "--json", stack="local").stdout)
        return str(outputs["endpoints"][model]["url"])


def served_version(url: str) -> str:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.headers["x-llmops-version"]


def of(resources: dict[str, dict[str, Any]], model: str) -> dict[str, dict[str, Any]]:
    return {urn: state for urn, state in resources.items() if f"-{model}" in urn.split("::")[-1]}


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    """Where two exported states differ, as paths (for a readable failure)."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            d for k in sorted(set(before) | set(after)) for d in differences(before.get(k), after.get(k), f"{path}/{k}")
        ]
    return [] if before == after else [f"{path}: {str(before)[:120]!r} -> {str(after)[:120]!r}"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clone]:
    root = tmp_path_factory.mktemp("e2e") / "llmops"
    project = copy_project(root)
    project.env["PULUMI_CONFIG_PASSPHRASE"] = DEV_PASSPHRASE  # the salt committed in Pulumi.local.yaml
    # Trained artifacts are content-addressed by their training inputs: reuse this checkout's.
    if (REPO / ".state" / "artifacts").is_dir():
        shutil.copytree(REPO / ".state" / "artifacts", root / ".state" / "artifacts", symlinks=True)
    stack_file = root / "stacks" / "Pulumi.local.yaml"
    stack = yaml.safe_load(stack_file.read_text())
    stack["config"]["llmops:local"] = {
        "basePort": free_port_base(),
        "stateDir": ".state/e2e",
        "healthTimeoutSeconds": 300,
    }
    stack_file.write_text(yaml.safe_dump(stack, sort_keys=False))
    # A second local model: its training inputs equal tiny-chat's, so it reuses that artifact.
    text = (root / "models" / f"{MODEL}.yaml").read_text()
    (root / "models" / f"{OTHER}.yaml").write_text(text.replace(f"\nname: {MODEL}\n", f"\nname: {OTHER}\n", 1))
    repo = Repo(root)
    repo.git("init", "-q", "-b", "main")
    (root / ".git" / "info" / "exclude").write_text(".venv\nbin\n.pulumi/\n.state/\n__pycache__/\n")
    repo.commit("base: the project with two local models")
    c = Clone(project, repo)
    try:
        result, report = c.deploy(ZERO_SHA, "--target", "local")
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        assert [s["stack"] for s in report["plan"]["stacks"] if s["stack"] == "local"] == ["local"]
        yield c
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", stack="local", check=False, timeout=600)


def test_a_new_version_deploys_the_local_stack_alone_and_leaves_the_other_model_alone(clone: Clone) -> None:
    before = clone.resources()
    url = clone.endpoint(MODEL)
    assert served_version(url) == "v1"

    clone.declare(MODEL, "v2")
    promoted = clone.llmops("promote", MODEL, "--version", "v2", "--to", "local", "--commit")
    assert promoted.returncode == 0, promoted.stderr
    assert clone.repo.git("log", "-1", "--format=%s") == f"feat(models): promote {MODEL} v2 to local"

    result, report = clone.deploy("HEAD~1")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert [s["stack"] for s in report["plan"]["stacks"]] == ["local"]
    assert report["plan"]["unaffected"] == ["dev", "prod", "staging"]
    assert [(r["command"], r["stack"]) for r in report["runs"]] == [("preview", "local"), ("up", "local")]
    changed = report["runs"][1]["changed_urns"]
    # The shared dashboard's records (evaluations, lineage per version) follow the new version: an
    # update of its records file only, the same process keeps serving (checked below).
    dashboard = [urn for urn in changed if urn.endswith("::llmops-monitoring-dashboard")]
    changed = [urn for urn in changed if urn not in dashboard]
    assert changed and all(f"-{MODEL}" in urn for urn in changed), changed
    stacks = json.loads(clone.project.pulumi("stack", "ls", "--json").stdout)
    assert [s["name"] for s in stacks] == ["local"]  # no other stack was touched, or even created

    assert clone.endpoint(MODEL) == url  # the same front port, now serving the new version
    assert served_version(url) == "v2"
    after = clone.resources()
    for urn in dashboard:
        assert after[urn]["outputs"]["pid"] == before[urn]["outputs"]["pid"]  # not restarted
    assert of(before, OTHER)
    assert differences(of(before, OTHER), of(after, OTHER)) == []  # processes, ports, everything


def test_a_policy_violation_fails_before_any_change_and_the_endpoint_keeps_serving(clone: Clone) -> None:
    url = clone.endpoint(MODEL)
    serving = served_version(url)
    before = clone.resources()
    path = clone.root / "models" / f"{MODEL}.yaml"
    clone.declare(MODEL, "v9")
    promoted = clone.llmops("promote", MODEL, "--version", "v9", "--to", "local")
    assert promoted.returncode == 0, promoted.stderr
    path.write_text(path.read_text().replace("licence: apache-2.0", "licence: proprietary-eval-only"))
    base = clone.repo.head()
    clone.repo.commit("feat(models): tiny-chat v9 under a new licence")

    result, report = clone.deploy(base)
    assert result.returncode == 1
    assert "preview of local failed" in result.stderr and "nothing was changed" in result.stderr
    assert "licence" in result.stdout + result.stderr
    assert [(r["command"], r["stack"]) for r in report["runs"]] == [("preview", "local")]
    assert any(v["level"] == "mandatory" and "licence" in v["policy"] for v in report["runs"][0]["violations"])
    assert clone.resources() == before
    assert served_version(url) == serving
