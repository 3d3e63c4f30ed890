"""Running the project's own Pulumi engine (bin/) from Python: CI entry points and tests.

Mirrors `scripts/env.sh`, so a command started from Python sees exactly what
`make` and a user who sourced that file see.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from llmops.errors import UserError
from llmops.layout import is_model_stack
from llmops.paths import repo_root, stacks_dir

DEV_PASSPHRASE = "llmops-local-dev-only"  # the local stack's documented dev-only passphrase


def engine_env(
    root: Path | None = None, *, backend_url: str | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for `pulumi` and the program: built engine first on PATH, state in the repo."""
    root = (root or repo_root()).resolve()
    env = dict(os.environ if base is None else base)
    env["LLMOPS_ROOT"] = str(root)
    # .kube-tools/bin: the kube target's binaries and the pulumi-kubernetes plugin (`make kube-tools`).
    tools = [str(root / "bin"), str(root / ".venv" / "bin"), str(root / ".kube-tools" / "bin")]
    env["PATH"] = os.pathsep.join([*tools, env.get("PATH", "")])
    env["PULUMI_HOME"] = str(root / ".pulumi" / "home")
    env["PULUMI_BACKEND_URL"] = backend_url or env.get("PULUMI_BACKEND_URL") or f"file://{root / '.pulumi' / 'state'}"
    env.setdefault("PULUMI_CONFIG_PASSPHRASE", DEV_PASSPHRASE)
    env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
    env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.pop("VIRTUAL_ENV", None)
    if backend_url is None and env["PULUMI_BACKEND_URL"].startswith("file://"):
        Path(env["PULUMI_BACKEND_URL"].removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    return env


def pulumi_binary(root: Path | None = None) -> str:
    root = root or repo_root()
    built = root / "bin" / "pulumi"
    if built.is_file():
        return str(built)
    found = shutil.which("pulumi")
    if found is None:
        raise FileNotFoundError("no pulumi CLI: run `make setup` to build it into bin/")
    return found


def run_pulumi(
    args: Sequence[str],
    *,
    root: Path | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = False,
    check: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the project's pulumi CLI in the project directory `root`."""
    root = root or repo_root()
    return subprocess.run(
        [pulumi_binary(root), *args, "--non-interactive"],
        cwd=root,
        env=dict(env) if env is not None else engine_env(root),
        text=True,
        capture_output=capture,
        check=check,
        timeout=timeout,
    )


def stack_outputs(stack: str, root: Path | None = None, *, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every output of `stack`, read by the project's engine from the project's backend.

    The one way the commands read a deployed stack (`llmops outputs`, `eval run --stack`,
    `lineage --stack`, the experiments' Prometheus URL, the staging gate): no `pulumi` on
    PATH or sourced `scripts/env.sh` needed. A stack the backend does not hold is a
    `UserError` naming the command that creates it. An environment split into stacks
    (llmops.layout) reads as one: its model stacks' outputs by model (endpoints, artifacts,
    evaluations, lineage, ...) are merged into its platform stack's.
    """
    root = (root or repo_root()).resolve()
    env = dict(env) if env is not None else engine_env(root)
    outputs = _outputs_of(stack, root, env)
    for model_stack in split_model_stacks(stack, root, env):
        for key, by_model in _outputs_of(model_stack, root, env).items():
            if isinstance(by_model, dict) and key not in SHARED_OUTPUTS:
                outputs[key] = {**(outputs.get(key) or {}), **by_model}
    return outputs


# A model stack's outputs that describe its environment, not its model: never merged.
SHARED_OUTPUTS = ("platform", "cluster")


def split_model_stacks(stack: str, root: Path, env: Mapping[str, str]) -> list[str]:
    """The model stacks in the backend of an environment stack whose file says `layout: split`."""
    path = stacks_dir(root) / f"Pulumi.{stack}.yaml"
    if is_model_stack(stack) or not path.is_file():
        return []
    config = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("config") or {}
    if config.get("llmops:layout") != "split":
        return []
    listed = run_pulumi(["stack", "ls", "--json"], root=root, env=env, capture=True)
    if listed.returncode != 0:
        raise UserError(f"cannot list the model stacks of {stack}: {listed.stderr.strip()[-300:]}")
    names = [str(s.get("name", "")).rsplit("/", 1)[-1] for s in json.loads(listed.stdout or "[]")]
    return sorted(n for n in names if n.startswith(f"{stack}."))


def _outputs_of(stack: str, root: Path, env: Mapping[str, str]) -> dict[str, Any]:
    result = run_pulumi(["stack", "output", "--json", "--stack", stack], root=root, env=env, capture=True)
    if result.returncode != 0:
        error = result.stderr.strip()
        if f"no stack named '{stack}' found" in error:
            backend = env["PULUMI_BACKEND_URL"]
            raise UserError(f"stack {stack} does not exist in {backend}: {creation_hint(stack, root)}")
        last = error.splitlines()[-1] if error else f"exit status {result.returncode}"
        raise UserError(f"cannot read the outputs of stack {stack}: {last.removeprefix('error: ')}")
    return dict(json.loads(result.stdout or "{}"))


def creation_hint(stack: str, root: Path | None = None) -> str:
    """How `stack` comes to exist: `make up` creates a local-target stack; a cloud stack is
    created once by hand with the secrets provider its stack file names (a guess would be wrong)."""
    path = stacks_dir(root) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        return f"and there is no {path.relative_to(path.parents[1])} to create it from"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if (data.get("config") or {}).get("llmops:target", "local") in ("local", "kube"):
        return f"create it with `make up STACK={stack}`"
    provider = data.get("secretsprovider") or f"<the secrets provider for {stack}>"
    return (
        "a cloud stack lives in its cloud backend (set PULUMI_BACKEND_URL) and is created there once by hand: "
        f"`pulumi stack init {stack} --secrets-provider {provider}`"
    )
