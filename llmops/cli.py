"""The `llmops` command.

Each subcommand lives in the module that owns its logic and registers itself
through an `add_parser(subparsers)` function; this file only assembles them and
turns expected failures into one-line messages (never a traceback).

`llmops COMMAND …` imports COMMAND's module alone, so the heavy libraries (torch,
transformers, scipy, statsmodels, pandas, pulumi, …) load only in the commands that
use them, and `llmops --help` imports none. To add a command, add its line to
`COMMANDS`: the module that registers it and the help line `llmops --help` shows
(tests/unit/test_cli.py checks each line against what its module registers).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Collection, Sequence

from llmops import __version__
from llmops.errors import UserError

__all__ = ["COMMANDS", "UserError", "build_parser", "main"]

# name -> (module whose `add_parser` registers it, the one-line help of `llmops --help`), in help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "registry": ("llmops.commands", "validate the model registry, export its JSON Schema"),
    "outputs": ("llmops.commands", "print a stack's outputs and a working example request"),
    "stacks": ("llmops.commands", "the stacks an environment's stack file deploys, in deploy order"),
    "size": ("llmops.sizing.command", "GPU memory and the cheapest fitting instance for a model, and why"),
    # llmops.usage.cli registers `cost` from llmops.cost and adds `--measured` to it.
    "cost": ("llmops.usage.cli", "monthly on-demand cost of each stack, line by line"),
    "rightsize": (
        "llmops.usage.cli",
        "propose min/max replicas, instance and scale to zero from measured load (--write edits the registry)",
    ),
    "plan": ("llmops.plan", "the stacks a git change affects, in promotion order, with reasons"),
    "promote": ("llmops.promote", "serve a model version in an environment (edits the registry file, prints the diff)"),
    "train": ("llmops.training_adopt", "fine-tuning: adopt a training package as a new, pinned version"),
    "ci": ("llmops.ci.commands", "the CI steps: plan, preview, policy, deploy, pr-comment, review, drift"),
    "data": ("llmops.datasets.commands", "validate the registry's datasets"),
    "monitor": ("llmops.datasets.commands", "monitoring of served models"),
    "lineage": ("llmops.datasets.lineage", "dataset version -> artifact -> endpoint version of a model"),
    "experiment": ("llmops.experiments.cli", "A/B experiments: statistical report, advance or roll back a canary"),
    "history": ("llmops.experiments.cli", "which registry commit and versions serve a stack, and since when"),
    "rollback": ("llmops.experiments.cli", "commit the revert of a stack's last registry change (or since --to)"),
    "eval": ("llmops.evaluation.cli", "run a model's evaluation suites and judge its gates"),
    "model-card": ("llmops.evaluation.cli", "generate MODEL's card from the registry and its latest evaluation"),
    "bootstrap": ("llmops.bootstrap.cli", "the once-per-account AWS bootstrap (bootstrap/)"),
    "migrate-stacks": (
        "llmops.migrate",
        "split an environment's stack into a platform stack and a stack per model, replacing nothing",
    ),
}


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the full parsers of `commands` (default: every command).

    Every other command is listed with its help line only, which is all `llmops --help` shows.
    """
    parser = argparse.ArgumentParser(prog="llmops", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"llmops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = {COMMANDS[c][0] for c in (COMMANDS if commands is None else commands) if c in COMMANDS}
    registered: set[str] = set()
    for name, (module, help_line) in COMMANDS.items():
        if module not in wanted:
            sub.add_parser(name, help=help_line)
        elif module not in registered:  # a module registers all of its commands at once
            importlib.import_module(module).add_parser(sub)
            registered.add(module)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command word: the first argument that is not an option (`llmops` has no option taking a value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command(argv)
    parser = build_parser([command] if command else [])
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except UserError as exc:
        print(f"llmops: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `llmops cost --json | head`: the reader left; not an error of ours. Point stdout
        # at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status


if __name__ == "__main__":
    raise SystemExit(main())
