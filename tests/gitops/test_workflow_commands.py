"""Every `llmops …` line of the workflows, run the way the workflow runs it.

A pull request (#7 from a branch) deploys qwen2.5 7B to staging and tightens llama 3.1 8B's
latency SLO, merged with a merge commit (GitHub's default). Each `llmops` line of a `run:`
step is taken from the workflow file as written and run:
- in its own real `git clone` of that history, checked out as actions/checkout leaves it (the
  merge commit, full history), with `.venv` and `bin/` in place as the setup action's
  `make venv engine` leaves them;
- by bash as GitHub runs a step (`bash --noprofile --norc -eo pipefail`, plus `set -u` so a
  variable the workflow forgot to give fails here rather than passing empty);
- through the installed console script, `.venv/bin/llmops`, found on the PATH that
  .github/actions/setup builds (read from that file: it writes `$GITHUB_PATH`; it never sources
  scripts/env.sh, so neither does this test);
- with only the environment the workflow gives the step: the workflow's, job's and step's
  `env:` with each `${{ … }}` given a realistic value (EXPRESSIONS), GitHub's default
  variables, and nothing inherited from this test's process (no HF_HUB_OFFLINE, no
  PULUMI_CONFIG_PASSPHRASE, no LLMOPS_ROOT).
A step fails here when it exits non-zero, rewrites a committed file, asks the Hugging Face hub
for a model whose config ships in the repository (the run is stopped at the first such request),
or leaves the outputs the next step reads missing.
Lines that need an AWS account or a GitHub token are listed in NOT_RUN with the reason, and the
inventory test fails on any `llmops` line that is in neither list, so a new workflow command is
run here or explicitly excused.
Cannot prove: GitHub's runner image itself, what AWS or GitHub would answer to the lines in
NOT_RUN, or the local review stack with a model to serve (tests/gitops/test_review.py runs it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitops.conftest import GIT_ENV, Repo
from tests.support.project import REPO, copy_project

pytestmark = [pytest.mark.gitops, pytest.mark.timeout(1200)]

GITHUB = REPO / ".github"
SETUP = GITHUB / "actions" / "setup" / "action.yml"
PR_NUMBER = "7"
MODEL_TO_STAGING = "qwen2-5-7b-instruct"
AFFECTED = ["dev", "staging", "prod"]  # what the pull request below touches, in promotion order
RUNNER_PATH = "/usr/local/bin:/usr/bin:/bin"  # the runner image's own PATH, before the setup action
HUB_REQUEST = re.compile(r"requesting \w+ https://huggingface\.co/")
# Shell variables an earlier line of the same `run:` block sets from a command that needs a
# GitHub token (`gh pr list …`): the value it would give.
SHELL_VALUES = {"open_prs": f"[{PR_NUMBER}]"}

# The `llmops` lines not run here: (workflow file, job, command) -> why.
NOT_RUN: dict[tuple[str, str, str], str] = {
    **{
        ("deploy.yml", stack, "llmops ci deploy"): "`pulumi up` of an AWS stack: an AWS role (OIDC) and the S3 backend"
        for stack in AFFECTED
    },
    **{
        ("deploy.yml", stack, "llmops experiment smoke"): "invokes the stack's endpoints (AWS role, S3 backend)"
        for stack in AFFECTED
    },
    **{
        ("deploy.yml", f"{env}-models", "llmops ci deploy"): "`pulumi up` of an AWS model stack: its role and backend"
        for env in AFFECTED
    },
    **{
        ("deploy.yml", f"{env}-models", "llmops experiment smoke"): "invokes a model stack's endpoint (AWS role)"
        for env in AFFECTED
    },
    ("pr.yml", "preview", "llmops ci select"): "selects (a model stack: creates) an AWS stack in the S3 backend",
    ("drift.yml", "drift", "llmops ci drift"): "refresh-previews AWS stacks: an AWS role and the S3 backend",
    ("experiment.yml", "advance", "llmops experiment report"): "reads the canaries' metrics from CloudWatch (AWS role)",
    ("experiment.yml", "advance", "llmops experiment advance"): "judges on CloudWatch metrics (AWS role)",
    ("review.yml", "open-aws", "llmops ci review open"): "creates pr-<N>-<env> on AWS: the environment's role",
    (
        "rightsize.yml",
        "propose",
        "llmops rightsize",
    ): "reads load from CloudWatch and the EKS cluster's Prometheus (AWS role)",
    ("adopt.yml", "adopt", "llmops train adopt"): "reads the stack's state and the approved package (AWS role)",
    ("adopt.yml", "pending", "llmops train adopt"): "reads the stacks' state and approved packages (AWS role)",
    ("review.yml", "close-aws", "llmops ci review close"): "destroys pr-<N>-<env> on AWS: the environment's role",
    ("review.yml", "reap-aws", "llmops ci review reap"): "lists and destroys AWS review stacks: the role",
}


@dataclass(frozen=True)
class Line:
    """One `llmops` command line of a workflow or action, with what its step gets."""

    file: str
    job: str
    step: str
    command: str
    prelude: tuple[str, ...]  # `git config` lines before it in the same block, run before it
    env: tuple[dict[str, Any], ...]  # workflow, job and step `env:`, outermost first
    uses_setup: bool

    @property
    def key(self) -> tuple[str, str, str]:
        words = shlex.split(self.command)
        end = next((i for i, w in enumerate(words) if "$" in w or w.startswith("-")), len(words))
        return self.file, self.job, " ".join(words[:end])


def _load(path: Path) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def _block_lines(run: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(llmops command, the `git config` lines before it) for each command in a `run:` block."""
    prelude: list[str] = []
    for raw in run.splitlines():
        for part in (p.strip() for p in re.split(r"&&|;", raw)):
            if part.startswith("git config "):
                prelude.append(part)
            elif part.startswith("llmops "):
                yield part, tuple(prelude)


def _uses_setup(steps: list[dict[str, Any]], index: int) -> bool:
    return any(s.get("uses") == "./.github/actions/setup" for s in steps[:index])


def workflow_lines() -> list[Line]:
    lines: list[Line] = []
    callers: dict[str, list[tuple[tuple[dict[str, Any], dict[str, Any]], bool]]] = {}
    for path in sorted((GITHUB / "workflows").glob("*.yml")):
        workflow = _load(path)
        for job_name, job in workflow["jobs"].items():
            steps = job.get("steps", [])
            for i, step in enumerate(steps):
                if str(step.get("uses", "")).startswith("./.github/actions/"):
                    scopes = (workflow.get("env") or {}, job.get("env") or {})
                    callers.setdefault(step["uses"], []).append((scopes, _uses_setup(steps, i)))
                for command, prelude in _block_lines(str(step.get("run", ""))):
                    env = (workflow.get("env") or {}, job.get("env") or {}, step.get("env") or {})
                    name = str(step.get("name") or step.get("id") or command)
                    lines.append(Line(path.name, job_name, name, command, prelude, env, _uses_setup(steps, i)))
    # A composite action's steps run inside the job that uses it: that job's environment.
    for path in sorted((GITHUB / "actions").glob("*/action.yml")):
        uses = f"./.github/actions/{path.parent.name}"
        if uses not in callers:
            continue
        (scopes, setup), *others = callers[uses]
        for step in yaml.safe_load(path.read_text())["runs"].get("steps", []):
            for command, prelude in _block_lines(str(step.get("run", ""))):
                assert all(s == scopes for s, _ in others), f"{uses}: its callers give different environments"
                env = (*scopes, step.get("env") or {})
                ok = setup and all(s for _, s in others)
                lines.append(Line(f"actions/{path.parent.name}", "-", step.get("name", ""), command, prelude, env, ok))
    return lines


def setup_action() -> tuple[list[str], dict[str, str]]:
    """What .github/actions/setup leaves for the later steps: $GITHUB_PATH entries (each one
    prepended, so the last written comes first) and $GITHUB_ENV variables. Anything else it
    does to the environment of later steps fails here, so this test learns about it."""
    paths: list[str] = []
    env: dict[str, str] = {}
    for step in yaml.safe_load(SETUP.read_text())["runs"]["steps"]:
        for line in str(step.get("run", "")).splitlines():
            if m := re.fullmatch(r'\s*echo "([^"]+)" >> "\$GITHUB_PATH"\s*', line):
                paths.insert(0, m.group(1))
            elif m := re.fullmatch(r'\s*echo "(\w+)=([^"]*)" >> "\$GITHUB_ENV"\s*', line):
                env[m.group(1)] = m.group(2)
            else:
                assert "GITHUB_PATH" not in line and "GITHUB_ENV" not in line, f"setup: unread line {line!r}"
    return paths, env


# --------------------------------------------------------------------------- the repository


@dataclass
class History:
    origin: Path
    base: str  # main before the pull request (github.event.pull_request.base.sha, github.event.before)
    feature: str  # the pull request's head
    merge: str  # the merge commit: refs/pull/7/merge, and main after the merge (github.sha)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    root = tmp_path_factory.mktemp("workflow-commands") / "origin"
    copy_project(root)
    repo = Repo(root)
    repo.git("init", "-q", "-b", "main")
    (root / ".git" / "info" / "exclude").write_text(".venv\nbin\n.pulumi/\n.state/\n__pycache__/\n")
    base = repo.commit("the project")
    repo.git("checkout", "-q", "-b", "feature")
    qwen = root / "models" / f"{MODEL_TO_STAGING}.yaml"
    text = qwen.read_text()
    assert "\n  dev: {}\n" in text and "\n  staging:" not in text, "the scenario expects qwen in dev alone"
    llama = root / "models" / "llama-3-1-8b-instruct.yaml"
    slo = re.sub(r"p95_latency_ms: (\d+)", lambda m: f"p95_latency_ms: {int(m.group(1)) - 500}", llama.read_text())
    feature = repo.commit(
        "feat(models): qwen2.5 7B to staging, llama 3.1 8B's latency SLO 500 ms tighter",
        {
            f"models/{MODEL_TO_STAGING}.yaml": text.replace("\n  dev: {}\n", "\n  dev: {}\n  staging: {}\n"),
            "models/llama-3-1-8b-instruct.yaml": slo,
        },
    )
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "feature", "-m", f"Merge pull request #{PR_NUMBER} from acme/feature")
    merge = repo.head()
    repo.git("update-ref", f"refs/pull/{PR_NUMBER}/merge", merge)
    return History(root, base, feature, merge)


@dataclass
class Checkout:
    root: Path
    runner: Path  # RUNNER_TEMP: the step's GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, …

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.root, capture_output=True, text=True, check=True, env={**os.environ, **GIT_ENV}
        ).stdout.strip()

    def outputs(self) -> dict[str, str]:
        """The step's outputs, as GitHub parses $GITHUB_OUTPUT (NAME<<DELIMITER blocks or NAME=VALUE)."""
        out: dict[str, str] = {}
        lines = (self.runner / "output").read_text().splitlines()
        i = 0
        while i < len(lines):
            if "<<" in lines[i]:
                name, delimiter = lines[i].split("<<", 1)
                end = lines.index(delimiter, i + 1)
                out[name] = "\n".join(lines[i + 1 : end])
                i = end + 1
            else:
                name, _, value = lines[i].partition("=")
                out[name] = value
                i += 1
        return out


def checkout(history: History, dest: Path, ref: str) -> Checkout:
    """`actions/checkout` with fetch-depth 0, then what `make venv engine` leaves (.venv, bin)."""
    subprocess.run(["git", "clone", "-q", str(history.origin), str(dest / "work")], check=True, env=os.environ)
    c = Checkout(dest / "work", dest / "runner")
    c.git("fetch", "-q", "origin", f"+refs/pull/{PR_NUMBER}/merge:refs/remotes/pull/{PR_NUMBER}/merge")
    c.git("checkout", "-q", ref)
    for link in (".venv", "bin"):
        os.symlink(REPO / link, c.root / link)
    c.runner.mkdir()
    for name in ("output", "summary", "env", "path"):
        (c.runner / name).touch()
    return c


# --------------------------------------------------------------------------- running a step

EVENTS = {"pr.yml": "pull_request", "review.yml": "pull_request", "deploy.yml": "push"}


def expressions(history: History, c: Checkout, matrix: dict[str, str], inputs: dict[str, str]) -> dict[str, str]:
    """Realistic values for the `${{ … }}` the run lines' environments use."""
    return {
        "github.event.pull_request.base.sha": history.base,
        "github.event.before": history.base,
        "github.event.pull_request.number": PR_NUMBER,
        "github.workspace": str(c.root),
        "github.token": "ghs_the-job-token-unused-by-these-commands",
        "vars.PULUMI_BACKEND_URL": "s3://acme-pulumi-state/llmops",
        "vars.REVIEW_BACKEND_URL": "",  # unset: review state lives in the job's checkout (review.yml)
        **{f"matrix.{k}": v for k, v in matrix.items()},
        **{f"inputs.{k}": v for k, v in inputs.items()},
    }


def substitute(value: Any, known: dict[str, str], where: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) not in known:
            pytest.fail(f"{where}: give `${{{{ {m.group(1)} }}}}` a realistic value in expressions()")
        return known[m.group(1)]

    return re.sub(r"\$\{\{\s*(.+?)\s*\}\}", one, str(value))


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    hub: str | None  # the first request to the Hugging Face hub, when the run was stopped for one

    def explain(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"


def run_step(
    line: Line,
    history: History,
    c: Checkout,
    *,
    matrix: dict[str, str] | None = None,
    inputs: dict[str, str] | None = None,
    timeout: float = 600,
) -> Ran:
    known = expressions(history, c, matrix or {}, inputs or {})
    paths, setup_env = setup_action()
    event = EVENTS.get(line.file, "push")
    env = {
        "HOME": str(c.runner / "home"),
        "PATH": os.pathsep.join([*(p.replace("$GITHUB_WORKSPACE", str(c.root)) for p in paths), RUNNER_PATH]),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_REPOSITORY": "acme/llmops",
        "GITHUB_WORKSPACE": str(c.root),
        "GITHUB_SHA": history.merge,
        "GITHUB_REF_NAME": f"{PR_NUMBER}/merge" if event == "pull_request" else "main",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "1",
        "GITHUB_OUTPUT": str(c.runner / "output"),
        "GITHUB_STEP_SUMMARY": str(c.runner / "summary"),
        "GITHUB_ENV": str(c.runner / "env"),
        "GITHUB_PATH": str(c.runner / "path"),
        "RUNNER_TEMP": str(c.runner),
        **setup_env,
        **SHELL_VALUES,
    }
    (c.runner / "home").mkdir(exist_ok=True)
    for scope in line.env:
        env.update({k: substitute(v, known, f"{line.file} {line.job} env {k}") for k, v in scope.items()})
    script = c.runner / "step.sh"
    script.write_text("set -u\n" + "\n".join([*line.prelude, line.command]) + "\n")
    stdout = c.runner / "stdout"
    with stdout.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=c.root,
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # so a stop ends the command's own children too
        )
        timer = threading.Timer(timeout, _stop, (proc,))
        timer.start()
        err, hub = [], None
        assert proc.stderr is not None
        for text in proc.stderr:
            err.append(text)
            if HUB_REQUEST.search(text):
                hub = text.strip()
                _stop(proc)
                break
        proc.wait()
        timer.cancel()
    return Ran(proc.returncode, stdout.read_text(), "".join(err), hub)


def _stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.killpg(proc.pid, signal.SIGKILL)


def committed_files_untouched(c: Checkout) -> None:
    changed = c.git("status", "--porcelain", "--untracked-files=no")
    assert not changed, f"the step rewrote committed files:\n{changed}"


def ran_ok(line: Line, ran: Ran) -> None:
    assert ran.hub is None, f"{line.command}: asked the hub for a model whose config ships here: {ran.hub}"
    assert ran.returncode == 0, f"{line.file} {line.job} `{line.command}`: {ran.explain()}"


def find(file: str, job: str, command: str) -> Line:
    (line,) = [x for x in workflow_lines() if x.key == (file, job, command)]
    return line


# --------------------------------------------------------------------------- the tests


RUN: dict[tuple[str, str, str], str] = {
    ("pr.yml", "test", "llmops registry validate"): "test_registry_validate",
    ("deploy.yml", "plan", "llmops registry validate"): "test_registry_validate",
    ("pr.yml", "plan", "llmops ci plan"): "test_ci_plan",
    ("deploy.yml", "plan", "llmops ci plan"): "test_ci_plan",
    ("pr.yml", "policy", "llmops ci policy"): "test_ci_policy",
    ("pr.yml", "comment", "llmops ci pr-comment"): "test_ci_pr_comment",
    ("review.yml", "open", "llmops ci review open"): "test_review_open_close_reap",
    ("review.yml", "close", "llmops ci review close"): "test_review_open_close_reap",
    ("review.yml", "reap", "llmops ci review reap"): "test_review_open_close_reap",
    ("review.yml", "aws-environments", "llmops ci review environments"): "test_review_environments",
    ("actions/revert", "-", "llmops rollback"): "test_revert_action_rollback",
}


def test_every_workflow_llmops_line_is_run_here_or_excused() -> None:
    lines = workflow_lines()
    keys = {line.key for line in lines}
    assert len(lines) >= 20, [line.command for line in lines]
    unaccounted = keys - set(RUN) - set(NOT_RUN)
    assert not unaccounted, f"run these here (RUN) or say why they cannot be (NOT_RUN): {sorted(unaccounted)}"
    assert not set(RUN) & set(NOT_RUN)
    assert all(callable(globals().get(test)) for test in RUN.values())
    stale = (set(RUN) | set(NOT_RUN)) - keys
    assert not stale, f"no longer in the workflows: {sorted(stale)}"
    for line in lines:  # the console script is on PATH only after the setup action
        assert line.uses_setup, f"{line.file} {line.job}: `{line.command}` runs before ./.github/actions/setup"
    paths, _ = setup_action()
    assert "$GITHUB_WORKSPACE/.venv/bin" in paths, "the setup action no longer puts the console scripts on PATH"


@pytest.mark.parametrize("file, job", [("pr.yml", "test"), ("deploy.yml", "plan")])
def test_registry_validate(history: History, tmp_path: Path, file: str, job: str) -> None:
    c = checkout(history, tmp_path, history.merge)
    ran = run_step(find(file, job, "llmops registry validate"), history, c)
    ran_ok(find(file, job, "llmops registry validate"), ran)
    assert "registry OK" in ran.stdout
    committed_files_untouched(c)


@pytest.mark.parametrize("file", ["pr.yml", "deploy.yml"])
def test_ci_plan(history: History, tmp_path: Path, file: str) -> None:
    c = checkout(history, tmp_path, history.merge)
    line = find(file, "plan", "llmops ci plan")
    ran = run_step(line, history, c)
    ran_ok(line, ran)
    outputs = c.outputs()  # what the policy, preview and deploy jobs' `needs.plan.outputs` read
    assert json.loads(outputs["stacks"]) == AFFECTED
    matrix = json.loads(outputs["matrix"])["include"]
    assert [m["stack"] for m in matrix] == AFFECTED and all((c.root / m["policy_config"]).is_file() for m in matrix)
    assert outputs["any"] == "true"
    # No environment here is split: its model stacks' matrices are empty, and say so.
    for env in AFFECTED:
        assert json.loads(outputs[f"models_{env}"]) == {"include": []} and outputs[f"any_models_{env}"] == "false"
    assert "Promotion order:" in (c.runner / "summary").read_text()
    committed_files_untouched(c)


@pytest.mark.parametrize("stack", AFFECTED)
def test_ci_policy(history: History, tmp_path: Path, stack: str) -> None:
    c = checkout(history, tmp_path, history.merge)
    line = find("pr.yml", "policy", "llmops ci policy")
    ran = run_step(line, history, c, matrix={"stack": stack, "environment": stack})
    ran_ok(line, ran)
    report = json.loads((c.root / "policy" / f"{stack}.policy.json").read_text())  # the uploaded artifact
    assert report["stack"] == stack
    committed_files_untouched(c)


def test_ci_pr_comment(history: History, tmp_path: Path) -> None:
    """The comment job after the policy jobs (their artifacts, whatever they left) and no previews
    (the preview job needs an AWS role; for a fork's pull request it is skipped)."""
    c = checkout(history, tmp_path, history.merge)
    policy = find("pr.yml", "policy", "llmops ci policy")
    for stack in AFFECTED:
        run_step(policy, history, c, matrix={"stack": stack, "environment": stack})
    line = find("pr.yml", "comment", "llmops ci pr-comment")
    ran = run_step(line, history, c)
    ran_ok(line, ran)
    body = (c.root / "comment.md").read_text()
    assert body.startswith("<!-- llmops:pr-comment -->")
    for stack in AFFECTED:
        assert f"| {stack} |" in body and f"**{stack}**: no preview was run" in body
    committed_files_untouched(c)


@pytest.mark.engine
def test_review_open_close_reap(history: History, tmp_path: Path) -> None:
    """The local review jobs on a pull request that changes no model the local target serves:
    open starts nothing and says so in the comment; close and reap find nothing to destroy."""
    c = checkout(history, tmp_path, history.merge)
    line = find("review.yml", "open", "llmops ci review open")
    ran = run_step(line, history, c)
    ran_ok(line, ran)
    body = (c.root / "review.md").read_text()
    assert body.startswith("<!-- llmops:review -->") and f"pr-{PR_NUMBER}" in body
    assert "changes no model the local target serves" in body
    assert c.outputs()["stack"] == f"pr-{PR_NUMBER}"
    for job in ("close", "reap"):
        line = find("review.yml", job, f"llmops ci review {job}")
        ran = run_step(line, history, c)
        ran_ok(line, ran)
    committed_files_untouched(c)


def test_review_environments(history: History, tmp_path: Path) -> None:
    c = checkout(history, tmp_path, history.merge)
    line = find("review.yml", "aws-environments", "llmops ci review environments")
    ran = run_step(line, history, c)
    ran_ok(line, ran)
    enabled = json.loads(c.outputs()["environments"])  # the open-aws matrix
    assert enabled == json.loads(ran.stdout) and "staging" in enabled  # stacks/Pulumi.staging.yaml enables it
    committed_files_untouched(c)


@pytest.mark.parametrize(
    "merged",
    ["merge commit", "squash"],
)
def test_revert_action_rollback(history: History, tmp_path: Path, merged: str) -> None:
    """The revert action after staging's failed smoke check: `llmops rollback` commits the revert
    of staging's last registry change (the pull request), on main as deploy.yml checks it out."""
    c = checkout(history, tmp_path, "main")
    if merged == "squash":  # the pull request as one commit on main (squash or rebase merge)
        c.git("reset", "-q", "--hard", history.feature)
    before = c.git("rev-parse", "HEAD")
    line = find("actions/revert", "-", "llmops rollback")
    staging = yaml.safe_load((GITHUB / "workflows" / "deploy.yml").read_text())["jobs"]["staging"]["steps"]
    assert {"stack": "staging"} in [s.get("with") for s in staging if s.get("uses") == "./.github/actions/revert"]
    ran = run_step(line, history, c, inputs={"stack": "staging"})
    ran_ok(line, ran)
    assert c.git("rev-parse", "HEAD~1") == before
    assert c.git("log", "-1", "--format=%s").startswith("revert(models): roll staging back")
    served = yaml.safe_load((c.root / "models" / f"{MODEL_TO_STAGING}.yaml").read_text())["deployments"]
    assert "staging" not in served and "dev" in served
    committed_files_untouched(c)
