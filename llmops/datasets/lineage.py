"""Lineage: which dataset version, code and hyperparameters made an artifact, and which endpoint serves it.

The training job resolves a model's `training.dataset` reference (`name` +
`version`) to a `DatasetLineage` and records a `lineage.json` in the artifact (so
it is part of the artifact's sha256); the stack exports the chain per model as its
`lineage` output; `llmops lineage MODEL [--stack S]` prints it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmops import paths
from llmops.errors import UserError
from llmops.registry import Dataset

LINEAGE_FILE = "lineage.json"


@dataclass(frozen=True)
class DatasetLineage:
    name: str
    version: str
    md5: dict[str, str]  # split -> md5 (as in dvc.lock)
    train_file: str  # repository path of the train split

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def code_commit(root: Path) -> str:
    """The checkout's commit, with `-dirty` when tracked files differ from it."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def resolve(root: Path, dataset: Dataset) -> DatasetLineage:
    """The dataset a model's reference names, checked: known, at that version, content as pinned.

    Raises UserError naming the dataset with every problem when it is unusable.
    """
    from llmops.datasets.registry import content_problems, load_datasets

    if dataset.name is None:
        raise UserError("the dataset is not a registry reference (give name and version)")
    registry, problems = load_datasets(root)
    try:
        entry = registry.get(dataset.name, dataset.version)
    except KeyError as exc:
        raise UserError(f"dataset {dataset.name}@{dataset.version}: {exc.args[0]}") from None
    problems = [p for p in problems if p.file == registry.displays[entry.name]] + content_problems(registry, entry.name)
    if problems:
        listed = "\n".join(f"  {p}" for p in problems)
        raise UserError(f"dataset {entry.ref} cannot be used for training:\n{listed}")
    return DatasetLineage(
        name=entry.name,
        version=entry.version,
        md5={split: spec.md5 for split, spec in entry.splits.items()},
        train_file=f"{entry.path}/{entry.splits.train.file}",
    )


def record(dataset: DatasetLineage | None, commit: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """What an artifact records about how it was made."""
    return {
        "dataset": None if dataset is None else {**asdict(dataset), "ref": dataset.ref},
        "commit": commit,
        "hyperparameters": dict(sorted(hyperparameters.items())),
    }


def chain_lines(model: str, lineage: dict[str, Any]) -> list[str]:
    """The chain as text: dataset -> artifact -> endpoint."""
    ds = lineage.get("dataset") or {}
    lines = [f"model {model}"]
    if ds:
        md5 = ", ".join(f"{k} {v}" for k, v in sorted((ds.get("md5") or {}).items()))
        lines.append(f"  dataset   {ds.get('ref')}  ({md5})")
    else:
        lines.append("  dataset   (not a registry dataset)")
    if lineage.get("artifactSha256"):
        lines.append(f"  artifact  sha256 {lineage['artifactSha256']}  ({lineage.get('artifactUri', '')})")
    lines.append(f"  commit    {lineage.get('commit', 'unknown')}")
    hp = lineage.get("hyperparameters") or {}
    if hp:
        lines.append("  hyper     " + ", ".join(f"{k}={v}" for k, v in sorted(hp.items())))
    for ep in lineage.get("endpoint") or []:
        lines.append(f"  endpoint  {ep.get('name', model)} version {ep.get('version')} ({ep.get('weight')}%)")
    return lines


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser("lineage", help="dataset version -> artifact -> endpoint version of a model")
    cmd.add_argument("model")
    cmd.add_argument("--stack", help="read the deployed chain from this stack's outputs (default: the registry's)")
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(func=cmd_lineage)


def _registry_lineage(root: Path, model: str) -> dict[str, Any]:
    from llmops.registry import validate
    from llmops.settings import load_all_stacks

    registry, _ = validate(paths.models_dir(root), load_all_stacks(paths.stacks_dir(root)))
    entry = registry.models.get(model)
    if entry is None:
        raise UserError(f"no model {model!r} in the registry")
    if entry.training is None:
        raise UserError(f"{model} has no training section: it serves weights from {entry.weights().uri}")
    ds = entry.training.dataset
    dataset = resolve(root, ds) if ds.name else None
    return {
        **record(dataset, code_commit(root), dict(entry.training.hyperparameters)),
        "endpoint": [{"name": model, "version": v.version, "weight": v.weight} for v in entry.serving.variants],
    }


def cmd_lineage(args: argparse.Namespace) -> int:
    root = paths.repo_root()
    if args.stack:
        from llmops.engine import stack_outputs

        chains = stack_outputs(args.stack, root).get("lineage") or {}
        if args.model not in chains:
            raise UserError(f"stack {args.stack!r} has no lineage for {args.model!r} (deployed: {sorted(chains)})")
        lineage = chains[args.model]
    else:
        lineage = _registry_lineage(root, args.model)
    if args.json:
        print(json.dumps(lineage, indent=2, sort_keys=True))
    else:
        print("\n".join(chain_lines(args.model, lineage)))
    return 0


def training_file(root: Path, dataset: Dataset) -> tuple[Path, str] | None:
    """The file a model trains on and its sha256 — a registry dataset's train split, or a pinned
    file — the one notion of "the training data" that the trainer's inputs key, the evaluation's
    weights lookup and the model card share. None for data the local target cannot read."""
    from llmops.local.store import file_sha256

    if dataset.name is not None:
        path = root / resolve(root, dataset).train_file
        return path, file_sha256(path)
    if dataset.uri is None or dataset.sha256 is None or "://" in dataset.uri:
        return None
    return root / dataset.uri, dataset.sha256
