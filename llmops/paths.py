"""Where the repository's parts are, wherever a command is started from."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root(start: Path | None = None) -> Path:
    """The checkout root: $LLMOPS_ROOT, else the nearest parent holding Pulumi.yaml and models/."""
    env = os.environ.get("LLMOPS_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").is_file() and (candidate / "models").is_dir():
            return candidate
    # Fall back to the source tree this package was imported from (editable installs).
    return Path(__file__).resolve().parent.parent


def models_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "models"


def stacks_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "stacks"


def state_dir(root: Path | None = None) -> Path:
    """Local, git-ignored state: caches and the local stack's files (recreated on demand)."""
    return (root or repo_root()) / ".state"
