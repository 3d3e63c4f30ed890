"""A version names one set of weights for good: `llmops registry validate` against git history.

Runs the installed console script in a fresh environment on real throwaway repositories.
Proves: new weights for a version that served (in any environment, on the base's
first-parent history) are refused at that version's line, whether it serves now or
was retired and comes back; a version that never served may change; a trained
version's weights are its training inputs (retraining needs a new version) while it serves,
and once it serves nowhere the spec may change but the version may not serve it; history
in the older shape (weights on a variant, or the model's `source`) holds the migrated
file to the weights it served with; the default base is the merge base with main (so a
branch's own commits do not count as served) and `--base` moves it; an unknown base is
one line and exit 1; outside a git checkout the comparison is skipped with a note.
Cannot prove: what a deployment really served (the registry's history is the record).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.gitops.conftest import Repo

pytestmark = pytest.mark.gitops

REPO = Path(__file__).resolve().parents[2]
LLMOPS = Path(sys.executable).with_name("llmops")  # the installed console script
REV_A = "fe8a4ea1ffedaf415f4da2f062534de366a451e6"
REV_B = "77e23968eed12d195bd46c519aa679cc22a27ddc"
REV_C = "d3a8b6f4e2c1d0b9a8f7e6d5c4b3a2918f7e6d5c"


def chat(versions: dict[str, str], staging: list[str], **extra: object) -> str:
    """A registry file: `versions` (version -> revision), staging serving `staging` in equal parts."""
    share = 100 // len(staging)
    entry = {
        "name": "chat",
        "owner": "platform-ml",
        "description": "Chat model.",
        "task": "text-generation",
        "source": {"config": "configs/tinyllama-1.1b.json"},
        "versions": {v: {"huggingface": {"repo": "org/chat", "revision": r}} for v, r in versions.items()},
        "serving": {"runtime": "vllm", "max_context": 2048, "variants": [{"version": staging[0], "weight": 100}]},
        "deployments": {
            "staging": {
                "variants": [
                    {"version": v, "weight": share + (100 - share * len(staging) if i == 0 else 0)}
                    for i, v in enumerate(staging)
                ]
            }
        },
        "monitoring": {"slo": {"p95_latency_ms": 800, "error_rate": 0.01}},
        "compliance": {"licence": "apache-2.0", "model_card": "docs/model-cards/chat.md"},
        **extra,
    }
    return "# yaml-language-server: $schema=schema.json\n" + yaml.safe_dump(entry, sort_keys=False)


@pytest.fixture
def registry(repo: Repo) -> Repo:
    """The temp repository with this project's stacks and configs, and `chat` serving v1 in staging."""
    shutil.rmtree(repo.root / "stacks")
    shutil.copytree(REPO / "stacks", repo.root / "stacks")
    for folder in ("configs", "evals", "datasets", "data"):
        shutil.copytree(REPO / "models" / folder, repo.root / "models" / folder)
    repo.commit("registry", {"models/chat.yaml": chat({"v1": REV_A}, ["v1"])})
    return repo


def validate(repo: Repo, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(repo.root.parent), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [str(LLMOPS), "registry", "validate", "--no-sizing", *args],
        cwd=cwd or repo.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def line_of(repo: Repo, needle: str, path: str = "models/chat.yaml") -> int:
    return next(i for i, line in enumerate((repo.root / path).read_text().splitlines(), 1) if needle in line)


def test_new_weights_for_a_served_version_are_refused_at_its_line(registry: Repo) -> None:
    registry.write("models/chat.yaml", chat({"v1": REV_B}, ["v1"]))
    result = validate(registry)
    assert result.returncode == 1
    commit = registry.head()[:12]
    assert result.stdout.splitlines() == [
        f"models/chat.yaml:{line_of(registry, '  v1:')}: versions.v1: the weights of v1 changed since it served "
        f"in staging (commit {commit}): a version that has served keeps its weights; declare the new weights as "
        "a new version and promote that"
    ]


def test_a_new_version_beside_it_is_fine_and_may_change_until_it_serves(registry: Repo) -> None:
    registry.write("models/chat.yaml", chat({"v1": REV_A, "v2": REV_B}, ["v1"]))
    assert validate(registry).returncode == 0
    registry.commit("declare v2 (not serving)")
    registry.write("models/chat.yaml", chat({"v1": REV_A, "v2": REV_C}, ["v1", "v2"]))
    assert validate(registry).returncode == 0, "v2 never served: its weights may still change"
    registry.commit("v2 canary")
    registry.write("models/chat.yaml", chat({"v1": REV_A, "v2": REV_B}, ["v1", "v2"]))
    result = validate(registry)
    assert result.returncode == 1 and "versions.v2: the weights of v2 changed" in result.stdout


def test_a_retired_version_cannot_come_back_with_other_weights(registry: Repo) -> None:
    registry.commit("v2 takes over", {"models/chat.yaml": chat({"v2": REV_B}, ["v2"])})
    registry.write("models/chat.yaml", chat({"v1": REV_C, "v2": REV_B}, ["v2"]))
    result = validate(registry)
    assert result.returncode == 1 and "versions.v1: the weights of v1 changed" in result.stdout
    registry.write("models/chat.yaml", chat({"v1": REV_A, "v2": REV_B}, ["v2"]))
    assert validate(registry).returncode == 0


def test_history_in_the_older_shape_holds_the_migrated_file(repo: Repo) -> None:
    """Before `versions`, a variant carried its weights, or served the model's `source`."""
    shutil.rmtree(repo.root / "stacks")
    shutil.copytree(REPO / "stacks", repo.root / "stacks")
    shutil.copytree(REPO / "models" / "configs", repo.root / "models" / "configs")
    old = yaml.safe_load(chat({"v1": REV_A}, ["v1"]))
    del old["versions"]
    old["source"] = {"huggingface": {"repo": "org/chat", "revision": REV_A}, "config": "configs/tinyllama-1.1b.json"}
    hf_b = {"huggingface": {"repo": "org/chat", "revision": REV_B}}
    old["deployments"]["staging"]["variants"] = [
        {"version": "v1", "weight": 90},
        {"version": "v2", "weight": 10, "source": hf_b},
    ]
    repo.commit("old shape", {"models/chat.yaml": yaml.safe_dump(old, sort_keys=False)})
    repo.write("models/chat.yaml", chat({"v1": REV_A, "v2": REV_B}, ["v1", "v2"]))
    assert validate(repo).returncode == 0, validate(repo).stdout
    repo.write("models/chat.yaml", chat({"v1": REV_B, "v2": REV_A}, ["v1", "v2"]))
    result = validate(repo)
    assert result.returncode == 1
    assert {line.split(": ")[1] for line in result.stdout.splitlines()} == {"versions.v1", "versions.v2"}


def test_a_trained_version_is_its_training_inputs(repo: Repo) -> None:
    shutil.rmtree(repo.root / "stacks")
    shutil.copytree(REPO / "stacks", repo.root / "stacks")
    for folder in ("configs", "evals", "datasets", "data"):
        shutil.copytree(REPO / "models" / folder, repo.root / "models" / folder)
    tiny = (REPO / "models" / "tiny-chat.yaml").read_text()
    repo.commit("tiny-chat serves v1 locally", {"models/tiny-chat.yaml": tiny})
    # Where it trains is not what it learns: the instance may change under v1.
    repo.write("models/tiny-chat.yaml", tiny.replace("max_runtime: 900", "max_runtime: 1200"))
    assert validate(repo).returncode == 0
    retrained = tiny.replace("    steps: 500\n", "    steps: 400\n")
    repo.write("models/tiny-chat.yaml", retrained)
    result = validate(repo)
    assert result.returncode == 1
    where = f"models/tiny-chat.yaml:{line_of(repo, 'training:', 'models/tiny-chat.yaml')}: training: "
    assert result.stdout.startswith(where + "v1 is this model's training run")
    # Retraining is a new version: v2 is the training run now, and v1 is retired.
    repo.write("models/tiny-chat.yaml", retrained.replace("  v1:\n", "  v2:\n").replace("version: v1", "version: v2"))
    assert validate(repo).returncode == 0


def test_a_retired_training_version_frees_the_spec_but_cannot_serve_it_again(repo: Repo) -> None:
    """`@training` is the model's current run; once a version pinned by digest serves instead, the spec may
    change (runs are candidates, adopted by `llmops train adopt`), and v1 may not serve the new spec."""
    shutil.rmtree(repo.root / "stacks")
    shutil.copytree(REPO / "stacks", repo.root / "stacks")
    for folder in ("configs", "evals", "datasets", "data"):
        shutil.copytree(REPO / "models" / folder, repo.root / "models" / folder)
    tiny = (REPO / "models" / "tiny-chat.yaml").read_text()
    repo.commit("tiny-chat serves v1 locally", {"models/tiny-chat.yaml": tiny})
    pin = f"sha256:{'a' * 64}"
    pinned = tiny.replace('    local: "@training"\n', f'    local: "@training"\n  v2:\n    local: {pin}\n')
    pinned = pinned.replace("    - version: v1\n", "    - version: v2\n")
    repo.commit("v2, v1's run pinned by digest, serves", {"models/tiny-chat.yaml": pinned})
    fine_tuned = pinned.replace("  base_model: scratch\n", f"  base_model: {pin}\n").replace(
        "    steps: 500\n", "    steps: 300\n"
    )
    repo.write("models/tiny-chat.yaml", fine_tuned)
    assert validate(repo).returncode == 0, validate(repo).stdout
    repo.write("models/tiny-chat.yaml", fine_tuned.replace("    - version: v2\n", "    - version: v1\n"))
    result = validate(repo)
    assert result.returncode == 1
    where = f"models/tiny-chat.yaml:{line_of(repo, 'training:', 'models/tiny-chat.yaml')}: training: "
    assert result.stdout.startswith(where + "v1 is this model's training run"), result.stdout
    # A pinned version's weights are its digest: another digest under v2 is refused at its line.
    repo.write("models/tiny-chat.yaml", fine_tuned.replace(pin, f"sha256:{'b' * 64}", 1))
    result = validate(repo)
    assert result.returncode == 1 and ": versions.v2: the weights of v2 changed" in result.stdout, result.stdout


def test_the_default_base_is_the_merge_base_with_main(registry: Repo) -> None:
    """A branch's own commits have not served; main's have. `--base` says which history counts."""
    registry.git("checkout", "-q", "-b", "feature")
    registry.commit("new weights under v1", {"models/chat.yaml": chat({"v1": REV_B}, ["v1"])})
    result = validate(registry, cwd=registry.root / "models")  # from a subfolder, as a user might
    assert result.returncode == 1 and "versions.v1: the weights of v1 changed" in result.stdout
    assert validate(registry, "--base", "main").returncode == 1
    # Against the branch itself, its own commit is the record: the change is not seen.
    assert validate(registry, "--base", "HEAD").returncode == 0


def test_an_unknown_base_is_one_line(registry: Repo) -> None:
    result = validate(registry, "--base", "no-such-ref")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"llmops: --base no-such-ref: unknown revision 'no-such-ref' in {registry.root} "
        "(a shallow clone needs `fetch-depth: 0`)"
    ]


def test_outside_a_git_checkout_the_comparison_is_skipped_with_a_note(registry: Repo) -> None:
    shutil.rmtree(registry.root / ".git")
    registry.write("models/chat.yaml", chat({"v1": REV_B}, ["v1"]))
    result = validate(registry)
    assert result.returncode == 0
    assert "served versions are not compared" in result.stderr
