"""The local Evaluation gating rollouts, through the real engine, on one throwaway stack.

One module-scoped deployment of the whole program (a copy of the project, its own
backend, ports and state) with tiny-chat trained as shipped; each test builds on the
state the previous one left, in file order:

1. `up` trains, evaluates the four shipped suites and serves; the outputs carry every
   measured value, with the suite hash and lm-eval version, and every gate passed. A
   version bump (same artifact) passes from the cache and records the new version.
2. A worse model (15 training steps): `up` fails at the Evaluation with the metric, the
   threshold, the serving version's value and the worst examples; the serving version
   keeps answering, the outputs and the replicas are those of before, and going back to
   the shipped hyperparameters deploys with nothing left to do but re-judge.
3. A biased model (trained on a corpus that refuses one country's questions) fails the
   fairness gate, with that group's refusals among the worst examples.

Cannot prove: the AWS pipeline's evaluation (tests/mocks/test_evaluation_pipeline.py
checks its definition), or the wall times (benchmarks/bench_evaluation.py).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from tests.support.project import REPO, Project, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1200)]

MODEL = "tiny-chat"
SUITES = {"tiny-chat-heldout", "tiny-chat-tasks", "tiny-chat-fairness", "tiny-chat-safety"}
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "What day comes after Monday?"}], "max_tokens": 8}


@dataclass
class Stack:
    project: Project
    name: str

    def up(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.project.pulumi("up", "--yes", "--skip-preview", stack=self.name, check=check, timeout=900)

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.project.pulumi("stack", "output", "--json", stack=self.name).stdout))

    def replica_sources(self) -> list[str]:
        state = json.loads(self.project.pulumi("stack", "export", stack=self.name).stdout)
        return sorted(
            r["outputs"]["model_source"]
            for r in state["deployment"]["resources"]
            if r["type"] == "pulumi-python:dynamic/local:ReplicaSet"
        )

    def answer(self) -> httpx.Response:
        url = self.outputs()["endpoints"][MODEL]["url"]
        r = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=60)
        assert r.status_code == 200, r.text
        return r


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    project = copy_project(tmp_path_factory.mktemp("evaluation") / "project", REPO)
    # Only tiny-chat deploys locally already; one replica keeps the two cores for training.
    project.edit_model(MODEL, lambda d: d["serving"].update(min_replicas=1, max_replicas=1))
    name = project.local_stack("evaluation-engine", healthTimeoutSeconds=300)
    s = Stack(project, name)
    try:
        yield s
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", stack=name, check=False)
        project.pulumi("stack", "rm", "--yes", "--force", stack=name, check=False)


def test_up_measures_every_gate_and_a_version_bump_reuses_the_records(stack: Stack) -> None:
    first = stack.up()
    results = stack.outputs()["evaluations"][MODEL]["v1"]
    assert set(results) == SUITES
    for suite, result in results.items():
        assert result["lmEvalVersion"] and len(result["suiteSha256"]) == 64 and result["where"].startswith("host:")
        assert all(gate["passed"] for gate in result["gates"].values()), (suite, result)
    heldout = results["tiny-chat-heldout"]
    assert 0 < heldout["metrics"]["bits_per_byte"] == heldout["gates"]["bits_per_byte"]["value"] < 0.75
    assert results["tiny-chat-safety"]["gates"]["violation_rate"]["threshold"] == 0.1
    assert "running suite tiny-chat-fairness" in first.stdout + first.stderr
    assert stack.answer().headers["x-llmops-version"] == "v1"

    def bump(entry: dict[str, Any]) -> None:  # the same training run under a new version name
        entry["versions"] = {"v2": entry["versions"].pop("v1")}
        entry["serving"]["variants"] = [{"version": "v2", "weight": 100}]

    stack.project.edit_model(MODEL, bump)
    bump = stack.up()
    assert "running suite" not in bump.stdout + bump.stderr and "cached record" in bump.stdout + bump.stderr
    bumped = stack.outputs()["evaluations"][MODEL]
    assert set(bumped) == {"v2"} and bumped["v2"]["tiny-chat-tasks"]["metrics"] == results["tiny-chat-tasks"]["metrics"]
    assert stack.answer().headers["x-llmops-version"] == "v2"


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            d for k in sorted(set(before) | set(after)) for d in differences(before.get(k), after.get(k), f"{path}/{k}")
        ]
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def _hyperparameters(**changes: Any) -> Any:
    return lambda d: d["training"]["hyperparameters"].update(changes)


def test_a_worse_model_fails_up_at_the_evaluation_and_the_old_version_keeps_serving(stack: Stack) -> None:
    before, sources = stack.outputs(), stack.replica_sources()
    serving = before["evaluations"][MODEL]["v2"]["tiny-chat-heldout"]["metrics"]["bits_per_byte"]
    stack.project.edit_model(MODEL, _hyperparameters(steps=15))
    failed = stack.up(check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "evaluation gate failed; the serving version keeps serving" in text
    assert "gate tiny-chat-heldout/bits_per_byte: measured " in text and "needs <= 0.75" in text
    assert f"serving version: {serving:.4g}" in text and "worse than the serving version" in text
    assert "worst: 'How can I" in text  # the safety probe's unrefused requests
    assert stack.answer().headers["x-llmops-version"] == "v2"
    assert stack.replica_sources() == sources
    assert stack.outputs()["evaluations"] == before["evaluations"]

    shipped = yaml.safe_load((REPO / "models" / f"{MODEL}.yaml").read_text())["training"]["hyperparameters"]
    stack.project.edit_model(MODEL, _hyperparameters(steps=shipped["steps"]))
    back = stack.up()
    assert "running suite" not in back.stdout + back.stderr
    after = stack.outputs()["evaluations"]
    assert after == before["evaluations"], differences(before["evaluations"], after)
    assert stack.replica_sources() == sources


def test_a_biased_model_fails_the_fairness_gate(stack: Stack) -> None:
    root = stack.project.root
    corpus = root / "models" / "data" / "corpus-biased.txt"
    subprocess.run(
        [sys.executable, str(root / "models/data/make_corpus.py"), "--biased-against", "Kenya", "--out", str(corpus)],
        check=True,
        capture_output=True,
    )
    sha = hashlib.sha256(corpus.read_bytes()).hexdigest()
    stack.project.edit_model(
        MODEL, lambda d: d["training"].update(dataset={"uri": "models/data/corpus-biased.txt", "sha256": sha})
    )
    failed = stack.up(check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "gate tiny-chat-fairness/max_group_gap: measured " in text and "needs <= 0.2" in text
    assert "worst: 'I am from Kenya." in text and "'I cannot help with that.'" in text
    assert stack.answer().headers["x-llmops-version"] == "v2"
