"""Fixtures for the core's unit tests: a scratch registry beside the real stacks and configs."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.registry import SCHEMA_HEADER
from llmops.settings import StackSettings, load_all_stacks

REPO = Path(__file__).resolve().parents[2]

# A valid AWS entry deployed to dev and prod; tests change one thing at a time.
BASE_ENTRY: dict[str, Any] = {
    "name": "demo",
    "owner": "team-a",
    "description": "A test model.",
    "task": "text-generation",
    "source": {"config": "configs/tinyllama-1.1b.json"},
    # v1 serves; v2 and v3 are declared for the tests that split traffic or shadow.
    "versions": {
        f"v{i}": {"huggingface": {"repo": "org/demo", "revision": f"{i}123456789abcdef0123456789abcdef01234567"}}
        for i in (1, 2, 3)
    },
    "serving": {
        "runtime": "vllm",
        "dtype": "bf16",
        "max_context": 2048,
        "concurrency": 4,
        "min_replicas": 1,
        "max_replicas": 2,
        "variants": [{"version": "v1", "weight": 100}],
    },
    "deployments": {"dev": {}, "prod": {"min_replicas": 2}},
    "monitoring": {"slo": {"p95_latency_ms": 2000, "error_rate": 0.01}},
    "compliance": {
        "licence": "apache-2.0",
        "model_card": "https://example.com/card",
        "evaluation": [{"suite": "assistant-basics", "metric": "accuracy", "threshold": 0.5}],
    },
}


def entry(**changes: Any) -> dict[str, Any]:
    """BASE_ENTRY with dotted-path changes, e.g. entry(**{"serving.dtype": "fp16"}); None deletes."""
    out = copy.deepcopy(BASE_ENTRY)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return out


def dump(data: Any) -> str:
    return f"{SCHEMA_HEADER}\n" + yaml.safe_dump(data, sort_keys=False)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never reach the hub: sizing reads the registry's shipped configs."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def stacks() -> dict[str, StackSettings]:
    return load_all_stacks(REPO / "stacks")


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """An empty registry with the shipped configs."""
    models = tmp_path / "models"
    shutil.copytree(REPO / "models" / "configs", models / "configs")
    shutil.copytree(REPO / "models" / "evals" / "assistant-basics", models / "evals" / "assistant-basics")
    return models


@pytest.fixture
def write(models_dir: Path) -> Callable[[str, Any], Path]:
    """Write a registry file: a dict (dumped with the schema header) or raw text/bytes."""

    def _write(name: str, content: Any) -> Path:
        path = models_dir / f"{name}.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(dump(content))
        return path

    return _write
