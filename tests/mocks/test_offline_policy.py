"""`llmops ci policy`: the policy pack over an AWS stack's program under mocks, with no credentials.

Runs the real CLI (a subprocess, as a workflow step runs it) on a throwaway copy of
the project whose registry or stack file was edited the way a pull request would.
Proves: the shipped files pass for prod; an edit that takes prod over its budget,
past its replica quota or onto an instance type off its allowlist fails with exit 1
and names the policy, in text and in JSON. Cannot prove: anything only AWS computes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.ci.comment import load_policy_reports, policy_section
from llmops.plan import AffectedStack
from tests.support.project import Project, copy_project

pytestmark = pytest.mark.mocks

BIG = "llama-3-1-8b-instruct"  # deployed to prod, with its own prod replica range


def policy(project: Project, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from llmops.cli import main; raise SystemExit(main())", "ci", "policy"]
    return subprocess.run(
        [*cmd, "--stack", "prod", "--repo", str(project.root), *extra],
        env=project.env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def edit_stack(project: Project, stack: str, edit: Callable[[dict[str, Any]], None]) -> None:
    path = project.root / "stacks" / f"Pulumi.{stack}.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data["config"])
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return copy_project(tmp_path / "project")


def test_the_shipped_files_pass_for_prod(project: Project) -> None:
    result = policy(project, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    [report] = json.loads(result.stdout)
    assert report["stack"] == "prod" and report["environment"] == "prod" and report["ok"]
    assert report["resources"] > 20  # the whole platform ran, not an empty program
    assert not [f for f in report["findings"] if f["level"] == "mandatory"]


def _over_budget(project: Project) -> None:
    edit_stack(project, "prod", lambda c: c.update({"llmops:budgetMonthlyUsd": 1000}))


def _past_replica_quota(project: Project) -> None:
    project.edit_model(BIG, lambda d: d["deployments"]["prod"].update({"max_replicas": 12}))


def _off_the_allowlist(project: Project) -> None:
    project.edit_model(BIG, lambda d: d["deployments"]["prod"].update({"instance": "ml.g6.12xlarge"}))


@pytest.mark.parametrize(
    ("edit", "policy_name"),
    [
        (_over_budget, "stack-budget"),
        (_past_replica_quota, "autoscaling-bounds"),
        (_off_the_allowlist, "allowed-instance-types"),
    ],
)
def test_an_edit_that_breaches_prod_fails_naming_the_policy(
    project: Project, edit: Callable[[Project], None], policy_name: str
) -> None:
    edit(project)
    result = policy(project, "--out", str(project.root / "out"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"[mandatory] {policy_name} " in result.stdout
    saved = json.loads((project.root / "out" / "prod.policy.json").read_text())
    assert policy_name in {f["policy"] for f in saved["findings"] if f["level"] == "mandatory"}
    # What `ci pr-comment --policy out` shows for the stack.
    reports = load_policy_reports(project.root / "out", [AffectedStack("prod", "prod", True)])
    section = "\n".join(policy_section(reports["prod"]))
    assert section.startswith("**prod**: offline policy check: FAILED") and f"`[mandatory]` {policy_name} (" in section
