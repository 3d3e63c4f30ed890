"""`llmops plan` on real temporary git repositories.

Proves: which stacks a change reaches, in promotion order with local on its
own, for registry edits (before and after sides), additions, deletions,
renames, unreadable files, core code, stack files, model configs, training
data, docs and tests; that merges follow `base...head` semantics (a merge of
the target branch adds nothing; a merge commit on main plans exactly the
merged branch's changes); the first-push case; the CLI's text, JSON and
one-line errors.
Cannot prove: that the rules are the right ones for every future path in the
repository (an unknown path plans every stack, by design), nor anything about
GitHub's event payloads beyond the refs they carry.
"""

from __future__ import annotations

import json

import pytest
import yaml

from llmops.cli import main
from llmops.plan import ZERO_SHA, compute_plan
from tests.gitops.conftest import Repo, model_yaml, stack_yaml

pytestmark = pytest.mark.gitops


def names(repo: Repo, base: str, head: str = "HEAD") -> list[str]:
    return compute_plan(repo.root, base, head).names


def test_registry_edit_affects_the_environments_it_deploys_to_in_promotion_order(repo: Repo) -> None:
    base = repo.commit("add model", {"models/chat.yaml": model_yaml("chat", ["prod", "dev", "local"])})
    repo.commit("tune", {"models/chat.yaml": model_yaml("chat", ["prod", "dev", "local"], comment="v2")})
    plan = compute_plan(repo.root, base)
    assert plan.names == ["dev", "prod", "local"]
    assert [s.promotion for s in plan.stacks] == [True, True, False]
    assert plan.unaffected == ["staging"]
    assert plan.stacks[0].reasons == ["models/chat.yaml (modified): deploys to dev, local, prod"]


def test_environments_before_the_change_count_too(repo: Repo) -> None:
    base = repo.commit("add", {"models/chat.yaml": model_yaml("chat", ["dev", "prod"])})
    repo.commit("retire from prod", {"models/chat.yaml": model_yaml("chat", ["dev"])})
    assert names(repo, base) == ["dev", "prod"]


def test_added_and_deleted_models(repo: Repo) -> None:
    base = repo.commit("add", {"models/old.yaml": model_yaml("old", ["staging"])})
    # A long header keeps git from pairing the two files as a rename.
    padding = "".join(f"# note {i}: unrelated text\n" for i in range(60))
    repo.commit("swap", {"models/new.yaml": padding + model_yaml("new", ["dev"])}, remove=["models/old.yaml"])
    plan = compute_plan(repo.root, base)
    assert plan.names == ["dev", "staging"]
    reasons = {s.stack: s.reasons for s in plan.stacks}
    assert reasons["dev"] == ["models/new.yaml (added): deploys to dev"]
    assert reasons["staging"] == ["models/old.yaml (deleted): deploys to staging"]


def test_rename_counts_both_sides(repo: Repo) -> None:
    base = repo.commit("add", {"models/a.yaml": model_yaml("a", ["dev"])})
    repo.move("models/a.yaml", "models/b.yaml")
    # Same content but the environments: git still pairs the files as a rename.
    repo.commit("rename", {"models/b.yaml": model_yaml("a", ["dev", "staging"]).replace("name: a", "name: b")})
    plan = compute_plan(repo.root, base)
    assert plan.names == ["dev", "staging"]
    assert [c.status for c in plan.changes] == ["R"]
    assert plan.stacks[0].reasons[0].startswith("models/a.yaml → models/b.yaml (renamed)")


def test_model_moved_out_of_the_registry_counts_its_old_environments(repo: Repo) -> None:
    base = repo.commit("add", {"models/a.yaml": model_yaml("a", ["prod"])})
    repo.move("models/a.yaml", "docs/a.yaml")
    repo.commit("retire")
    assert names(repo, base) == ["prod"]


def test_unreadable_side_plans_every_stack_and_says_why(repo: Repo) -> None:
    base = repo.commit("add", {"models/a.yaml": model_yaml("a", ["dev"])})
    repo.commit("break", {"models/a.yaml": "name: a\ndeployments: [dev\n"})
    plan = compute_plan(repo.root, base)
    assert plan.names == ["dev", "staging", "prod", "local"]
    assert "cannot read its deployments (after)" in plan.stacks[0].reasons[0]


def test_core_code_affects_every_stack_and_docs_tests_none(repo: Repo) -> None:
    base = repo.head()
    repo.commit(
        "docs", {"docs/guide.md": "x", "tests/test_x.py": "x", "README.md": "y", ".github/workflows/a.yml": "x"}
    )
    assert names(repo, base) == []
    plan = compute_plan(repo.root, base)
    assert len(plan.ignored) == 4 and plan.unaffected == ["dev", "local", "prod", "staging"]
    mid = repo.head()
    repo.commit("code", {"components/platform.py": "# changed\n"})
    plan = compute_plan(repo.root, mid)
    assert plan.names == ["dev", "staging", "prod", "local"]
    assert plan.stacks[-1].reasons == ["components/platform.py (added): the program or its engine changed"]


@pytest.mark.parametrize("path", ["llmops/x.py", "policies/p.py", "__main__.py", "requirements.lock", "tools/a/go.mod"])
def test_every_core_path_affects_every_stack(repo: Repo, path: str) -> None:
    base = repo.head()
    repo.commit("core", {path: "x\n"})
    assert names(repo, base) == ["dev", "staging", "prod", "local"]


def test_stack_file_affects_that_stack_and_a_deleted_stack_is_noted(repo: Repo) -> None:
    base = repo.head()
    repo.commit("tune staging", {"stacks/Pulumi.staging.yaml": stack_yaml("staging") + "# budget\n"})
    assert names(repo, base) == ["staging"]
    mid = repo.head()
    repo.commit("drop dev", remove=["stacks/Pulumi.dev.yaml"])
    plan = compute_plan(repo.root, mid)
    assert plan.names == []
    assert plan.notes and "stack dev no longer exists" in plan.notes[0]


def test_model_config_affects_the_models_that_use_it(repo: Repo) -> None:
    base = repo.commit(
        "add",
        {
            "models/a.yaml": model_yaml("a", ["dev"], config="configs/shared.json"),
            "models/b.yaml": model_yaml("b", ["prod"], config="configs/shared.json"),
            "models/c.yaml": model_yaml("c", ["staging"]),
            "models/configs/shared.json": "{}",
            "models/configs/unused.json": "{}",
        },
    )
    repo.commit("config", {"models/configs/shared.json": '{"hidden_size": 8}', "models/configs/unused.json": "[]"})
    plan = compute_plan(repo.root, base)
    assert plan.names == ["dev", "prod"]
    assert plan.stacks[0].reasons == ["models/configs/shared.json (modified): config of a, b"]
    assert plan.ignored == ["models/configs/unused.json (modified) (no model uses it)"]


def test_training_data_affects_the_models_that_train_on_it(repo: Repo) -> None:
    base = repo.commit(
        "add",
        {
            "models/file.yaml": model_yaml("file", ["local"], dataset="models/data/corpus.txt"),
            "models/dir.yaml": model_yaml("dir", ["dev"], dataset="./models/data/sets/"),
            "models/s3.yaml": model_yaml("s3", ["prod"], dataset="s3://bucket/models/data/corpus.txt"),
            "models/data/corpus.txt": "hello",
            "models/data/sets/a.txt": "a",
        },
    )
    repo.commit("data", {"models/data/corpus.txt": "hello world"})
    assert names(repo, base) == ["local"]
    mid = repo.head()
    repo.commit("more data", {"models/data/sets/b.txt": "b"})
    assert names(repo, mid) == ["dev"]


def test_registry_dataset_changes_affect_the_models_that_train_on_it(repo: Repo) -> None:
    named = yaml.safe_load(model_yaml("named", ["dev"]))
    named["training"] = {"base_model": "scratch", "dataset": {"name": "corpus", "version": "1"}, "max_runtime": 600}
    entry = {"name": "corpus", "version": "1", "source": {"file": "models/data/raw.txt"}, "path": "models/data/corpus"}
    base = repo.commit(
        "add",
        {
            "models/named.yaml": yaml.safe_dump(named),
            "models/other.yaml": model_yaml("other", ["prod"]),
            "models/datasets/corpus.yaml": yaml.safe_dump(entry),
            "models/data/raw.txt": "a",
            "models/data/corpus/train.txt": "a",
        },
    )
    repo.commit("split", {"models/data/corpus/train.txt": "b"})
    assert names(repo, base) == ["dev"]
    mid = repo.head()
    repo.commit("source", {"models/data/raw.txt": "c"})
    assert names(repo, mid) == ["dev"]
    mid = repo.head()
    repo.commit("entry", {"models/datasets/corpus.yaml": yaml.safe_dump({**entry, "version": "2"})})
    assert names(repo, mid) == ["dev"]


def test_unknown_paths_plan_every_stack(repo: Repo) -> None:
    base = repo.head()
    repo.commit("new top-level thing", {"deploy/extra.yaml": "x"})
    plan = compute_plan(repo.root, base)
    assert plan.names == ["dev", "staging", "prod", "local"]
    assert "unclassified path" in plan.stacks[0].reasons[0]


def test_merging_main_into_a_branch_adds_nothing_and_a_merge_commit_plans_the_branch(repo: Repo) -> None:
    repo.commit(
        "models",
        {"models/a.yaml": model_yaml("a", ["prod"]), "models/b.yaml": model_yaml("b", ["dev"])},
    )
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit("feature: b", {"models/b.yaml": model_yaml("b", ["dev"], comment="tuned")})
    repo.git("checkout", "-q", "main")
    repo.commit("main: a", {"models/a.yaml": model_yaml("a", ["prod"], comment="hotfix")})
    repo.git("checkout", "-q", "feature")
    repo.git("merge", "-q", "--no-edit", "main")
    assert len(repo.git("rev-list", "--parents", "-n1", "HEAD").split()) == 3  # a real merge commit
    # The pull request's plan: main's own change (prod) came in through the merge and is not the branch's.
    assert names(repo, "main", "feature") == ["dev"]
    # The push to main: a --no-ff merge of the branch, planned from the push's `before`.
    repo.git("checkout", "-q", "main")
    before = repo.head()
    repo.git("merge", "-q", "--no-ff", "--no-edit", "feature")
    plan = compute_plan(repo.root, before, "main")
    assert plan.names == ["dev"]
    assert plan.merge_base == before


def test_first_push_without_a_base_plans_every_stack(repo: Repo) -> None:
    plan = compute_plan(repo.root, ZERO_SHA)
    assert plan.names == ["dev", "staging", "prod", "local"]
    assert "no base commit" in plan.stacks[0].reasons[0]


def test_cli_text_and_json(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    base = repo.commit("add", {"models/a.yaml": model_yaml("a", ["staging", "local"])})
    repo.commit("edit", {"models/a.yaml": model_yaml("a", ["staging", "local"], comment="x")})
    assert main(["plan", "--repo", str(repo.root), "--base", base]) == 0
    text = capsys.readouterr().out
    assert "Promotion order:\n  1. staging (environment staging)" in text
    assert "On its own:\n  - local (environment local)" in text
    assert "Unaffected: dev, prod" in text
    assert main(["plan", "--repo", str(repo.root), "--base", base, "--head", "HEAD", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(s["stack"], s["promotion"]) for s in data["stacks"]] == [("staging", True), ("local", False)]
    assert data["base"] == base and data["head"] == repo.head()


def test_cli_unknown_ref_is_a_one_line_error(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--repo", str(repo.root), "--base", "no-such-branch"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("llmops: unknown revision 'no-such-branch'") and "\n" not in err
