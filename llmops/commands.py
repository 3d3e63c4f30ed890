"""`llmops registry …` and `llmops outputs`: the registry's own commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmops import paths
from llmops.errors import UserError
from llmops.registry import Problem, Registry, json_schema, validate
from llmops.settings import StackSettings, load_all_stacks

SCHEMA_FILE = "schema.json"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reg = sub.add_parser("registry", help="validate the model registry, export its JSON Schema")
    reg_sub = reg.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    val = reg_sub.add_parser("validate", help="report every problem in the registry, located")
    val.add_argument("paths", nargs="*", type=Path, help="files to check (default: all of models/)")
    val.add_argument(
        "--no-sizing", action="store_true", help="skip sizing each deployment for its stacks (faster; loads no configs)"
    )
    val.add_argument(
        "--base",
        metavar="REF",
        help="the commit whose first-parent history says which versions have served (their weights are fixed); "
        "default: the merge base of HEAD with main, else HEAD",
    )
    val.set_defaults(func=cmd_validate)
    schema = reg_sub.add_parser("schema", help="print, --write or --check models/schema.json")
    mode = schema.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true", help="exit 1 when models/schema.json is stale")
    schema.set_defaults(func=cmd_schema)

    out = sub.add_parser("outputs", help="print a stack's outputs and a working example request")
    out.add_argument("--stack", default="local")
    out.set_defaults(func=cmd_outputs)

    stacks = sub.add_parser("stacks", help="the stacks an environment's stack file deploys, in deploy order")
    stacks.add_argument("stack", help="the environment's stack (stacks/Pulumi.<stack>.yaml)")
    stacks.add_argument("--reverse", action="store_true", help="destroy order: model stacks first")
    stacks.set_defaults(func=cmd_stacks)


def check_registry(
    models_dir: Path, stacks: dict[str, StackSettings], paths: list[Path] | None = None, *, sizing: bool = True
) -> tuple[Registry, list[Problem]]:
    """Every problem of the registry (or of `paths`): the file checks, then sizing each
    deployment in each stack of its environment, so nothing fails later at preview."""
    registry, problems = validate(models_dir, stacks, paths)
    if sizing:
        from llmops.sizing import sizing_problems

        checked = {p.resolve() for p in paths} if paths else None
        only = [name for name, path in registry.files.items() if checked is None or path.resolve() in checked]
        problems += sizing_problems(registry, stacks, models_dir, only)
    return registry, sorted(problems, key=lambda p: (p.file, p.line or 0, p.path, p.message))


def cmd_validate(args: argparse.Namespace) -> int:
    root = paths.repo_root()
    try:
        stacks = load_all_stacks(paths.stacks_dir(root))
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise UserError(f"cannot read the stack settings: {str(exc).splitlines()[0]}") from None
    targets = list(args.paths) or None
    registry, problems = check_registry(paths.models_dir(root), stacks, targets, sizing=not args.no_sizing)
    problems = sorted(problems + _served_problems(root, registry, targets, args.base), key=_order)
    for problem in problems:
        print(problem)
    if problems:
        files = len({p.file for p in problems})
        print(f"{len(problems)} problem(s) in {files} file(s)", file=sys.stderr)
        return 1
    checked = len(targets) if targets else len(registry.models)
    print(f"registry OK: {checked} model file(s) valid")
    return 0


def _order(p: Problem) -> tuple[str, int, str, str]:
    return (p.file, p.line or 0, p.path, p.message)


def _served_problems(root: Path, registry: Registry, targets: list[Path] | None, base: str | None) -> list[Problem]:
    """Versions whose weights changed since they served, by the git history of `base`."""
    from llmops.gitrepo import GitError
    from llmops.registry.served import changed_weights, default_base

    if base is None:
        base = default_base(root)
        if base is None:
            print("note: not a git checkout with commits: served versions are not compared", file=sys.stderr)
            return []
    checked = {p.resolve() for p in targets} if targets else None
    only = {m for m, path in registry.files.items() if checked is None or path.resolve() in checked}
    try:
        return changed_weights(registry, root, base, only)
    except GitError as exc:
        raise UserError(f"--base {base}: {exc}") from None


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def cmd_schema(args: argparse.Namespace) -> int:
    target = paths.models_dir() / SCHEMA_FILE
    text = schema_text()
    if args.write:
        target.write_text(text)
        print(f"wrote {target}")
    elif args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"{target} is stale: run `make schema`", file=sys.stderr)
            return 1
        print(f"{target.name} is up to date")
    else:
        sys.stdout.write(text)
    return 0


def cmd_stacks(args: argparse.Namespace) -> int:
    """One line per stack: the environment's stack, then (`layout: split`) each model stack."""
    from llmops.layout import deployed_models, is_model_stack, model_stacks
    from llmops.settings import load_stack_settings

    root = paths.repo_root()
    path = root / "stacks" / f"Pulumi.{args.stack}.yaml"
    if is_model_stack(args.stack) or not path.is_file():
        raise UserError(f"no stacks/Pulumi.{args.stack}.yaml: name an environment's stack")
    settings = load_stack_settings(path)
    names = [args.stack]
    if settings.layout == "split":
        names += model_stacks(args.stack, settings, deployed_models(root, settings))
    print("\n".join(reversed(names) if args.reverse else names))
    return 0


def cmd_outputs(args: argparse.Namespace) -> int:
    from llmops.engine import stack_outputs

    outputs = stack_outputs(args.stack, paths.repo_root())
    print(json.dumps(outputs, indent=2))
    for name, endpoint in sorted((outputs.get("endpoints") or {}).items()):
        url = endpoint.get("url") if isinstance(endpoint, dict) else None
        if url:
            body = json.dumps({"model": name, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16})
            print(f"\nTry it:\n  curl -s {url}/v1/chat/completions -H 'Content-Type: application/json' -d '{body}'")
            print(f"  (metrics: {url}/metrics; the answering version is in the x-llmops-version header)")
            if endpoint.get("standIn"):
                print(
                    f"  (kube target: a local replica per Ready pod answers with the stand-in weights of "
                    f"{endpoint['standIn']}, not {name}'s; in the cluster the Service is {endpoint.get('serviceUrl')})"
                )
    prometheus = outputs.get("prometheusUrl")
    if prometheus:
        print(f"\nPrometheus: {prometheus} (SLO alerts: {prometheus}/alerts)")
    dashboard = outputs.get("dashboardUrl")
    if dashboard:
        print(f"Dashboard: {dashboard} (every model and version; a page per model)")
    return 0
