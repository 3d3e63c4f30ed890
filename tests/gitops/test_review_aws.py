"""AWS review stacks on the real engine and a file backend, without AWS: capacity, close and reap.

In a throwaway copy of this repository (its own file backend), staging's review stacks
are stood in for by empty stacks `pr-1-staging` and `pr-2-staging` (files as `open`
writes them, no resources, so destroying them needs no cloud) beside an empty local
review stack `pr-5`. Proves:
- at staging's capacity (2), open for a third pull request refuses with the reason in
  the comment and exit 1, and creates nothing: no stack, no stack file;
- open on an environment that does not opt in fails with the stack file and key named;
- close --environment staging destroys and removes exactly `pr-<N>-staging`;
- reap --environment staging takes only staging's expired or closed review stacks and
  never the local ones (and the local reap never staging's).
Cannot prove: `pulumi up` of an AWS review stack (no AWS account is reachable; its
program is proven under mocks in tests/mocks/test_review_stack.py).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmops.ci.errors import CiError
from llmops.ci.review import close_review, open_aws_review, reap, stack_name, write_aws_stack_file
from llmops.ci.review_cli import _open_aws
from llmops.ci.runner import DEFAULT_POLICY_CONFIG_DIR, DEFAULT_POLICY_PACK, Engine
from llmops.plan import FileChange, Plan
from llmops.settings import ReviewStackSettings
from tests.support.project import Project, copy_project

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]

MODEL = "llama-3-1-8b-instruct"  # deployed to staging


def _plan(model: str = MODEL) -> Plan:
    return Plan("b" * 40, "a" * 40, None, [FileChange("M", f"models/{model}.yaml")], [], [], [], [])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return copy_project(tmp_path_factory.mktemp("review-aws") / "llmops")


@pytest.fixture(scope="module")
def engine(project: Project) -> Engine:
    return Engine(project.root, project.env, DEFAULT_POLICY_PACK, DEFAULT_POLICY_CONFIG_DIR, timeout=300, stream=False)


def _stacks(project: Project) -> set[str]:
    return {s["name"] for s in json.loads(project.pulumi("stack", "ls", "--json").stdout)}


def _empty_review_stack(project: Project, pr: int, environment: str, created: datetime, ttl: float) -> str:
    """A review stack as `open` leaves it, minus the resources (none to destroy without AWS)."""
    name = stack_name(pr, environment)
    if environment == "local":
        project.write_stack(name, {"llmops:target": "local", "llmops:environment": "local"})
    else:
        review = ReviewStackSettings(pr=pr, head_sha="c" * 40, created_at=created.strftime("%Y%m%dT%H%M%SZ"), ttl=ttl)
        write_aws_stack_file(
            project.root, project.root / "stacks" / f"Pulumi.{environment}.yaml", name, [MODEL], review
        )
    # A passphrase here stands in for staging's KMS key: the engine never decrypts anything in these tests.
    project.pulumi("stack", "init", name, "--secrets-provider", "passphrase")
    for key, value in {"pr": str(pr), "created-at": created.isoformat(), "ttl": f"{ttl:g}"}.items():
        project.pulumi("stack", "tag", "set", key, value, stack=name)
    return name


def test_open_beyond_capacity_refuses_and_creates_nothing(project: Project, engine: Engine, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    _empty_review_stack(project, 1, "staging", now, 24)
    _empty_review_stack(project, 2, "staging", now, 24)
    _empty_review_stack(project, 5, "local", now, 24)  # local review stacks do not count against staging
    opened = open_aws_review(engine, _plan(), 3, "staging")
    assert opened.refused and "pr-1-staging, pr-2-staging" in opened.refused and "capacity (2" in opened.refused
    assert "pr-3-staging" not in _stacks(project)
    assert not (project.root / "stacks" / "Pulumi.pr-3-staging.yaml").exists()
    out = tmp_path / "review.md"
    assert _open_aws(argparse.Namespace(output=out), opened) == 1
    assert "**No review stack was opened** for llama-3-1-8b-instruct: staging is at its review capacity" in (
        out.read_text()
    )


def test_open_on_an_environment_that_does_not_opt_in_names_the_setting(engine: Engine) -> None:
    with pytest.raises(CiError, match=r"stacks/Pulumi.dev.yaml: llmops:review.enabled is not true"):
        open_aws_review(engine, _plan(), 3, "dev")


def test_close_and_reap_take_aws_review_stacks_like_local_ones(project: Project, engine: Engine) -> None:
    old = datetime.now(UTC) - timedelta(hours=30)
    _empty_review_stack(project, 4, "staging", old, 24)  # expired
    _empty_review_stack(project, 6, "local", old, 24)  # expired, but local: the staging reap leaves it
    closed = close_review(engine, stack_name(2, "staging"))
    assert closed.ok and "destroyed and removed" in closed.reason
    assert not (project.root / "stacks" / "Pulumi.pr-2-staging.yaml").exists()
    # Open pull requests: 1 and 5; staging's reap takes the expired #4 only.
    reaped = reap(engine, {1, 5, 6}, environment="staging")
    assert [(c.stack, c.ok) for c in reaped] == [("pr-4-staging", True)]
    assert {s for s in _stacks(project) if s.startswith("pr-")} == {"pr-1-staging", "pr-5", "pr-6"}
    reaped = reap(engine, {1, 5}, environment="local")
    assert [(c.stack, c.ok) for c in reaped] == [("pr-6", True)]
    assert {s for s in _stacks(project) if s.startswith("pr-")} == {"pr-1-staging", "pr-5"}
