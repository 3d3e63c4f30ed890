"""Which weights `llmops eval run` measures: a stack's served artifact, or the registry's own.

Without a stack, a model trained by the local target is the artifact its current
training inputs produced (the store's training cache), and a model served from a
folder is that folder. With `--stack`, the stack's outputs (`llmops.engine.stack_outputs`) name the artifact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.errors import UserError
from llmops.local.store import STORE_DIR, ArtifactStore, tree_sha256
from llmops.registry import TRAINING_OUTPUT, ModelEntry


@dataclass(frozen=True)
class Weights:
    id: str  # artifact sha256 or folder content hash
    path: Path


def resolve_weights(root: Path, entry: ModelEntry, outputs: dict[str, Any] | None = None) -> Weights:
    source = entry.weights()
    local = source.local
    if local is None:
        raise UserError(
            f"{entry.name} serves {source.uri}: `llmops eval run` measures local weights; hosted "
            "endpoints are evaluated by `llmops ci deploy` on staging"
        )
    store = ArtifactStore(root / STORE_DIR)
    if source.artifact is not None:
        from llmops.local.packages import PackageMissingError, pinned_folder

        try:
            return Weights(
                source.artifact,
                pinned_folder(
                    root, f"models/{entry.name}.yaml: versions.{entry.default_version}.local", source.artifact
                ),
            )
        except PackageMissingError as exc:
            raise UserError(str(exc)) from None
    if local != TRAINING_OUTPUT:
        folder = (root / local).resolve()
        if not folder.is_dir():
            where = f"models/{entry.name}.yaml: versions.{entry.default_version}.local"
            raise UserError(f"{where}: no such folder {folder}")
        return Weights(tree_sha256(folder), folder)
    if outputs is not None:
        artifact = (outputs.get("artifacts") or {}).get(entry.name) or {}
        sha = artifact.get("sha256")
        if not sha:
            raise UserError(f"the stack's outputs name no artifact for {entry.name}")
        return Weights(sha, store.get(sha))
    assert entry.training is not None
    from llmops.datasets.lineage import training_file
    from llmops.local.train import inputs_key

    data = training_file(root, entry.training.dataset)
    config = json.loads((root / "models" / entry.source.config).read_text())
    sha = store.lookup(inputs_key(config, data[1] if data else "", dict(entry.training.hyperparameters)))
    if sha is None:
        raise UserError(
            f"{entry.name} has not been trained with its current registry inputs on this machine: run `make up`"
        )
    return Weights(sha, store.get(sha))
