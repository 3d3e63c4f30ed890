"""`llmops ci policy`: the policy pack over an AWS stack's program under mocks, with no credentials.

Runs the installed console script (`.venv/bin/llmops`, a subprocess with a fresh login
shell's environment: HOME and PATH=/usr/bin:/bin, no scripts/env.sh, as a workflow step or a
user runs it) in a throwaway copy of the project whose registry or stack file was edited the
way a pull request would, from its root and from a subfolder.
Proves: the shipped files pass for prod; the checkout's own `policies/` is imported (nothing
puts it on sys.path for the console script); an edit that takes prod over its budget, past
its replica or node-pool GPU quota, onto an instance type off its allowlist or a licence off
its allowlist fails with exit 1 and names the policy, in text and in JSON.
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
import yaml

from llmops.ci.comment import load_policy_reports, policy_section
from llmops.plan import AffectedStack
from tests.support.project import Project, copy_project

pytestmark = pytest.mark.mocks

BIG = "llama-3-1-8b-instruct"  # deployed to prod, with its own prod replica range


def policy(project: Project, *extra: str, where: str = "") -> subprocess.CompletedProcess[str]:
    """`llmops ci policy --stack prod` as a fresh shell runs it, in the copy (or its folder `where`)."""
    return subprocess.run(
        [str(project.root / ".venv" / "bin" / "llmops"), "ci", "policy", "--stack", "prod", *extra],
        cwd=project.root / where,
        env={"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def edit_stack(project: Project, stack: str, edit: Callable[[dict[str, Any]], None]) -> None:
    path = project.root / "stacks" / f"Pulumi.{stack}.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data["config"])
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return copy_project(tmp_path / "project")


@pytest.mark.parametrize("where", ["", "models"])
def test_the_shipped_files_pass_for_prod(project: Project, where: str) -> None:
    result = policy(project, "--json", where=where)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    [report] = json.loads(result.stdout)
    assert report["stack"] == "prod" and report["environment"] == "prod" and report["ok"]
    assert report["resources"] > 20  # the whole platform ran, not an empty program
    assert not [f for f in report["findings"] if f["level"] == "mandatory"]
    # Prod's versions are measured on staging during the deploy: before it, their records are pending.
    pending = [f for f in report["findings"] if f["level"] == "pending"]
    assert pending and all(f["policy"] == "evaluation-gate" for f in pending)


def _over_budget(project: Project) -> None:
    edit_stack(project, "prod", lambda c: c.update({"llmops:budgetMonthlyUsd": 1000}))


def _past_replica_quota(project: Project) -> None:
    project.edit_model(BIG, lambda d: d["deployments"]["prod"].update({"max_replicas": 12}))


def _off_the_allowlist(project: Project) -> None:
    project.edit_model(BIG, lambda d: d["deployments"]["prod"].update({"instance": "ml.g6.12xlarge"}))


def _past_pool_gpu_quota(project: Project) -> None:
    # l40s: g6e.12xlarge has 4 GPUs; 9 nodes is 36 > maxGpusPerPool 32. Prod builds its pools only
    # when asked (no model serves on EKS there), so the edit asks for the cluster too.
    def edit(c: dict[str, Any]) -> None:
        c["llmops:cluster"]["create"] = "always"
        c["llmops:cluster"]["gpuPools"][1]["maxSize"] = 9

    edit_stack(project, "prod", edit)


def _off_the_licence_allowlist(project: Project) -> None:
    project.edit_model(BIG, lambda d: d["compliance"].update({"licence": "cc-by-nc-4.0"}))


@pytest.mark.parametrize(
    ("edit", "policy_name"),
    [
        (_over_budget, "stack-budget"),
        (_past_replica_quota, "autoscaling-bounds"),
        (_off_the_allowlist, "allowed-instance-types"),
        (_past_pool_gpu_quota, "gpus-per-node-pool"),
        (_off_the_licence_allowlist, "licence-allowlist"),
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
