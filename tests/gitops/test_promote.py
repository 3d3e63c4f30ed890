"""`llmops promote`: a registry edit that keeps the file as people wrote it.

Proves: every registry file of this repository survives the round-trip library
byte for byte; a promotion changes only the environment's variants (comments,
order, quoting elsewhere untouched, comment lines around the edit kept), a
canary splits traffic beside the heaviest current version, a variant names its
version only (the weights stay under `versions`), a version the file does not
declare is refused at the `versions:` line (by the installed console script too),
a no-op writes nothing, an invalid result (an unpinned revision in prod, an
unknown environment) is refused with the file unchanged, and `--commit` makes
exactly one conventional commit of that file alone.
Cannot prove: that the promoted version's weights exist; the registry
validates the file, not the artifact.
"""

from __future__ import annotations

import difflib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmops.cli import main
from llmops.promote import PromotionError, dump_yaml, promote, promote_text, round_trip_yaml
from llmops.registry import validate
from llmops.settings import load_all_stacks
from tests.gitops.conftest import Repo

pytestmark = pytest.mark.gitops

REPO = Path(__file__).resolve().parents[2]
LLMOPS = Path(sys.executable).with_name("llmops")  # the installed console script

CHAT = """\
# yaml-language-server: $schema=schema.json
# A served chat model: keep this header.
name: chat
owner: platform-ml
description: 'Chat model, quoted on purpose.'
task: text-generation
source:
  config: configs/tinyllama-1.1b.json
versions:
  v1:
    huggingface:
      repo: TinyLlama/TinyLlama-1.1B-Chat-v1.0
      revision: "fe8a4ea1ffedaf415f4da2f062534de366a451e6"  # pinned
  v2:
    huggingface:
      repo: TinyLlama/TinyLlama-1.1B-Chat-v1.0
      revision: "77e23968eed12d195bd46c519aa679cc22a27ddc"
  v3:
    huggingface:
      repo: TinyLlama/TinyLlama-1.1B-Chat-v1.0
      revision: "d3a8b6f4e2c1d0b9a8f7e6d5c4b3a2918f7e6d5c"
serving:
  runtime: vllm
  max_context: 2048
  variants:
    - version: v1  # the first release
      weight: 100
deployments:
  dev: {}  # follows serving
  # staging is where canaries start
  staging:
    variants:
      - version: v1
        weight: 100
  prod:
    min_replicas: 2
    variants:
      - version: v1  # serving since spring
        weight: 100
      - version: v2
        weight: 0
# monitoring and compliance follow
monitoring:
  slo:
    p95_latency_ms: 800
    error_rate: 0.01
compliance:
  licence: apache-2.0
  model_card: docs/model-cards/chat.md
  evaluation:
    - suite: assistant-basics
      metric: accuracy
      threshold: 0.2
"""


def comment_lines(text: str) -> list[str]:
    return [line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line]


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed, added) lines, as a unified diff shows them."""
    diff = [d for d in difflib.unified_diff(before.splitlines(), after.splitlines(), n=0, lineterm="")]
    body = [d for d in diff if not d.startswith(("---", "+++", "@@"))]
    return [d[1:] for d in body if d[0] == "-"], [d[1:] for d in body if d[0] == "+"]


@pytest.fixture
def registry(repo: Repo) -> Repo:
    """The temp repository with this project's stacks, configs, tiny-chat and the `chat` file above."""
    shutil.rmtree(repo.root / "stacks")
    shutil.copytree(REPO / "stacks", repo.root / "stacks")
    shutil.copytree(REPO / "models" / "configs", repo.root / "models" / "configs")
    shutil.copytree(REPO / "models" / "evals", repo.root / "models" / "evals")
    shutil.copytree(REPO / "models" / "datasets", repo.root / "models" / "datasets")
    shutil.copy(REPO / "models" / "tiny-chat.yaml", repo.root / "models" / "tiny-chat.yaml")
    repo.commit("registry", {"models/chat.yaml": CHAT})
    return repo


def variants(root: Path, model: str, env: str) -> list[tuple[str, int]]:
    registry, problems = validate(root / "models", load_all_stacks(root / "stacks"))
    assert problems == []
    return [(v.version, v.weight) for v in registry.models[model].deployment(env).variants]


def test_every_registry_file_of_this_repository_round_trips_byte_for_byte() -> None:
    files = sorted((REPO / "models").glob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text()
        assert dump_yaml(round_trip_yaml().load(text)) == text, path.name


def test_plain_promotion_changes_only_the_variants_and_keeps_every_comment(registry: Repo) -> None:
    result = promote(registry.root, "chat", "staging", "v2")
    removed, added = changed_lines(result.before, result.after)
    assert (removed, added) == (["      - version: v1"], ["      - version: v2"])
    assert comment_lines(result.after) == comment_lines(result.before)
    assert result.after.index("# staging is where canaries start") < result.after.index("  staging:")
    # The variant names the version; its weights are the ones `versions` declares, untouched.
    after = yaml.safe_load(result.after)
    assert after["deployments"]["staging"]["variants"] == [{"version": "v2", "weight": 100}]
    assert after["versions"] == yaml.safe_load(CHAT)["versions"]
    assert result.message == "feat(models): promote chat v2 to staging"


def test_canary_runs_beside_the_heaviest_version_and_keeps_its_comment(registry: Repo) -> None:
    result = promote(registry.root, "chat", "prod", "v2", weight=10)
    removed, added = changed_lines(result.before, result.after)
    assert removed == ["        weight: 100", "        weight: 0"]
    assert added == ["        weight: 90", "        weight: 10"]
    assert "      - version: v1  # serving since spring" in result.after
    assert result.message == "feat(models): promote chat v2 to prod at 10%"


def test_flow_style_environment_becomes_a_block_and_keeps_its_comments(registry: Repo) -> None:
    result = promote(registry.root, "chat", "dev", "v3", weight=20)
    assert "  dev:  # follows serving\n    variants:\n      - version: v1\n        weight: 80\n" in result.after
    assert "      - version: v3\n        weight: 20\n  # staging is where canaries start\n  staging:" in result.after
    assert comment_lines(result.after) == comment_lines(result.before)
    assert result.notes == ()


def test_comment_lines_after_a_replaced_list_stay_after_it() -> None:
    text = CHAT.replace("  prod:\n", "  # prod follows\n  prod:\n")
    after, _ = promote_text(text, "staging", "v3")
    assert "        weight: 100\n  # prod follows\n  prod:" in after
    after, _ = promote_text(text, "prod", "v3")  # the last environment: the comment before `monitoring`
    assert "weight: 100\n# monitoring and compliance follow\nmonitoring:" in after


def test_no_op_changes_nothing(registry: Repo) -> None:
    result = promote(registry.root, "chat", "staging", "v1")
    assert not result.changed and result.notes == ("staging already serves v1 at 100%",)


def test_invalid_result_is_refused_and_the_file_unchanged(
    registry: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = registry.root / "models" / "chat.yaml"
    before = path.read_bytes()
    # Prod serves pinned weights only: make v3's revision a branch.
    path.write_text(before.decode().replace('"d3a8b6f4e2c1d0b9a8f7e6d5c4b3a2918f7e6d5c"', "main"))
    registry.commit("unpin")
    before = path.read_bytes()
    with pytest.raises(PromotionError, match="would be invalid") as info:
        promote(registry.root, "chat", "prod", "v3")
    assert "unpinned revision for production environment 'prod'" in str(info.value)
    monkeypatch.setenv("LLMOPS_ROOT", str(registry.root))
    assert main(["promote", "chat", "--version", "v3", "--to", "prod", "--commit"]) == 1
    err = capsys.readouterr().err
    assert err.strip().endswith("llmops: the promoted file would be invalid, nothing written:")
    assert path.read_bytes() == before
    assert registry.git("log", "-1", "--format=%s") == "unpin"


def test_an_undeclared_version_is_refused_at_the_versions_line(registry: Repo) -> None:
    path = registry.root / "models" / "chat.yaml"
    before = path.read_bytes()
    line = CHAT.splitlines().index("versions:") + 1
    with pytest.raises(PromotionError) as info:
        promote(registry.root, "chat", "prod", "v7", weight=10)
    assert str(info.value) == (
        f"models/chat.yaml:{line}: versions: version 'v7' is not declared (declared: v1, v2, v3): "
        "add it with its weights under `versions` first"
    )
    assert path.read_bytes() == before


def test_the_installed_command_refuses_an_undeclared_version(registry: Repo) -> None:
    """As a user runs it: the console script, a fresh environment, from a subfolder of the checkout."""
    path = registry.root / "models" / "chat.yaml"
    before = path.read_bytes()
    env = {"HOME": str(registry.root.parent), "PATH": "/usr/bin:/bin"}
    args = [str(LLMOPS), "promote", "chat", "--version", "v7", "--to", "prod", "--weight", "10"]
    result = subprocess.run(args, cwd=registry.root / "models", env=env, capture_output=True, text=True, check=False)
    line = CHAT.splitlines().index("versions:") + 1
    assert result.returncode == 1, result.stderr
    assert f"models/chat.yaml:{line}: versions: version 'v7' is not declared" in result.stderr
    assert result.stdout == "" and path.read_bytes() == before


def test_unknown_environment_is_refused(registry: Repo) -> None:
    with pytest.raises(PromotionError, match="no stack deploys environment 'qa'"):
        promote(registry.root, "chat", "qa", "v2")


def test_cli_prints_the_diff_writes_and_commits_that_file_alone(
    registry: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMOPS_ROOT", str(registry.root))
    registry.write("README.md", "a local edit that must not be committed\n")
    assert main(["promote", "chat", "--version", "v2", "--to", "dev", "--commit"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--- a/models/chat.yaml\n+++ b/models/chat.yaml\n")
    assert "-  dev: {}  # follows serving\n+  dev:  # follows serving\n+    variants:\n+      - version: v2\n" in out
    assert registry.git("log", "-1", "--format=%s") == "feat(models): promote chat v2 to dev"
    assert registry.git("show", "--name-only", "--format=", "HEAD") == "models/chat.yaml"
    assert registry.git("status", "--porcelain") == "M README.md"
    assert variants(registry.root, "chat", "dev") == [("v2", 100)]


def test_cli_dry_run_writes_nothing(
    registry: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMOPS_ROOT", str(registry.root))
    before = (registry.root / "models" / "chat.yaml").read_text()
    assert main(["promote", "chat", "--version", "v2", "--to", "prod", "--weight", "50", "--dry-run"]) == 0
    assert "+        weight: 50" in capsys.readouterr().out
    assert (registry.root / "models" / "chat.yaml").read_text() == before
