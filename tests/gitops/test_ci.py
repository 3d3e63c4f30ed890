"""`llmops ci`: the pieces the workflows run, short of the Pulumi engine itself.

Proves: results are read from the engine's events as the Automation API types them
(changes, changed resources, policy violations by level) and from the console text the preview action
returns; `deploy` goes stack by stack in plan order, previews before every update and
stops at the first failed preview (no update of that stack or any later one) or update;
`ci plan` writes the step outputs the workflows read; the PR comment carries the plan,
each stack's preview summary and the monthly cost at the base and at the head, computed
from throwaway worktrees that are removed afterwards.
Cannot prove: what the real engine does (tests/gitops/test_e2e_local.py runs it on the
local target), nor anything about AWS.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pulumi.automation import EngineEvent

from llmops.ci import CiError, RunResult, Violation, deploy, load_previews, parse_preview_text
from llmops.cli import main
from llmops.cost import costs
from llmops.plan import AffectedStack, compute_plan
from llmops.promote import promote
from tests.gitops.conftest import Repo

pytestmark = pytest.mark.gitops

REPO = Path(__file__).resolve().parents[2]

EVENTS = [
    {"sequence": 0, "preludeEvent": {"config": {}}},
    {
        "resourcePreEvent": {
            "metadata": {"op": "same", "urn": "urn:pulumi:dev::llmops::pulumi:pulumi:Stack::llmops-dev"}
        }
    },
    {"resourcePreEvent": {"metadata": {"op": "update", "urn": "urn:pulumi:dev::llmops::llmops:x:Endpoint::chat"}}},
    {"resourcePreEvent": {"metadata": {"op": "create", "urn": "urn:pulumi:dev::llmops::llmops:x:Config::chat-v2"}}},
    {
        "policyEvent": {
            "resourceUrn": "urn:pulumi:dev::llmops::llmops:x:Endpoint::chat",
            "message": "instance type ml.p5.48xlarge is not allowed in dev",
            "policyName": "allowed-instance-types",
            "policyPackName": "llmops",
            "enforcementLevel": "mandatory",
        }
    },
    {"policyEvent": {"message": "no alarm email", "policyName": "alarms", "enforcementLevel": "warning"}},
    {"summaryEvent": {"resourceChanges": {"same": 1, "update": 1, "create": 1}, "isPreview": True}},
]

PREVIEW_TEXT = """\
Previewing update (staging):
     Type                                 Name                 Plan       Info
     pulumi:pulumi:Stack                  llmops-staging
 ~   └─ llmops:endpoint:ModelEndpoint     llmops-chat          update     [diff: ~variants]

Policies:
    ❌ llmops@v0.1.0 (local: policies/pack)
        - [mandatory] [severity: high]  allowed-instance-types  (llmops:endpoint:ModelEndpoint: llmops-chat)
          instance type ml.p5.48xlarge is not allowed in staging
        - [advisory]  alarm-email  (llmops:platform:Platform: llmops)
          no alarm email

Resources:
    ~ 1 to update
    + 2 to create
    14 unchanged
"""


def test_engine_events_give_changes_urns_and_violations() -> None:
    result = RunResult("dev", "preview", 255, "")
    for event in EVENTS:  # as the Automation API hands them to `on_event`
        result.record(EngineEvent.from_json(event))
    assert result.changes == {"same": 1, "update": 1, "create": 1}
    assert result.summary() == "1 to create, 1 to update, 1 unchanged"
    assert result.changed_urns == [
        "urn:pulumi:dev::llmops::llmops:x:Config::chat-v2",
        "urn:pulumi:dev::llmops::llmops:x:Endpoint::chat",
    ]
    assert [(v.policy, v.level, v.blocking) for v in result.violations] == [
        ("allowed-instance-types", "mandatory", True),
        ("alarms", "advisory", False),
    ]


def test_console_text_of_a_preview_is_read_back() -> None:
    result = parse_preview_text("staging", PREVIEW_TEXT)
    assert result.changes == {"update": 1, "create": 2, "same": 14}
    assert [(v.policy, v.level) for v in result.violations] == [
        ("allowed-instance-types", "mandatory"),
        ("alarm-email", "advisory"),
    ]
    assert not result.ok  # a mandatory violation fails a preview
    clean = parse_preview_text("staging", PREVIEW_TEXT.split("Policies:")[0] + "Resources:\n    3 unchanged\n")
    assert clean.ok and not clean.has_changes and clean.summary() == "3 unchanged"


class RecordingEngine:
    """Stands in for the pulumi CLI: records calls and answers from a script of results."""

    def __init__(self, failing: dict[tuple[str, str], RunResult]):
        self.calls: list[tuple[str, str]] = []
        self.failing = failing

    def select(self, stack: str) -> None:
        self.calls.append(("select", stack))

    def _result(self, command: str, stack: str) -> RunResult:
        self.calls.append((command, stack))
        return self.failing.get((command, stack)) or RunResult(stack, command, 0, "", {"same": 3})

    def preview(self, stack: str, environment: str | None) -> RunResult:
        return self._result("preview", stack)

    def up(self, stack: str, environment: str | None) -> RunResult:
        return self._result("up", stack)


STACKS = [AffectedStack(s, s, True, ["why"]) for s in ("dev", "staging", "prod")]


def test_deploy_previews_then_updates_each_stack_in_order() -> None:
    engine = RecordingEngine({})
    results = deploy(engine, STACKS)  # type: ignore[arg-type]
    assert [c for c in engine.calls if c[0] != "select"] == [
        ("preview", "dev"),
        ("up", "dev"),
        ("preview", "staging"),
        ("up", "staging"),
        ("preview", "prod"),
        ("up", "prod"),
    ]
    assert len(results) == 6


def test_a_policy_violation_stops_deploy_before_any_change_of_that_stack_or_later_ones() -> None:
    violation = Violation("allowed-instance-types", "mandatory", "not allowed")
    # Even a preview that exits 0 is refused when it reports a mandatory violation.
    engine = RecordingEngine({("preview", "staging"): RunResult("staging", "preview", 0, "", {}, [violation])})
    with pytest.raises(CiError, match=r"preview of staging failed \(1 mandatory policy violation\(s\)\); nothing"):
        deploy(engine, STACKS)  # type: ignore[arg-type]
    assert [c for c in engine.calls if c[0] != "select"] == [("preview", "dev"), ("up", "dev"), ("preview", "staging")]


def test_a_failed_update_stops_the_later_stacks_and_dry_run_never_updates() -> None:
    engine = RecordingEngine({("up", "dev"): RunResult("dev", "up", 1, "")})
    with pytest.raises(CiError, match="update of dev failed"):
        deploy(engine, STACKS)  # type: ignore[arg-type]
    assert engine.calls[-1] == ("up", "dev")
    engine = RecordingEngine({})
    deploy(engine, STACKS, dry_run=True)  # type: ignore[arg-type]
    assert {c[0] for c in engine.calls} == {"select", "preview"}


@pytest.fixture
def project(repo: Repo) -> Repo:
    """A temporary repository holding this project's stacks and registry."""
    shutil.rmtree(repo.root / "stacks")
    shutil.copytree(REPO / "stacks", repo.root / "stacks")
    shutil.copytree(REPO / "models", repo.root / "models", ignore=shutil.ignore_patterns("__pycache__"))
    repo.commit("registry")
    return repo


def test_ci_plan_writes_the_step_outputs_the_workflows_read(
    project: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = project.head()
    touched = {
        p: (project.root / p).read_text() + "# edited\n"
        for p in ("models/tiny-chat.yaml", "stacks/Pulumi.staging.yaml")
    }
    project.commit("touch tiny-chat and staging", touched)
    out = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    assert main(["ci", "plan", "--repo", str(project.root), "--base", base, "--target", "aws"]) == 0
    values: dict[str, str] = {}
    lines = out.read_text().splitlines()
    for i, line in enumerate(lines):
        if "<<" in line:
            key, delimiter = line.split("<<")
            values[key] = lines[i + 1]
            assert lines[i + 2] == delimiter
    assert json.loads(values["stacks"]) == ["staging"]  # local is affected too, but not an AWS target
    assert json.loads(values["matrix"]) == {
        "include": [{"stack": "staging", "environment": "staging", "policy_config": "policies/config/staging.json"}]
    }
    assert values["any"] == "true"
    assert "Promotion order:" in (tmp_path / "summary.md").read_text()
    assert "On its own:\n  - local" in capsys.readouterr().out


def test_pr_comment_has_plan_previews_and_cost_before_and_after(
    project: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = "llama-3-1-8b-instruct"  # a shipped model serving dev, staging and prod
    path = project.root / "models" / f"{model}.yaml"
    path.write_text(promote(project.root, model, "staging", "v2", weight=10).after)
    base = project.commit("base: a v2 canary in staging")
    promotion = promote(project.root, model, "staging", "v2")  # the canary wins: one variant left in staging
    path.write_text(promotion.after)
    head = project.commit(promotion.message)
    before_cost = costs(_export(project, base, tmp_path / "base"))[0]["staging"].total_monthly_usd
    after_cost = costs(project.root)[0]["staging"].total_monthly_usd
    assert after_cost < before_cost  # the promotion drops a variant's instances

    previews = tmp_path / "previews"
    previews.mkdir()
    (previews / "staging.txt").write_text(PREVIEW_TEXT)
    (previews / "staging.outcome").write_text("failure\n")
    out = tmp_path / "comment.md"
    argv = ["ci", "pr-comment", "--repo", str(project.root), "--base", base, "--head", head]
    assert main([*argv, "--previews", str(previews), "--output", str(out)]) == 0
    body = out.read_text()
    assert body.startswith("<!-- llmops:pr-comment -->\n### LLMOps plan:")
    reason = f"models/{model}.yaml (modified): deploys to dev, prod, staging"
    assert f"| 1 | dev | dev | {reason} |\n| 2 | staging | staging | {reason} |\n| 3 | prod | prod | {reason} |" in body
    assert "| dev | dev |" in body and "| no change | $6,000.00 |" in body
    assert "**prod**: no preview was run" in body
    delta = after_cost - before_cost
    assert (
        f"| staging | staging | ${before_cost:,.2f} | ${after_cost:,.2f} | -${-delta:,.2f} "
        f"({delta / before_cost:+.1%}) | $15,000.00 |"
    ) in body
    assert (
        "**staging**: preview failed, 2 to create, 1 to update, 14 unchanged; **1 mandatory policy violation(s)**"
        in body
    )
    assert "- `[mandatory]` allowed-instance-types: (llmops:endpoint:ModelEndpoint: llmops-chat)" in body
    assert "<details><summary>staging preview</summary>" in body and "~ 1 to update" in body
    assert project.git("worktree", "list").count("\n") == 0  # the base and head worktrees are gone


def _export(repo: Repo, rev: str, dest: Path) -> Path:
    """`rev`'s tree in a plain folder (git archive), to cost it independently of the worktrees."""
    dest.mkdir()
    archive = dest.parent / f"{dest.name}.tar"
    repo.git("archive", "--format=tar", "-o", str(archive), rev)
    shutil.unpack_archive(archive, dest)
    return dest


def test_saved_previews_round_trip(tmp_path: Path) -> None:
    from llmops.ci import save_previews

    result = RunResult("dev", "preview", 0, "text", {"update": 2}, [Violation("p", "advisory", "m")], ["urn:x"])
    save_previews(tmp_path, [result])
    loaded = load_previews(tmp_path, [AffectedStack("dev", "dev", True, [])])["dev"]
    assert loaded == result


def test_deploy_refuses_a_checkout_that_is_not_the_planned_head(repo: Repo) -> None:
    from llmops.ci import check_checkout

    base = repo.head()
    repo.commit("one", {"components/a.py": "1\n"})
    repo.commit("two", {"components/a.py": "2\n"})
    with pytest.raises(CiError, match="check it out first"):
        check_checkout(repo.root, compute_plan(repo.root, base, "HEAD~1"))
    check_checkout(repo.root, compute_plan(repo.root, base, "HEAD"))
