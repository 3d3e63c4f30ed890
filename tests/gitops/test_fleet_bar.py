"""The fleet bar, part one: `llmops plan` on a generated 500-model registry in a real git repository.

Proves: with dev, staging and prod split into stacks (`llmops:layout: split`), a one-model
change plans exactly that model's stack in each environment it deploys to, in promotion
order, through the installed console script's JSON as CI reads it; the unsplit local stack
still takes the change whole; a model added to prod plans its new stack; an environment's
stack file plans its platform stack and every model stack of that environment (their
settings are derived from it); a change to the program plans every stack; the pull
request's cost table shows a model stack's whole environment against its budget.
Cannot prove: anything about deploying them (tests/mocks/test_split_layout.py, the engine test).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from llmops.plan import compute_plan
from tests.gitops.conftest import Repo, model_yaml
from tests.support.project import REPO

pytestmark = pytest.mark.gitops

FLEET = 500
SPLIT = ("dev", "staging", "prod")


def _fleet(repo: Repo) -> str:
    """500 models, each in dev, staging and prod; those three stack files split."""
    files = {f"models/m-{i:03d}.yaml": model_yaml(f"m-{i:03d}", ["dev", "staging", "prod"]) for i in range(FLEET)}
    for env in SPLIT:
        path = repo.root / "stacks" / f"Pulumi.{env}.yaml"
        data = yaml.safe_load(path.read_text())
        data["config"]["llmops:layout"] = "split"
        files[f"stacks/Pulumi.{env}.yaml"] = yaml.safe_dump(data, sort_keys=False)
    files["models/local-only.yaml"] = model_yaml("local-only", ["local"])
    return repo.commit("a fleet of 500 models", files)


def test_a_one_model_change_plans_one_model_stack_per_environment(repo: Repo) -> None:
    base = _fleet(repo)
    repo.commit("tune m-137", {"models/m-137.yaml": model_yaml("m-137", ["dev", "staging", "prod"], comment="v2")})
    # The installed console script, as the workflow's plan step runs it.
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "llmops"), "plan", "--base", base, "--repo", str(repo.root), "--json"],
        capture_output=True,
        text=True,
        env={"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [s["stack"] for s in plan["stacks"]] == ["dev.m-137", "staging.m-137", "prod.m-137"]
    assert [(s["model"], s["platform"], s["promotion"]) for s in plan["stacks"]] == [
        ("m-137", env, True) for env in SPLIT
    ]
    assert plan["unaffected"] == ["dev", "local", "prod", "staging"]


def test_an_unsplit_stack_still_takes_the_change_whole(repo: Repo) -> None:
    base = _fleet(repo)
    repo.commit("both", {"models/m-001.yaml": model_yaml("m-001", ["dev", "staging", "prod", "local"])})
    assert compute_plan(repo.root, base).names == ["dev.m-001", "staging.m-001", "prod.m-001", "local"]


def test_a_model_added_to_prod_plans_its_new_stack_only(repo: Repo) -> None:
    base = _fleet(repo)
    repo.commit("new", {"models/fresh.yaml": model_yaml("fresh", ["prod"])})
    plan = compute_plan(repo.root, base)
    assert plan.names == ["prod.fresh"]
    assert plan.stacks[0].reasons == ["models/fresh.yaml (added): deploys to prod"]


def test_an_environment_stack_file_plans_its_platform_and_every_model_stack_of_it(repo: Repo) -> None:
    base = _fleet(repo)
    path = repo.root / "stacks" / "Pulumi.prod.yaml"
    repo.commit("budget", {"stacks/Pulumi.prod.yaml": path.read_text() + "  llmops:budgetMonthlyUsd: 90000\n"})
    names = compute_plan(repo.root, base).names
    assert names[0] == "prod" and len(names) == 1 + FLEET
    assert set(names[1:]) == {f"prod.m-{i:03d}" for i in range(FLEET)}


def test_a_program_change_plans_every_stack(repo: Repo) -> None:
    base = _fleet(repo)
    repo.commit("core", {"components/platform.py": "# changed\n"})
    names = compute_plan(repo.root, base).names
    assert len(names) == 4 + 3 * FLEET  # the four environment stacks and every model stack of the split three
    assert names.index("dev") < names.index("dev.m-000") < names.index("staging") < names.index("prod.m-499")


def test_the_pr_comment_costs_a_model_stack_as_its_whole_environment(tmp_path: Path) -> None:
    """The cost table's row for `prod.<model>`: the environment's total before → after, against its budget."""
    from llmops.ci.comment import cost_table
    from tests.support.project import copy_project

    root = copy_project(tmp_path / "project").root
    repo = Repo(root)
    repo.git("init", "-q", "-b", "main")
    prod = root / "stacks" / "Pulumi.prod.yaml"
    prod.write_text(
        prod.read_text().replace("  llmops:target: aws\n", "  llmops:target: aws\n  llmops:layout: split\n")
    )
    base = repo.commit("the project, prod split")
    llama = root / "models" / "llama-3-1-8b-instruct.yaml"
    more = llama.read_text().replace("  prod:\n    min_replicas: 2\n", "  prod:\n    min_replicas: 3\n")
    repo.commit("a third prod replica", {"models/llama-3-1-8b-instruct.yaml": more})
    plan = compute_plan(root, base)
    assert "prod.llama-3-1-8b-instruct" in plan.names and "prod" not in plan.names
    rows = [line for line in cost_table(root, plan, plan.stacks) if line.startswith("| prod")]
    assert len(rows) == 1 and rows[0].startswith("| prod (whole, for prod.llama-3-1-8b-instruct) | prod | $"), rows
    assert "| $40,000.00 |" in rows[0] and "+$" in rows[0], rows


def test_a_model_that_starts_or_stops_using_eks_reaches_the_platform_stack_too(repo: Repo) -> None:
    """The platform stack builds the EKS cluster only while a model of the environment uses it."""
    base = _fleet(repo)
    on_eks = model_yaml("m-007", ["dev", "staging", "prod"]).replace(
        "  runtime: vllm\n", "  runtime: vllm\n  platform: eks\n"
    )
    repo.commit("m-007 to EKS", {"models/m-007.yaml": on_eks})
    plan = compute_plan(repo.root, base)
    assert plan.names == ["dev", "dev.m-007", "staging", "staging.m-007", "prod", "prod.m-007"]
    assert "its use of EKS in prod changed" in next(s for s in plan.stacks if s.stack == "prod").reasons[0]
    # Staying on EKS, a change is the model's alone.
    middle = repo.head()
    repo.commit("m-007 tuned", {"models/m-007.yaml": on_eks.replace("description: m-007\n", "description: m-007 v3\n")})
    assert compute_plan(repo.root, middle).names == ["dev.m-007", "staging.m-007", "prod.m-007"]
