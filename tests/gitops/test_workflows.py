"""The GitHub workflows: lint-clean, pinned, least-privilege, and calling commands that exist.

Proves: actionlint reports nothing for `.github/workflows/`; every third-party action is
pinned by a 40-hex commit with its version in a comment; the triggers are the issue's
(pull_request; push to main on the deploying paths; schedule + manual); deployments run one
job per stack in promotion order, each in its GitHub environment, in a non-cancelling
concurrency group, with OIDC credentials and no stored keys; every `llmops`, `make` and
script invocation in the workflows parses with this repository's real CLI, Makefile and
files, so a renamed flag breaks this test before it breaks CI; no job a pull request from a
fork can start runs anywhere but on a GitHub-hosted runner (a fresh machine per job): every
job of a pull_request(_target) workflow whose `runs-on` is not a literal GitHub-hosted label
(a self-hosted label, a runner group, an expression such as `vars.REVIEW_RUNNER`) carries
the fork guard, or excludes pull request events, as a top-level `&&` term of its `if:`;
every workflow that runs `llmops` sets HF_HUB_OFFLINE for all its jobs.
Cannot prove: that GitHub accepts the AWS role or the environments (repository settings),
nor that the pinned commits are the tags they name (no network here), nor what a runner
label names on the organisation's side.
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
# The images GitHub hosts: a fresh virtual machine per job, gone when it ends.
GITHUB_HOSTED = re.compile(r"^(ubuntu|windows|macos)-(latest|\d[\w.-]*)$")
PR_EVENTS = ("pull_request", "pull_request_target")
FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"


def load(name: str) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads a bare `on` as true
    return data


def triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow["on"]
    return {on} if isinstance(on, str) else set(on)


def hosted(runs_on: Any) -> bool:
    """A literal GitHub-hosted label; an expression, a self-hosted label or a group is not."""
    labels = [runs_on] if isinstance(runs_on, str) else runs_on
    return isinstance(labels, list) and len(labels) == 1 and bool(GITHUB_HOSTED.match(str(labels[0])))


def _top_level(expression: str, operator: str) -> list[str]:
    """`expression` split at `operator` outside parentheses and quotes."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(expression):
        c = expression[i]
        if c == "'":
            quoted = not quoted  # GitHub escapes a quote as '', which toggles twice
        elif not quoted and c in "()":
            depth += 1 if c == "(" else -1
        elif not quoted and depth == 0 and expression.startswith(operator, i):
            parts.append(expression[start:i])
            start = i = i + len(operator)
            continue
        i += 1
    return [*parts, expression[start:]]


def _bare(expression: str) -> str:
    """Without `${{ }}`, outer parentheses around the whole and repeated whitespace."""
    text = " ".join(expression.split())
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2].strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for c in re.sub(r"'[^']*'", "", text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth < 0:
            return False
    return depth == 0


def fork_safe(condition: Any, pr_events: set[str]) -> bool:
    """True when `condition` is false for every pull request from a fork, read structurally: each
    top-level `||` branch has, as a top-level `&&` term, the fork guard, `github.event_name !=` each
    pull request event of the workflow, or `github.event_name ==` an event that is not one."""
    guards = {FORK_GUARD, " == ".join(reversed(FORK_GUARD.split(" == ")))}
    for branch in _top_level(_bare(str(condition or "")), "||"):
        terms = {_bare(t) for t in _top_level(_bare(branch), "&&")}
        others = {m.group(1) for t in terms if (m := re.fullmatch(r"github\.event_name == '(\w+)'", t))}
        if terms & guards or all(f"github.event_name != '{e}'" in terms for e in pr_events):
            continue
        if others - set(PR_EVENTS):
            continue
        return False
    return True


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


def test_deploy_runs_each_environments_model_stacks_as_a_matrix_promoted_per_model() -> None:
    jobs = load("deploy.yml")["jobs"]
    plan_outputs = jobs["plan"]["outputs"]
    previous = None
    for env in ("dev", "staging", "prod"):
        job = jobs[f"{env}-models"]
        assert plan_outputs[f"models_{env}"] == f"${{{{ steps.plan.outputs.models_{env} }}}}"
        assert job["strategy"] == {
            "fail-fast": False,
            "matrix": f"${{{{ fromJSON(needs.plan.outputs.models_{env}) }}}}",
        }
        assert job["environment"] == env and job["permissions"]["id-token"] == "write"
        assert job["concurrency"] == {"group": "deploy-${{ matrix.stack }}", "cancel-in-progress": False}
        # After its environment's platform stack; never blocked as a whole by an earlier model's failure.
        assert env in job["needs"] and f"needs.{env}.result != 'failure'" in job["if"]
        assert f"needs.plan.outputs.any_models_{env} == 'true'" in job["if"]
        if previous is not None:
            assert previous in job["needs"] and f"needs.{previous}.result" not in job["if"]
        steps = job["steps"]
        names = [str(s.get("run", s.get("uses", ""))) for s in steps]
        deploy = next(i for i, s in enumerate(steps) if "llmops ci deploy" in str(s.get("run", "")))
        assert (
            "--deployed .state/deployed" in steps[deploy]["run"]
            and steps[deploy]["env"]["STACK"] == "${{ matrix.stack }}"
        )
        smoke = next(i for i, s in enumerate(steps) if s.get("id") == "smoke")
        record = next(i for i, s in enumerate(steps) if s.get("with", {}).get("name") == "deployed-${{ matrix.stack }}")
        assert deploy < smoke < record, names  # recorded only once deployed and smoke-checked
        if previous is not None:
            got = next(i for i, s in enumerate(steps) if s.get("with", {}).get("pattern") == "deployed-*")
            assert got < deploy and steps[got]["with"]["merge-multiple"] is True
        previous = f"{env}-models"


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
    # GitHub gives a fork's pull request no OIDC token and a read-only GITHUB_TOKEN: no preview,
    # and the comment goes to the job summary instead of the pull request.
    assert fork_safe(preview["if"], {"pull_request"}) and "needs.plan.outputs.any == 'true'" in preview["if"]
    comment = pr["jobs"]["comment"]["steps"]
    assert any('>> "$GITHUB_STEP_SUMMARY"' in str(s.get("run", "")) for s in comment)
    (post,) = [s for s in comment if str(s.get("uses", "")).startswith("actions/github-script@")]
    assert post["if"] == FORK_GUARD
    commands = [str(s.get("run", "")) for s in steps(pr)]
    # Served versions keep their weights: validation compares with the PR's base, not the merged tree.
    assert 'llmops registry validate --base "$BASE_SHA"' in commands and "make test" in commands
    assert pr["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
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


def test_no_job_a_fork_can_start_runs_on_a_machine_that_outlives_it() -> None:
    guarded = set()
    for path in sorted(WORKFLOWS.glob("*.yml")):
        workflow = load(path.name)
        pr_events = triggers(workflow) & set(PR_EVENTS)
        if not pr_events:
            continue
        for name, job in workflow["jobs"].items():
            if hosted(job.get("runs-on")):
                continue
            assert fork_safe(job.get("if"), pr_events), (
                f"{path.name}: job {name!r} runs on {job.get('runs-on')!r}, which may be a machine that outlives "
                f"the job, and a pull request from a fork can start it: add `&& {FORK_GUARD}` to its `if:` "
                f"(or run it on a GitHub-hosted label such as ubuntu-24.04)"
            )
            guarded.add((path.name, name))
    # The review jobs on REVIEW_RUNNER; reap is safe because it never runs for a pull request.
    assert {("review.yml", "open"), ("review.yml", "close"), ("review.yml", "reap")} <= guarded


OPEN_BEFORE = "github.event_name == 'pull_request' && github.event.action != 'closed'"


@pytest.mark.parametrize(
    ("runs_on", "condition", "events", "safe"),
    [
        # review.yml's open job as it was: any fork's code on REVIEW_RUNNER.
        ("${{ vars.REVIEW_RUNNER || 'ubuntu-24.04' }}", OPEN_BEFORE, {"pull_request"}, False),
        ("${{ vars.REVIEW_RUNNER || 'ubuntu-24.04' }}", f"{OPEN_BEFORE} && {FORK_GUARD}", {"pull_request"}, True),
        ("${{ vars.REVIEW_RUNNER }}", f"${{{{ ({FORK_GUARD}) && {OPEN_BEFORE} }}}}", {"pull_request"}, True),
        ("self-hosted", f"({FORK_GUARD}) && (github.event.action != 'closed')", {"pull_request"}, True),
        (["self-hosted", "linux"], None, {"pull_request"}, False),
        ({"group": "gpu"}, "always()", {"pull_request"}, False),
        # The guard on one side of an `||` guards nothing.
        ("self-hosted", f"github.event.action == 'closed' || {FORK_GUARD}", {"pull_request"}, False),
        ("self-hosted", f"!({FORK_GUARD})", {"pull_request"}, False),
        ("self-hosted", "github.event_name != 'pull_request'", {"pull_request"}, True),
        ("self-hosted", "github.event_name != 'pull_request'", {"pull_request", "pull_request_target"}, False),
        ("self-hosted", "github.event_name == 'schedule' && always()", {"pull_request"}, True),
        ("self-hosted", "contains(github.event_name, 'pull_request') == false", {"pull_request"}, False),
    ],
)
def test_the_fork_guard_check_reads_runners_and_conditions(
    runs_on: Any, condition: str | None, events: set[str], safe: bool
) -> None:
    assert not hosted(runs_on)
    assert fork_safe(condition, events) is safe
    assert hosted("ubuntu-24.04") and hosted(["macos-14"]) and not hosted("ubuntu-24.04-gpu-runner ${{ x }}")


def test_every_workflow_that_runs_llmops_keeps_off_the_model_hub() -> None:
    """Sizing reads the shipped configs; HF_HUB_OFFLINE makes a config that is not shipped an
    error in CI instead of a fetch of a gated repository without a token."""
    workflows = {path.name for path in WORKFLOWS.glob("*.yml")}
    running = {name for name, line in run_lines() if line.startswith("llmops ") and name in workflows}
    assert {"pr.yml", "deploy.yml", "drift.yml", "review.yml", "experiment.yml"} <= running
    for name in sorted(running):
        assert str(load(name).get("env", {}).get("HF_HUB_OFFLINE")) == "1", f"{name}: no workflow-level HF_HUB_OFFLINE"
