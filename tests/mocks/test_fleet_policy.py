"""The fleet bar, part two: the offline policy on a model stack of a 500-model prod split into stacks.

Runs the installed console script, `llmops ci policy --stack prod.<model>`, as the pull
request workflow runs it for each model stack the plan names, in a throwaway copy of the
project whose prod deploys 500 models and says `llmops:layout: split`.
Proves: the copy's fleet passes; the held-out prod breaches (the environment's budget, an
endpoint past its replica quota, an instance type off the allowlist, a licence off the
allowlist) fail the one model stack's check, naming the policy: the budget spans the
environment, so the model stack judges the whole fleet's cost; a node pool past its GPU
quota fails the platform stack `prod`, which owns the pools.
Cannot prove: anything only AWS computes.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The held-out prod breaches are the offline policy test's own edits, on the same model.
from tests.mocks.test_offline_policy import (
    BIG,
    _off_the_allowlist,
    _off_the_licence_allowlist,
    _over_budget,
    _past_pool_gpu_quota,
    _past_replica_quota,
    edit_stack,
)
from tests.support.project import Project, copy_project

pytestmark = [pytest.mark.mocks, pytest.mark.timeout(1800)]

MODEL = BIG  # in prod, with its own replica range
FLEET = 500
FLEET_BUDGET = 5_000_000  # what 500 prod endpoints cost, with room


def policy(project: Project, stack: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(project.root / ".venv" / "bin" / "llmops"), "ci", "policy", "--stack", stack, "--json"],
        cwd=project.root,
        env={"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project copy whose prod serves 500 models (copies of MODEL, renamed) and is split."""
    project = copy_project(tmp_path / "project")
    source = (project.root / "models" / f"{MODEL}.yaml").read_text()
    for i in range(FLEET - 2):  # with MODEL and llama-3-1-70b-instruct, 500 in prod
        name = f"fleet-{i:03d}"
        (project.root / "models" / f"{name}.yaml").write_text(source.replace(f"name: {MODEL}", f"name: {name}"))
    edit_stack(project, "prod", lambda c: c.update({"llmops:layout": "split", "llmops:budgetMonthlyUsd": FLEET_BUDGET}))
    return project


def _findings(result: subprocess.CompletedProcess[str], stack: str) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr
    [report] = json.loads(result.stdout)
    assert report["stack"] == stack and report["environment"] == "prod"
    return report


def test_the_fleet_passes_on_a_model_stack(project: Project) -> None:
    result = policy(project, f"prod.{MODEL}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = _findings(result, f"prod.{MODEL}")
    assert not [f for f in report["findings"] if f["level"] == "mandatory"]
    assert 5 < report["resources"] < 60, "one model's resources, not the fleet's"


@pytest.mark.parametrize(
    ("edit", "policy_name"),
    [
        (_over_budget, "stack-budget"),
        (_past_replica_quota, "autoscaling-bounds"),
        (_off_the_allowlist, "allowed-instance-types"),
        (_off_the_licence_allowlist, "licence-allowlist"),
    ],
)
def test_a_breach_fails_the_model_stack_naming_the_policy(
    project: Project, edit: Callable[[Project], None], policy_name: str
) -> None:
    edit(project)
    result = policy(project, f"prod.{MODEL}")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    report = _findings(result, f"prod.{MODEL}")
    assert policy_name in {f["policy"] for f in report["findings"] if f["level"] == "mandatory"}


def test_a_pool_past_its_gpu_quota_fails_the_platform_stack(project: Project) -> None:
    _past_pool_gpu_quota(project)
    result = policy(project, "prod")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    report = _findings(result, "prod")
    assert "gpus-per-node-pool" in {f["policy"] for f in report["findings"] if f["level"] == "mandatory"}
    assert not [r for r in report["findings"] if MODEL in r["resource"]]
