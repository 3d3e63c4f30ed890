"""Real, throwaway git repositories for the GitOps tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

# Sizing reads model configs offline, as `make test` runs it (scripts/env.sh); set before
# huggingface_hub is imported, which reads it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


class Repo:
    """A git repository on disk, driven through the real git CLI."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {**os.environ, **GIT_ENV, "HOME": str(root.parent)}

    def git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=self.root, env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
        return result.stdout.strip()

    def write(self, path: str, text: str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str, files: dict[str, str] | None = None, remove: Iterable[str] = ()) -> str:
        for path, text in (files or {}).items():
            self.write(path, text)
        for path in remove:
            self.git("rm", "-q", path)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def move(self, old: str, new: str) -> None:
        (self.root / new).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", old, new)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


def stack_yaml(environment: str, target: str = "aws") -> str:
    return yaml.safe_dump({"config": {"llmops:target": target, "llmops:environment": environment}}, sort_keys=False)


def model_yaml(
    name: str,
    environments: Iterable[str],
    *,
    config: str | None = None,
    dataset: str | None = None,
    comment: str = "",
) -> str:
    """A registry entry with the fields `plan` reads and the shape real files have."""
    entry: dict[str, object] = {
        "name": name,
        "owner": "platform-ml",
        "description": f"{name} {comment}".strip(),
        "task": "text-generation",
        "source": {"config": config or f"configs/{name}.json"},
        "versions": {"v1": {"huggingface": {"repo": f"org/{name}", "revision": "main"}}},
        "serving": {"runtime": "vllm", "max_context": 4096, "variants": [{"version": "v1", "weight": 100}]},
        "deployments": {env: {} for env in environments},
    }
    if dataset:
        entry["training"] = {"base_model": "scratch", "dataset": {"uri": dataset, "version": "1"}, "max_runtime": 600}
    return yaml.safe_dump(entry, sort_keys=False)


STACKS = {"dev": "dev", "staging": "staging", "prod": "prod", "local": "local"}


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """A repository with the four stacks and a main branch holding one initial commit."""
    r = Repo(tmp_path / "repo")
    r.root.mkdir()
    r.git("init", "-q", "-b", "main")
    files = {
        f"stacks/Pulumi.{s}.yaml": stack_yaml(env, "local" if s == "local" else "aws") for s, env in STACKS.items()
    }
    files["Pulumi.yaml"] = "name: llmops\nruntime: python\nstackConfigDir: stacks\n"
    files["README.md"] = "# test\n"
    r.commit("initial", files)
    return r
