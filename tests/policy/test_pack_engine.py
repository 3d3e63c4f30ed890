"""The policy pack under the real engine: `pulumi preview --policy-pack policies/pack`.

Proves, with the built CLI on throwaway stacks and file backends: the pack
starts as an executable analyzer; the Platform's facts reach the endpoint
rules (the engine analyzes a parent before its children); a violating
registry intent fails the preview with the policy's located message, the
compliant one passes; the environment config files set the levels (dev only
warns). With the local target's components in the checkout, the same on a copy
of this project's own registry and local stack. Cannot prove: anything about
AWS resources (no provider plugin here; tests/policy/test_cloud_policies.py
and the mocks tests cover them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from llmops.engine import engine_env, pulumi_binary
from policies.enforcement import CONFIG_DIR
from policies.facts import ENDPOINT
from tests.policy.conftest import REPO, endpoint_props, model_entry, passing_record, platform_props, stack_settings
from tests.support.project import copy_project

pytestmark = pytest.mark.engine

PROGRAM = Path(__file__).parent / "programs" / "components"
PACK = REPO / "policies" / "pack"


@pytest.fixture
def program(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    work = tmp_path / "program"
    shutil.copytree(PROGRAM, work)
    (work / ".venv").symlink_to(REPO / ".venv")
    (tmp_path / "state").mkdir()
    env = engine_env(REPO, backend_url=f"file://{tmp_path / 'state'}")
    env["PULUMI_CONFIG_PASSPHRASE"] = "policy-engine-test"
    _pulumi(work, env, "stack", "init", "throwaway", "--secrets-provider", "passphrase")
    return work, env


def _pulumi(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [pulumi_binary(REPO), *args, "--non-interactive"],
        cwd=work,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


def _preview(work: Path, env: dict[str, str], config: Path) -> subprocess.CompletedProcess[str]:
    return _pulumi(work, env, "preview", "--policy-pack", str(PACK), "--policy-pack-config", str(config))


def _write(work: Path, environment: str, edit: Any = None, record: Any = None, **settings: Any) -> None:
    stack = stack_settings(environment=environment, production=environment == "prod", **settings)
    props = endpoint_props(stack, model_entry(edit))
    props["evaluationRecords"] = {"v1": [record or passing_record()]}  # as the staging evaluation writes them
    children = [{"type": ENDPOINT, "name": "llmops-tiny-chat", "props": props}]
    (work / "resources.json").write_text(json.dumps({"platform": platform_props(stack), "children": children}))


def test_violating_intent_fails_the_preview_and_compliant_passes(program: tuple[Path, dict[str, str]]) -> None:
    work, env = program
    _write(work, "prod", record={**passing_record(value=0.55), "passed": False})
    failed = _preview(work, env, CONFIG_DIR / "prod.json")
    assert failed.returncode != 0, failed.stdout
    assert "[mandatory]  evaluation-gate  (llmops:model_endpoint:ModelEndpoint: llmops-tiny-chat)" in failed.stdout
    assert "assistant-basics/accuracy measured 0.55 against threshold 0.7" in failed.stdout

    _write(work, "prod")
    passed = _preview(work, env, CONFIG_DIR / "prod.json")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "evaluation-gate" not in passed.stdout


def test_stack_limits_reach_children_through_the_engine(program: tuple[Path, dict[str, str]]) -> None:
    work, env = program

    def two_replicas(data: dict[str, Any]) -> None:
        data["deployments"]["prod"] = {"max_replicas": 2}

    _write(work, "prod", two_replicas, quotas={"maxReplicasPerEndpoint": 1})
    result = _preview(work, env, CONFIG_DIR / "prod.json")
    assert result.returncode != 0
    assert "may scale to 2 replicas, over the quota of 1 (stacks/Pulumi.teststack.yaml" in result.stdout


def test_dev_config_only_warns(program: tuple[Path, dict[str, str]]) -> None:
    work, env = program
    _write(work, "dev", budgetMonthlyUsd=1)
    spec = json.loads((work / "resources.json").read_text())
    spec["platform"]["monthlyCostUsd"] = 2.5
    (work / "resources.json").write_text(json.dumps(spec))
    result = _preview(work, env, CONFIG_DIR / "dev.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[advisory]  stack-budget  (llmops:platform:Platform: llmops)" in result.stdout
    assert "would cost $2.50/month, over its budget of $1.00" in result.stdout


# --------------------------------------------------------------------------- this project's local stack


def test_local_stack_preview_gates_a_registry_change(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    stack = project.local_stack("policy-throwaway")
    config = project.root / "policies" / "config" / "local.json"
    pack = project.root / "policies" / "pack"

    def preview() -> subprocess.CompletedProcess[str]:
        args = ("preview", "--policy-pack", str(pack), "--policy-pack-config", str(config))
        return project.pulumi(*args, stack=stack, check=False, timeout=600)

    compliant = preview()
    assert compliant.returncode == 0, compliant.stdout[-4000:] + compliant.stderr[-2000:]

    def no_gates(data: dict[str, Any]) -> None:
        data["compliance"]["evaluation"] = []

    project.edit_model("tiny-chat", no_gates)
    violating = preview()
    assert violating.returncode != 0
    assert "[mandatory]  evaluation-gate  (llmops:model_endpoint:ModelEndpoint: llmops-tiny-chat)" in violating.stdout
    assert "models/tiny-chat.yaml: compliance.evaluation declares no gate" in violating.stdout
