"""A local training package becomes a registry version pinned by digest (llmops.training_adopt.adopt_local).

Proves, on a copy of the registry and a real artifact store folder: the stack's current package
is declared as `versions.V: {local: "sha256:<artifact>"}` with the file's comments kept, the
result validates, and the commit message carries the lineage (dataset@version with md5s,
hyperparameters, code commit, base), whether the run used the registry's current spec and
every gate's measured value; a package that failed a gate, a missing record, an artifact whose
files no longer hash to its name, weights already declared or a name already used write
nothing; a malformed pin is a registry error located at its line.
Cannot prove: that the package's numbers were measured (the engine test runs the real chain).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from llmops.local.packages import OUTPUT, package_path, write_package
from llmops.local.store import STORE_DIR, ArtifactStore
from llmops.registry import load_registry
from llmops.registry.loader import validate
from llmops.settings import load_all_stacks
from llmops.training_adopt import AdoptError, adopt_local
from llmops.training_runs import spec_digest
from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit

MODEL = "tiny-chat"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "models", tmp_path / "models", ignore=shutil.ignore_patterns("data"))
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    return tmp_path


def entry(root: Path) -> Any:
    return load_registry(root / "models", load_all_stacks(root / "stacks")).models[MODEL]


def packaged(root: Path, passed: bool = True, spec: str | None = None) -> str:
    """A stored artifact (two small files) and its package record; returns its sha256."""
    store = ArtifactStore(root / STORE_DIR)
    with store.workdir() as work:
        (work / "a").mkdir()
        (work / "a" / "model.safetensors").write_bytes(b"weights")
        (work / "a" / "config.json").write_text("{}")
        sha = store.put(work / "a")
    bpb = 0.5 if passed else 0.9
    write_package(
        store.root,
        {
            "model": MODEL,
            "artifactSha256": sha,
            "spec": spec or spec_digest(entry(root)),
            "lineage": {
                "dataset": {"ref": "tiny-chat-corpus@2", "md5": {"train": "abc"}},
                "hyperparameters": {"steps": 500},
                "commit": "0123456789ab",
            },
            "evaluation": {
                "tiny-chat-heldout": {
                    "metrics": {"bits_per_byte": bpb},
                    "gates": {"bits_per_byte": {"value": bpb, "threshold": 0.75, "passed": passed}},
                }
            },
            "passed": passed,
            "createdAt": "2026-12-07T12:00:00Z",
        },
    )
    return sha


def outputs(sha: str) -> dict[str, Any]:
    return {OUTPUT: {MODEL: {"artifactSha256": sha, "passed": True}}}


def test_the_current_package_becomes_a_version_pinned_by_digest(root: Path) -> None:
    sha = packaged(root)
    adoption = adopt_local(root, entry(root), "v2", outputs(sha), None)
    assert f"  v2:\n    local: sha256:{sha}\n" in adoption.after
    assert adoption.after.startswith(adoption.before.split("versions:")[0])  # header comments kept
    assert "# Every version and its weights, declared once" in adoption.after
    (root / "models" / f"{MODEL}.yaml").write_text(adoption.after)
    registry = load_registry(root / "models", load_all_stacks(root / "stacks"))
    assert registry.models[MODEL].versions["v2"].artifact == sha
    message = adoption.message
    assert message.startswith(f"feat(models): {MODEL} v2 from local training package {sha[:12]}")
    assert "tiny-chat-corpus@2 (train abc)" in message and '{"steps": 500}' in message
    assert f"-> artifact sha256:{sha}" in message and "the registry's current training spec" in message
    assert "tiny-chat-heldout/bits_per_byte: 0.5" in message


def test_an_earlier_spec_is_said_so(root: Path) -> None:
    sha = packaged(root, spec="f" * 64)
    assert "an earlier training spec (ffffffffffff)" in adopt_local(root, entry(root), "v2", {}, sha).message


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("failed", "failed its evaluation gates: tiny-chat-heldout/bits_per_byte 0.9 \\(threshold 0.75\\)"),
        ("no record", "no package record"),
        ("tampered", "no longer hash to it"),
        ("declared", "these weights are declared already, as version 'v2'"),
        ("name used", "version 'v1' is declared already"),
        ("no outputs", "no local training package in this stack's outputs: run `up` first"),
    ],
)
def test_what_cannot_become_a_version_writes_nothing(root: Path, case: str, expected: str) -> None:
    path = root / "models" / f"{MODEL}.yaml"
    sha = packaged(root, passed=case != "failed")
    store = ArtifactStore(root / STORE_DIR)
    if case == "no record":
        package_path(store.root, MODEL, sha).unlink()
    if case == "tampered":
        target = store.get(sha) / "model.safetensors"
        target.chmod(0o644)
        target.write_bytes(b"other weights")
    if case == "declared":
        path.write_text(
            path.read_text().replace(
                '    local: "@training"\n', f'    local: "@training"\n  v2:\n    local: sha256:{sha}\n'
            )
        )
    before = path.read_text()
    with pytest.raises(AdoptError, match=expected):
        adopt_local(
            root, entry(root), "v1" if case == "name used" else "v3", {} if case == "no outputs" else outputs(sha), None
        )
    assert path.read_text() == before


def test_a_malformed_pin_is_a_located_error(root: Path) -> None:
    path = root / "models" / f"{MODEL}.yaml"
    text = path.read_text().replace(
        '    local: "@training"\n', '    local: "@training"\n  v2:\n    local: sha256:abc\n'
    )
    path.write_text(text)
    _, problems = validate(root / "models", load_all_stacks(root / "stacks"))
    line = text.splitlines().index("  v2:") + 1
    assert [p for p in problems if "64 lowercase hex digits" in str(p)], problems
    assert all(str(p).startswith(f"models/{MODEL}.yaml:{line}: versions.v2") for p in problems), problems
