"""The fine-tuning chain on the local target, through the real engine and the installed console script.

One module-scoped deployment of the whole program (a copy of the project in its own git
repository, its own backend, ports and state), tiny-chat as shipped; each test builds on the
state the previous one left, in file order, with the commands a user types
(`.venv/bin/llmops` in a fresh environment, `git`):

1. `up` trains the shipped spec, serves it as v1 (`@training`) and records the run's package:
   the artifact, its lineage and every suite's values measured by the project's evaluation.
2. `llmops train adopt --stack S --version v2 --write --commit` pins that package by digest
   (`local: sha256:…`, lineage and measured gates in the commit); `llmops promote --commit`
   serves v2, and `up` serves it from the same artifact without training or measuring again.
3. A training spec change (fine-tune v2's artifact: `base_model: sha256:…`, new hyperparameters),
   committed: `registry validate --base` accepts it (v1, the moving `@training`, serves nowhere);
   `up` fine-tunes, measures and records a new package, while v2 keeps serving the weights it had;
   naming v1 in a variant again is refused (its spec changed since it served).
4. Adopting and promoting the fine-tune serves it: v3 answers. The base and fine-tuned packages'
   gate values (measured by the project's evaluation) and both versions' answers are printed
   side by side (`pytest -s`).

Cannot prove: the AWS pipeline (tests/mocks/test_training_runs.py, tests/unit/test_training_adopt.py),
or that adopted artifacts reach another machine (the local store is per machine).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmops.local.packages import gate_values
from tests.support.project import REPO, Project, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1800)]

MODEL = "tiny-chat"
SUITES = {"tiny-chat-heldout", "tiny-chat-tasks", "tiny-chat-fairness", "tiny-chat-safety"}
PROMPT = "What day comes after Monday?"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8}
FINE_TUNE = {"steps": 300, "batch_size": 16, "seq_len": 64, "learning_rate": 0.002, "seed": 1}
GIT = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass
class Chain:
    project: Project
    name: str
    seen: dict[str, Any] = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.project.root / ".state" / "artifacts"

    def up(self) -> str:
        result = self.project.pulumi("up", "--yes", "--skip-preview", stack=self.name, timeout=1200)
        return result.stdout + result.stderr

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.project.pulumi("stack", "output", "--json", stack=self.name).stdout))

    def llmops(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed console script in a fresh environment, run from the project as a user would."""
        env = {
            "HOME": os.environ.get("HOME", "/tmp"),
            "PATH": "/usr/bin:/bin",
            "HF_HUB_OFFLINE": "1",
            "PULUMI_CONFIG_PASSPHRASE": self.project.env["PULUMI_CONFIG_PASSPHRASE"],
            **GIT,
        }
        return subprocess.run(
            [str(REPO / ".venv" / "bin" / "llmops"), *args],
            cwd=self.project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT, "HOME": str(self.project.root.parent)}
        result = subprocess.run(["git", *args], cwd=self.project.root, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def package(self) -> dict[str, Any]:
        summary = self.outputs()["trainingPackages"][MODEL]
        record = json.loads(Path(summary["record"]).read_text())
        assert record["artifactSha256"] == summary["artifactSha256"]
        return dict(record)

    def replica_sources(self) -> list[str]:
        state = json.loads(self.project.pulumi("stack", "export", stack=self.name).stdout)
        return sorted(
            r["outputs"]["model_source"]
            for r in state["deployment"]["resources"]
            if r["type"] == "pulumi-python:dynamic/local:ReplicaSet"
        )

    def answer(self) -> httpx.Response:
        url = self.outputs()["endpoints"][MODEL]["url"]
        response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=60)
        assert response.status_code == 200, response.text
        return response


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    project = copy_project(tmp_path_factory.mktemp("fine-tuning") / "project", REPO)
    # One replica keeps the two cores for training and evaluation.
    project.edit_model(MODEL, lambda d: d["serving"].update(min_replicas=1, max_replicas=1))
    name = project.local_stack("fine-tuning", healthTimeoutSeconds=300)
    c = Chain(project, name)
    c.git("init", "-q", "-b", "main")
    c.git("add", "-A")
    c.git("commit", "-q", "-m", "the project as shipped")
    try:
        yield c
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", stack=name, check=False)
        project.pulumi("stack", "rm", "--yes", "--force", stack=name, check=False)


def test_up_serves_the_bootstrap_run_and_records_its_package(chain: Chain) -> None:
    chain.up()
    out = chain.outputs()
    record = chain.package()
    sha = record["artifactSha256"]
    assert sha == out["artifacts"][MODEL]["sha256"] and record["passed"] is True
    assert set(record["evaluation"]) == SUITES
    assert record["lineage"]["dataset"]["ref"] == "tiny-chat-corpus@2"
    # The package holds the numbers the project's evaluation measured on these weights.
    served = out["evaluations"][MODEL]["v1"]
    for suite in SUITES:
        assert record["evaluation"][suite]["metrics"] == served[suite]["metrics"]
        assert record["evaluation"][suite]["weights"] == sha
    assert chain.answer().headers["x-llmops-version"] == "v1"
    chain.seen["base"] = record


def test_adopt_pins_the_package_and_promote_serves_it_by_digest(chain: Chain) -> None:
    sha = chain.seen["base"]["artifactSha256"]
    adopted = ok(chain.llmops("train", "adopt", MODEL, "--stack", chain.name, "--version", "v2", "--write", "--commit"))
    assert f"+  v2:\n+    local: sha256:{sha}" in adopted
    message = chain.git("log", "-1", "--format=%B")
    assert message.startswith(f"feat(models): {MODEL} v2 from local training package {sha[:12]}")
    assert "Lineage: tiny-chat-corpus@2" in message and "Trained with the registry's current training spec" in message
    assert "tiny-chat-heldout/bits_per_byte: " in message
    # The same package again is refused, and nothing is written.
    again = chain.llmops("train", "adopt", MODEL, "--stack", chain.name, "--version", "v9", "--write")
    assert again.returncode == 1 and "these weights are declared already, as version 'v2'" in again.stderr
    assert chain.git("status", "--porcelain", "models") == ""

    ok(chain.llmops("promote", MODEL, "--version", "v2", "--to", "local", "--commit"))
    output = chain.up()
    assert "running suite" not in output and "step 500/500" not in output  # nothing trained or measured again
    assert chain.replica_sources() == [str((chain.store / sha).resolve())]
    assert chain.answer().headers["x-llmops-version"] == "v2"


def test_a_spec_change_fine_tunes_a_candidate_while_v2_keeps_its_weights(chain: Chain) -> None:
    base = chain.seen["base"]["artifactSha256"]

    def fine_tune(entry: dict[str, Any]) -> None:
        entry["training"]["base_model"] = f"sha256:{base}"
        entry["training"]["hyperparameters"] = FINE_TUNE

    chain.project.edit_model(MODEL, fine_tune)
    chain.git("commit", "-q", "-am", "tiny-chat: fine-tune v2's weights")
    ok(chain.llmops("registry", "validate", "--base", "HEAD~1"))
    output = chain.up()
    assert f"fine-tuning {base[:12]}" in output and "step 300/300" in output
    record = chain.package()
    assert record["artifactSha256"] != base and record["lineage"]["base"] == f"sha256:{base}"
    assert set(record["evaluation"]) == SUITES
    assert chain.replica_sources() == [str((chain.store / base).resolve())]  # the served weights did not move
    assert chain.answer().headers["x-llmops-version"] == "v2"
    chain.seen["fine-tuned"] = record

    # v1 is `@training`: serving it again would serve the new spec under an old name.
    path = chain.project.root / "models" / f"{MODEL}.yaml"
    before = path.read_text()
    ok(chain.llmops("promote", MODEL, "--version", "v1", "--to", "local"))
    refused = chain.llmops("registry", "validate", "--base", "HEAD")
    assert refused.returncode == 1 and "training: v1 is this model's training run" in refused.stdout
    path.write_text(before)


def test_the_adopted_fine_tune_serves(chain: Chain) -> None:
    record = chain.seen["fine-tuned"]
    sha = record["artifactSha256"]
    base_answer = chain.answer().json()["choices"][0]["message"]["content"]
    ok(chain.llmops("train", "adopt", MODEL, "--stack", chain.name, "--version", "v3", "--write", "--commit"))
    assert f"base sha256:{chain.seen['base']['artifactSha256']}" in chain.git("log", "-1", "--format=%B")
    ok(chain.llmops("promote", MODEL, "--version", "v3", "--to", "local", "--commit"))
    ok(chain.llmops("registry", "validate", "--base", "HEAD~2"))
    chain.up()
    assert chain.replica_sources() == [str((chain.store / sha).resolve())]
    response = chain.answer()
    assert response.headers["x-llmops-version"] == "v3"
    tuned_answer = response.json()["choices"][0]["message"]["content"]

    before, after = gate_values(chain.seen["base"]), gate_values(record)
    assert set(before) == set(after) and before != after
    print(f"\n| gate | base v2 ({chain.seen['base']['artifactSha256'][:12]}) | fine-tuned v3 ({sha[:12]}) |")
    print("|---|---|---|")
    for gate in sorted(before):
        print(f"| {gate} | {before[gate]:.4f} | {after[gate]:.4f} |")
    print(f"| answer to {PROMPT!r} | {base_answer!r} | {tuned_answer!r} |")
