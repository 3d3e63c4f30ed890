"""Upgrading a deployed local stack from an earlier commit to this working tree replaces and deletes nothing.

Deploys the local stack from the commit the URN contract names (tests/mocks/urns.json,
or `LLMOPS_UPGRADE_FROM=<ref>`), extracted with `git archive` into a throwaway
project with its own backend, ports and state; then puts this working tree's files in
place of that commit's (same folder, so paths in the state do not change) and previews
through the Automation API under the policy pack.
Proves: with the real engine, every resource of the deployed stack is found again
under this tree's program (same URN or an alias) and none would be replaced or
deleted; the preview runs the policy pack and passes it.
Cannot prove: the AWS target (tests/mocks/test_urn_contract.py checks its URNs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
import yaml

from llmops.ci import Engine
from llmops.engine import engine_env
from llmops.registry import SCHEMA_HEADER
from tests.support.project import REPO, Project, free_port_base, project_files

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1200)]

STACK = "upgrade"
MODEL = "tiny-chat"
REPLACING = {"replace", "create-replacement", "delete-replaced", "delete", "discard", "discard-replaced"}


def base_ref() -> str:
    return os.environ.get("LLMOPS_UPGRADE_FROM") or json.loads((REPO / "tests/mocks/urns.json").read_text())["commit"]


def extract(ref: str, dest: Path) -> None:
    archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")


def replace_tree(dest: Path) -> None:
    """This working tree's files in place of the old commit's (state, backend and links stay)."""
    for entry in dest.iterdir():
        if entry.name in (".venv", "bin", ".pulumi", ".state"):
            continue
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for rel in project_files(REPO):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)


def keep_training_data(project: Project) -> tuple[dict[str, str], bytes]:
    """The deployed tree's pinned training file: the new tree trains from the same bytes at the same
    path, so what the preview shows is about identity (URNs), not about new data."""
    path = project.root / "models" / f"{MODEL}.yaml"
    dataset = yaml.safe_load(path.read_text())["training"]["dataset"]
    return {"uri": dataset["uri"], "sha256": dataset["sha256"]}, (project.root / dataset["uri"]).read_bytes()


def prepare(project: Project, base_port: int, dataset: dict[str, str] | None = None) -> None:
    """The throwaway stack file, a two-step training run and the training data (the same on both trees)."""
    project.write_stack(
        STACK,
        {
            "llmops:target": "local",
            "llmops:environment": "local",
            "llmops:local": {"basePort": base_port, "stateDir": f".state/{STACK}", "healthTimeoutSeconds": 180},
            "llmops:policy": {"enforcement": "mandatory"},
        },
    )
    path = project.root / "models" / f"{MODEL}.yaml"
    data = yaml.safe_load(path.read_text())
    data["training"]["hyperparameters"]["steps"] = 2
    if dataset is not None:
        data["training"]["dataset"] = dataset
    path.write_text(f"{SCHEMA_HEADER}\n{yaml.safe_dump(data, sort_keys=False)}")


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Engine]]:
    assert (REPO / "bin" / "pulumi").is_file(), "bin/pulumi is missing: `make setup` builds it"
    root = tmp_path_factory.mktemp("upgrade") / "project"
    root.mkdir()
    extract(base_ref(), root)
    for link in (".venv", "bin"):
        (root / link).symlink_to(REPO / link)
    backend = root / ".pulumi" / "state"
    backend.mkdir(parents=True)
    env = engine_env(root, backend_url=f"file://{backend}")
    env["PULUMI_CONFIG_PASSPHRASE"] = "throwaway-test-passphrase"
    env["PYTHONPATH"] = str(root)  # the program and its providers import this folder's code, old or new
    project = Project(root=root, env=env)
    base_port = free_port_base()
    prepare(project, base_port)
    dataset, data = keep_training_data(project)
    project.pulumi("stack", "init", STACK, "--secrets-provider", "passphrase")
    project.pulumi("up", "--yes", "--skip-preview", stack=STACK)
    try:
        replace_tree(root)
        (root / dataset["uri"]).write_bytes(data)
        prepare(project, base_port, dataset)
        engine = Engine(root, env, "policies/pack", "policies/config", timeout=900, stream=False)
        yield project, engine
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview", stack=STACK, check=False)


def test_the_upgrade_previews_without_replace_or_delete(upgraded: tuple[Project, Engine]) -> None:
    project, engine = upgraded
    state = json.loads(project.pulumi("stack", "export", stack=STACK).stdout)
    deployed = {r["urn"] for r in state["deployment"]["resources"]}
    assert any(":dynamic/local:" in urn for urn in deployed), "the old commit deployed no local resources"

    preview = engine.preview(STACK, "local")
    assert preview.ok, preview.output[-4000:]
    assert not [v for v in preview.violations if v.blocking], preview.violations
    replaced = {urn: op for urn, op in preview.ops.items() if op in REPLACING}
    assert not replaced, f"the upgrade would replace or delete: {json.dumps(replaced, indent=1)}"
    assert not preview.changes.get("delete") and not preview.changes.get("replace"), preview.changes
    # Every deployed resource is accounted for by the new program (same URN, or an alias the engine followed).
    assert preview.changes.get("same", 0) + preview.changes.get("update", 0) >= len(deployed) - 1, preview.changes
