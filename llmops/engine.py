"""Running the project's own Pulumi engine (bin/) from Python: CI entry points and tests.

Mirrors `scripts/env.sh`, so a command started from Python sees exactly what
`make` and a user who sourced that file see.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from llmops.paths import repo_root

DEV_PASSPHRASE = "llmops-local-dev-only"  # the local stack's documented dev-only passphrase


def engine_env(
    root: Path | None = None, *, backend_url: str | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for `pulumi` and the program: built engine first on PATH, state in the repo."""
    root = (root or repo_root()).resolve()
    env = dict(os.environ if base is None else base)
    env["LLMOPS_ROOT"] = str(root)
    env["PATH"] = os.pathsep.join([str(root / "bin"), str(root / ".venv" / "bin"), env.get("PATH", "")])
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
