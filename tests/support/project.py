"""Throwaway copies of this project for tests that run the real Pulumi engine.

A copy holds the git-tracked (and untracked, not ignored) files, with `.venv`,
`bin/` and `.kube-tools/` linked back to the checkout, its own file backend and its own stack
files, so tests never touch the user's `local` stack, state or ports.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops.engine import engine_env, pulumi_binary
from llmops.registry import SCHEMA_HEADER

REPO = Path(__file__).resolve().parents[2]


def project_files(repo: Path = REPO) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [f for f in out.split("\0") if f and (repo / f).is_file()]


# Throwaway stacks take their ports from below the kernel's ephemeral range (32768 and up on
# Linux), where no outgoing connection or port-0 bind lands, and below the local stack (18400),
# the kube stack (18600) and review stacks (20000 and up). scripts/test-suite.sh gives its two
# pytest runs separate lanes (TEST_PORT_LANE 0 and 1), so neither picks the other's ports.
PORT_LANES = ((10000, 14000), (14000, 18000))


def free_port_base(span: int = 40) -> int:
    """A base port whose next `span` ports are free now, in this run's lane (best effort)."""
    lane = os.environ.get("TEST_PORT_LANE")
    low, high = PORT_LANES[int(lane)] if lane in ("0", "1") else (PORT_LANES[0][0], PORT_LANES[-1][1])
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(low, high - span)
        if all(_port_free(base + i) for i in range(span)):
            return base
    raise RuntimeError(f"no {span} free ports in {low}-{high}")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Project:
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def pulumi(
        self, *args: str, stack: str | None = None, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        cmd = [pulumi_binary(self.root), *args, "--non-interactive"]
        if stack:
            cmd += ["--stack", stack]
        result = subprocess.run(cmd, cwd=self.root, env=self.env, text=True, capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            output = f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
            raise AssertionError(f"pulumi {' '.join(args)} failed ({result.returncode}):\n{output}")
        return result

    def write_stack(self, name: str, config: dict[str, Any]) -> Path:
        path = self.root / "stacks" / f"Pulumi.{name}.yaml"
        path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
        return path

    def local_stack(self, name: str, **local: Any) -> str:
        """A throwaway local-target stack on its own ports and state folder, created in the backend."""
        settings = {"basePort": free_port_base(), "stateDir": f".state/{name}", "healthTimeoutSeconds": 180, **local}
        self.write_stack(
            name,
            {
                "llmops:target": "local",
                "llmops:environment": "local",
                "llmops:local": settings,
                "llmops:policy": {"enforcement": "mandatory"},
            },
        )
        self.pulumi("stack", "init", name, "--secrets-provider", "passphrase")
        return name

    def edit_model(self, name: str, edit: Any) -> None:
        """Apply `edit(dict)` to models/<name>.yaml (comments other than the schema header are not kept)."""
        path = self.root / "models" / f"{name}.yaml"
        data = yaml.safe_load(path.read_text())
        edit(data)
        path.write_text(f"{SCHEMA_HEADER}\n{yaml.safe_dump(data, sort_keys=False)}")


def copy_project(dest: Path, repo: Path = REPO) -> Project:
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files(repo):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, target)
    for link in (".venv", "bin", ".kube-tools"):
        if (repo / link).exists() and not (dest / link).exists():
            os.symlink(repo / link, dest / link)
    backend = dest / ".pulumi" / "state"
    backend.mkdir(parents=True, exist_ok=True)
    env = engine_env(dest, backend_url=f"file://{backend}")
    env["PULUMI_CONFIG_PASSPHRASE"] = "throwaway-test-passphrase"
    return Project(root=dest, env=env)
