"""Which enforcement levels a stack's preview runs the pack with.

Each environment ships `policies/config/<environment>.json`, the file given to
`pulumi preview --policy-pack-config`: `"all"` is the environment's default
level, other keys override single policies (staging keeps the budget advisory).
The stack file's `llmops:policy.enforcement` states the same default where
people read a stack's settings; `config_for_stack` refuses a pair that
disagrees, so the two can never drift apart silently.

    python -m policies.enforcement STACK    # prints the config file for STACK
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmops.paths import stacks_dir
from llmops.settings import STACK_FILE_PREFIX, load_stack_settings

CONFIG_DIR = Path(__file__).resolve().parent / "config"
LEVELS = ("advisory", "mandatory", "remediate", "disabled")


class PolicyConfigError(ValueError):
    """A stack without a usable policy configuration."""


def config_path(environment: str) -> Path:
    return CONFIG_DIR / f"{environment}.json"


def load_config(path: Path) -> dict[str, Any]:
    config = json.loads(path.read_text())
    if not isinstance(config, dict):
        raise PolicyConfigError(f"{path}: expected a JSON object of policy name -> level")
    return config


def level_of(entry: Any) -> str | None:
    """The enforcement level of one config entry (`"advisory"` or `{"enforcementLevel": …}`)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        level = entry.get("enforcementLevel")
        return str(level) if level is not None else None
    return None


def check_config(config: dict[str, Any], policy_names: Sequence[str], where: str) -> list[str]:
    """Problems with a config: unknown policy names and unknown levels."""
    problems = []
    for key, entry in config.items():
        if key != "all" and key not in policy_names:
            problems.append(f"{where}: {key!r} is not a policy of the pack")
        level = level_of(entry)
        if level is not None and level not in LEVELS:
            problems.append(f"{where}: {key}: unknown enforcement level {level!r} (use one of {', '.join(LEVELS)})")
    return problems


def config_for_stack(stack: str, stacks: Path | None = None) -> Path:
    """The `--policy-pack-config` file for `stack`, checked against the stack's settings (a model
    stack `<env stack>.<model>`: its environment stack's, whose file holds its settings)."""
    stack_file = (stacks or stacks_dir()) / f"{STACK_FILE_PREFIX}{stack.split('.', 1)[0]}.yaml"
    if not stack_file.is_file():
        raise PolicyConfigError(f"no stack file {stack_file}")
    settings = load_stack_settings(stack_file)
    path = config_path(settings.environment)
    if not path.is_file():
        raise PolicyConfigError(
            f"environment {settings.environment!r} of stack {stack!r} has no policy configuration: "
            f"add policies/config/{settings.environment}.json"
        )
    default = level_of(load_config(path).get("all"))
    if default != settings.policy.enforcement:
        raise PolicyConfigError(
            f"{stack_file.name}: llmops:policy.enforcement is {settings.policy.enforcement!r} but "
            f'policies/config/{path.name} sets "all" to {default!r}; make them agree'
        )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m policies.enforcement STACK", file=sys.stderr)
        return 2
    try:
        print(config_for_stack(args[0]))
    except PolicyConfigError as exc:
        print(f"policies: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
