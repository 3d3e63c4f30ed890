"""`llmops bootstrap print-vars`: the repository variables, from the bootstrap stack's outputs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from llmops.errors import UserError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bootstrap", help="the once-per-account AWS bootstrap (bootstrap/)")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    v = verbs.add_parser("print-vars", help="the repository variables the workflows read, as `gh variable set` lines")
    v.add_argument("--stack", default="account", help="the bootstrap stack (default: account)")
    v.add_argument("--outputs", type=Path, help="read `pulumi stack output --json` saved in FILE instead")
    v.add_argument("--backend-url", help="where the bootstrap stack's state is (default: PULUMI_BACKEND_URL)")
    v.add_argument("--json", action="store_true", help="print a JSON list of {name, value, environment}")
    v.set_defaults(func=cmd_print_vars)


def cmd_print_vars(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from llmops.bootstrap.variables import from_outputs

    outputs = _read(args.outputs) if args.outputs else _stack_outputs(args.stack, args.backend_url)
    try:
        repository, variables = from_outputs(outputs)
    except ValueError as exc:
        raise UserError(f"{args.outputs or f'bootstrap stack {args.stack}'}: {exc}") from None
    if args.json:
        print(json.dumps([asdict(v) for v in variables], indent=2))
        return 0
    print(f"# Repository variables of {repository} (GitHub environments must exist before --env):")
    for variable in variables:
        print(variable.command(repository))
    return 0


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the bootstrap outputs: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a JSON object of stack outputs")
    return data


def _stack_outputs(stack: str, backend_url: str | None) -> dict[str, Any]:
    import subprocess

    from llmops import engine, paths

    root = paths.repo_root()
    try:
        done = subprocess.run(
            [engine.pulumi_binary(root), "stack", "output", "--json", "--stack", stack, "--non-interactive"],
            cwd=root / "bootstrap",
            env=engine.engine_env(root, backend_url=backend_url),
            capture_output=True,
            text=True,
        )
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr, end="")
        raise UserError(f"cannot read the outputs of bootstrap stack {stack!r} (is it deployed? see README)")
    return dict(json.loads(done.stdout))
