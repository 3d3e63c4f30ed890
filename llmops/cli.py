"""The `llmops` command.

Each subcommand lives in the module that owns its logic and registers itself
through an `add_parser(subparsers)` function; this file only assembles them and
turns expected failures into one-line messages (never a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from llmops import __version__
from llmops.errors import UserError

__all__ = ["UserError", "build_parser", "main"]


def _modules() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    # Imported lazily so `llmops --help` stays fast and one broken module cannot hide the others.
    from llmops import ci, commands, cost, plan, promote, sizing
    from llmops.datasets import commands as data_commands
    from llmops.datasets import lineage
    from llmops.evaluation import cli as evaluation
    from llmops.experiments import cli as experiments

    return [
        commands.add_parser,
        sizing.add_parser,
        cost.add_parser,
        plan.add_parser,
        promote.add_parser,
        ci.add_parser,
        data_commands.add_parser,
        lineage.add_parser,
        experiments.add_parser,
        evaluation.add_parser,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmops", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"llmops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _modules():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
