"""Evaluation suites: one folder per suite under models/evals/, holding lm-eval task YAMLs and
their data. The folder's content hash identifies the suite in every result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmops.local.store import tree_sha256
from llmops.registry import EVALS_DIR


class SuiteError(ValueError):
    """A suite that does not exist or cannot run."""


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path

    @property
    def sha256(self) -> str:
        """Content hash of the folder (task YAMLs, helpers, data), ignoring Python caches."""
        return tree_sha256(self.path, ignore=("__pycache__",))

    @property
    def task(self) -> str:
        """The lm-eval task the suite declares: its name is the suite's name."""
        return self.name


def suites_dir(models_dir: Path) -> Path:
    return models_dir / EVALS_DIR


def load_suite(models_dir: Path, name: str) -> Suite:
    path = suites_dir(models_dir) / name
    if not (path / f"{name}.yaml").is_file():
        raise SuiteError(f"no suite {name!r}: expected {path}/{name}.yaml (an lm-eval task named {name!r})")
    return Suite(name=name, path=path.resolve())


def all_suites(models_dir: Path) -> list[Suite]:
    root = suites_dir(models_dir)
    return [load_suite(models_dir, p.name) for p in sorted(root.iterdir()) if p.is_dir()] if root.is_dir() else []
