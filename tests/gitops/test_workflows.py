"""The GitHub workflows: lint-clean, pinned, least-privilege, and calling commands that exist.

Proves: actionlint reports nothing for `.github/workflows/`; every third-party action is
pinned by a 40-hex commit with its version in a comment; the triggers are the issue's
(pull_request; push to main on the deploying paths; schedule + manual); deployments run one
job per stack in promotion order, each in its GitHub environment, in a non-cancelling
concurrency group, with OIDC credentials and no stored keys; every `llmops`, `make` and
script invocation in the workflows parses with this repository's real CLI, Makefile and
files, so a renamed flag breaks this test before it breaks CI.
Cannot prove: that GitHub accepts the AWS role or the environments (repository settings),
nor that the pinned commits are the tags they name (no network here).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.cli import build_parser

pytestmark = pytest.mark.gitops

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
ACTION_FILES = sorted(WORKFLOWS.glob("*.yml")) + sorted((REPO / ".github" / "actions").glob("*/action.yml"))
PINNED = re.compile(r"^\s*(?:-\s*)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*v\d+\.\d+\.\d+\s*$")


def load(name: str) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads a bare `on` as true
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def run_lines() -> list[tuple[str, str]]:
    """(file, command line) for every line of every `run:` block."""
    out = []
    for path in ACTION_FILES:
        data = yaml.safe_load(path.read_text())
        jobs = data.get("jobs") or {"action": {"steps": (data.get("runs") or {}).get("steps", [])}}
        for job in jobs.values():
            for step in job.get("steps", []):
                for line in str(step.get("run", "")).splitlines():
                    for part in re.split(r"&&|;", line):
                        if part.strip():
                            out.append((path.name, part.strip()))
    return out


def test_actionlint_finds_nothing() -> None:
    actionlint = REPO / "bin" / "actionlint"
    assert actionlint.is_file(), "bin/actionlint is missing: `make setup` builds it (scripts/build-engine.sh)"
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    shellcheck = {} if shutil.which("shellcheck") else {"SHELLCHECK_OPTS": ""}
    result = subprocess.run(
        [str(actionlint), "-no-color", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **shellcheck},
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_every_third_party_action_is_pinned_by_commit_with_its_version() -> None:
    seen = 0
    for path in ACTION_FILES:
        for line in path.read_text().splitlines():
            if re.match(r"^\s*(-\s*)?uses:", line) and "uses: ./" not in line:
                seen += 1
                assert PINNED.match(line), f"{path.name}: not pinned by a commit sha with a # vX.Y.Z comment: {line}"
    assert seen >= 10


def test_no_stored_cloud_keys_anywhere() -> None:
    for path in ACTION_FILES:
        text = path.read_text()
        for forbidden in ("aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY", "PULUMI_ACCESS_TOKEN"):
            assert forbidden not in text, f"{path.name} mentions {forbidden}"


def test_triggers() -> None:
    assert set(load("pr.yml")["on"]) == {"pull_request"}
    push = load("deploy.yml")["on"]["push"]
    assert push["branches"] == ["main"]
    for path in ("models/**", "stacks/**", "components/**", "policies/**", "llmops/**", "__main__.py"):
        assert path in push["paths"]
    drift = load("drift.yml")["on"]
    assert set(drift) == {"schedule", "workflow_dispatch"} and drift["schedule"][0]["cron"]


def test_deploy_runs_one_guarded_job_per_stack_in_promotion_order() -> None:
    jobs = load("deploy.yml")["jobs"]
    previous = "plan"
    for stack in ("dev", "staging", "prod"):
        job = jobs[stack]
        assert job["environment"] == stack
        assert job["concurrency"] == {"group": f"deploy-{stack}", "cancel-in-progress": False}
        assert job["permissions"]["id-token"] == "write"
        needs = job["needs"] if isinstance(job["needs"], list) else [job["needs"]]
        assert previous in needs and "plan" in needs
        assert f"'{stack}'" in job["if"] and "needs.plan.outputs.stacks" in job["if"]
        aws = [s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")]
        assert aws and aws[0]["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
        deploy = [s["run"] for s in job["steps"] if "llmops ci deploy" in str(s.get("run", ""))]
        assert deploy == [f'llmops ci deploy --base "$BEFORE" --head "$GITHUB_SHA" --stack {stack}']
        previous = stack
    assert "failure" in jobs["prod"]["if"] and "needs.staging.result" in jobs["prod"]["if"]
    # Staging's evaluation records reach the prod job (another runner) before its deploy.
    records = ".state/evaluations/records/"
    (kept,) = [s for s in jobs["staging"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert kept["with"]["name"] == "evaluation-records" and kept["with"]["path"] == records
    steps = jobs["prod"]["steps"]
    (got,) = [i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("actions/download-artifact@")]
    assert steps[got]["with"] == {"name": "evaluation-records", "path": records}
    assert got < next(i for i, s in enumerate(steps) if "llmops ci deploy" in str(s.get("run", "")))
    assert load("deploy.yml")["permissions"] == {"contents": "read"}


def test_pr_previews_with_pulumi_actions_under_the_policy_pack_and_comments() -> None:
    pr = load("pr.yml")
    preview = pr["jobs"]["preview"]
    assert preview["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    action = next(s for s in preview["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@"))
    assert action["with"]["command"] == "preview"
    assert action["with"]["comment-on-pr"] is True
    assert action["with"]["policyPacks"] == "policies/pack"
    assert action["with"]["policyPackConfigs"] == "${{ matrix.policy_config }}"
    assert preview["permissions"]["id-token"] == "write"
    commands = [str(s.get("run", "")) for s in steps(pr)]
    assert "llmops registry validate" in commands and "make test" in commands
    assert any(c.startswith("llmops ci pr-comment") for c in commands)
    assert any("llmops ci plan" in c for c in commands)


def test_drift_refreshes_each_stack_and_reports_an_issue() -> None:
    job = load("drift.yml")["jobs"]["drift"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "staging", "prod"]
    assert job["concurrency"]["group"] == "deploy-${{ matrix.stack }}"
    assert job["permissions"]["issues"] == "write"
    runs = [str(s.get("run", "")) for s in job["steps"]]
    assert any(r.startswith("llmops ci drift") for r in runs)
    issue = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/github-script@"))
    assert issue["if"] == "steps.drift.outputs.drift == 'true'"
    assert "issues.create" in issue["with"]["script"] and "issues.update" in issue["with"]["script"]


def test_pr_checks_every_affected_aws_stack_offline_without_credentials() -> None:
    jobs = load("pr.yml")["jobs"]
    policy = jobs["policy"]
    assert policy["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert "permissions" not in policy  # the workflow's contents: read; no OIDC, so forks run it too
    assert not any("configure-aws-credentials" in str(s.get("uses", "")) for s in policy["steps"])
    assert any(str(s.get("run", "")).startswith("llmops ci policy --stack") for s in policy["steps"])
    assert "policy" in jobs["comment"]["needs"]
    assert any("--policy policy" in str(s.get("run", "")) for s in jobs["comment"]["steps"])


def test_review_opens_closes_and_reaps_and_never_cancels_a_close() -> None:
    review = load("review.yml")
    assert review["on"]["pull_request"]["types"] == ["opened", "reopened", "synchronize", "closed"]
    assert "schedule" in review["on"]
    assert review["permissions"] == {"contents": "read"}
    jobs = review["jobs"]
    assert jobs["open"]["concurrency"] == {
        "group": "review-${{ github.event.pull_request.number }}",
        "cancel-in-progress": True,
    }
    assert jobs["close"]["concurrency"]["cancel-in-progress"] is False
    assert jobs["close"]["concurrency"]["group"] != jobs["open"]["concurrency"]["group"]
    assert jobs["reap"]["concurrency"]["cancel-in-progress"] is False
    assert jobs["open"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert jobs["close"]["permissions"] == {"contents": "read"}
    runs = {name: " ".join(str(s.get("run", "")) for s in job["steps"]) for name, job in jobs.items()}
    assert "llmops ci review open" in runs["open"]
    assert "llmops ci review close" in runs["close"]
    assert "llmops ci review reap --open-prs" in runs["reap"]


def test_aws_review_runs_only_where_an_environment_enables_it_and_never_for_forks() -> None:
    jobs = load("review.yml")["jobs"]
    runs = " ".join(str(s.get("run", "")) for s in jobs["aws-environments"]["steps"])
    assert "llmops ci review environments" in runs
    for name, action in (("open-aws", "open"), ("close-aws", "close"), ("reap-aws", "reap")):
        job = jobs[name]
        assert job["needs"] == "aws-environments"
        assert "needs.aws-environments.outputs.environments != '[]'" in job["if"]
        assert (
            job["strategy"]["matrix"]["environment"] == "${{ fromJSON(needs.aws-environments.outputs.environments) }}"
        )
        assert job["environment"] == "${{ matrix.environment }}"  # its OIDC role and backend, as deploy.yml
        assert job["permissions"]["id-token"] == "write"
        assert any("configure-aws-credentials" in str(s.get("uses", "")) for s in job["steps"])
        assert "matrix.environment" in job["concurrency"]["group"]
        text = " ".join(str(s.get("run", "")) for s in job["steps"])
        assert f"llmops ci review {action}" in text and '--environment "$ENVIRONMENT"' in text
    for name in ("open-aws", "close-aws"):
        assert "github.event.pull_request.head.repo.full_name == github.repository" in jobs[name]["if"]
    assert jobs["close-aws"]["concurrency"]["cancel-in-progress"] is False
    assert jobs["reap-aws"]["concurrency"]["cancel-in-progress"] is False
    assert jobs["close-aws"]["concurrency"]["group"] != jobs["open-aws"]["concurrency"]["group"]


def test_every_command_the_workflows_run_exists_here() -> None:
    parser = build_parser()
    makefile = (REPO / "Makefile").read_text()
    checked = 0
    for name, line in run_lines():
        words = shlex.split(line)
        if words[0] == "sudo":
            words = words[1:]
        if words[0] == "llmops":
            # A pull request number where the workflow passes one, a commit or name elsewhere.
            substituted = [re.sub(r"^\$\w+$", "7" if w == "$PR" else "abc123", w) for w in words[1:]]
            parser.parse_args(substituted)  # SystemExit (a failure) on an unknown command or flag
            checked += 1
        elif words[0] == "make":
            for target in words[1:]:
                assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{name}: no make target {target}"
            checked += 1
        elif words[0].startswith("scripts/"):
            assert os.access(REPO / words[0], os.X_OK), f"{name}: {words[0]} is not an executable file"
            checked += 1
    assert checked >= 15
