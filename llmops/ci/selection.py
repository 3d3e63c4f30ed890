"""Which stacks a CI step acts on, and the checks before it acts: the checkout, the registry."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from llmops.ci.errors import CiError
from llmops.gitrepo import git, resolve
from llmops.plan import AffectedStack, Plan


def stack_targets(root: Path) -> dict[str, str]:
    """Stack -> target (aws, local) from the checkout's stack files."""
    from llmops.settings import load_all_stacks

    return {name: s.target for name, s in load_all_stacks(root / "stacks").items()}


def select_stacks(plan: Plan, root: Path, only: Sequence[str], target: str | None) -> list[AffectedStack]:
    """The plan's stacks, in its order, narrowed to `only` (names) and `target` (a model stack's: its platform's)."""
    targets = stack_targets(root) if target else {}
    chosen = [
        s for s in plan.stacks if (not only or s.stack in only) and (not target or targets.get(s.platform) == target)
    ]
    for name in only:
        if name not in plan.names:
            print(f"llmops ci: stack {name} is not affected by this change; nothing to do for it")
    return chosen


def check_checkout(root: Path, plan: Plan) -> None:
    """Pulumi deploys the files on disk: they must be the planned head."""
    if resolve(root, "HEAD") != plan.head:
        raise CiError(
            f"the checkout is at {resolve(root, 'HEAD')[:12]}, not the head {plan.head[:12]}: check it out first"
        )
    dirty = git(root, "status", "--porcelain", "--untracked-files=no").decode().strip()
    if dirty:
        print(f"llmops ci: warning: tracked files differ from {plan.head[:12]}:\n{dirty}", file=sys.stderr)


def validate_registry(root: Path) -> None:
    from llmops.registry import validate
    from llmops.settings import load_all_stacks

    _, problems = validate(root / "models", load_all_stacks(root / "stacks"))
    if problems:
        raise CiError("the registry has problems:\n" + "\n".join(f"  {p}" for p in problems))
    print("registry OK")
