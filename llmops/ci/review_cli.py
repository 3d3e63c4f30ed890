"""`llmops ci review open|close|reap`: the argument parsers and the commands review.yml runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from llmops.ci.errors import CiError
from llmops.ci.github import github_output
from llmops.ci.review import (
    DEFAULT_TTL_HOURS,
    ENVIRONMENT,
    Closed,
    Opened,
    close_review,
    open_aws_review,
    open_review,
    reap,
    require_pr,
    stack_name,
)
from llmops.ci.review_comment import closed_comment, review_comment
from llmops.ci.runner import DEFAULT_POLICY_CONFIG_DIR, DEFAULT_POLICY_PACK, Engine, engine_from_args
from llmops.ci.smoke import Smoke, smoke


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy-pack", default=DEFAULT_POLICY_PACK, help="policy pack path (an executable analyzer)")
    p.add_argument("--policy-config-dir", default=DEFAULT_POLICY_CONFIG_DIR, help="holds <environment>.json")
    p.add_argument("--timeout", type=float, default=None, help="seconds per pulumi command")
    p.add_argument("--quiet", action="store_true", help="do not echo pulumi's output")
    p.add_argument("--output", type=Path, help="write the comment markdown here (default: stdout)")
    p.add_argument(
        "--environment",
        default=ENVIRONMENT,
        help="local (default): pr-<N> on this machine; an AWS environment whose stack file enables "
        "llmops:review: pr-<N>-<environment>",
    )


def add_review_parser(ci_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from llmops.plan import add_range_arguments

    review = ci_sub.add_parser("review", help="a live stack per pull request: open, close, reap")
    sub = review.add_subparsers(dest="review_command", required=True, metavar="ACTION")

    p = sub.add_parser(
        "open", help="create or update pr-<N> (or pr-<N>-<environment>) for the models the pull request changes"
    )
    add_range_arguments(p)
    p.add_argument("--pr", type=int, required=True, help="the pull request number")
    p.add_argument(
        "--ttl", type=float, default=DEFAULT_TTL_HOURS, help="hours until reap destroys it (AWS: llmops:review.ttl)"
    )
    p.add_argument("--base-port", type=int, help="first port of the stack (default: derived from --pr)")
    p.add_argument("--base-stack", default="local", help="the stack serving base's models, for their answers")
    _engine_options(p)
    p.set_defaults(func=cmd_open)

    p = sub.add_parser("close", help="destroy pr-<N>; remove it only when the destroy succeeded")
    p.add_argument("--pr", type=int, required=True)
    p.add_argument("--repo", type=Path, default=None, help="the checkout (default: this project)")
    _engine_options(p)
    p.set_defaults(func=cmd_close)

    p = sub.add_parser("reap", help="close review stacks past their TTL or whose pull request is closed")
    p.add_argument("--open-prs", help="JSON list of the open pull request numbers (others are reaped)")
    p.add_argument("--repo", type=Path, default=None, help="the checkout (default: this project)")
    _engine_options(p)
    p.set_defaults(func=cmd_reap)

    p = sub.add_parser("environments", help="print the JSON list of AWS environments that enable review stacks")
    p.add_argument("--repo", type=Path, default=None, help="the checkout (default: this project)")
    p.set_defaults(func=cmd_environments)


def _root(args: argparse.Namespace) -> Path:
    from llmops.paths import repo_root

    return (args.repo or repo_root()).resolve()


def _write(args: argparse.Namespace, body: str) -> None:
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(body, encoding="utf-8")
    else:
        sys.stdout.write(body)


def _base_outputs(engine: Engine, stack: str) -> tuple[dict[str, str], dict[str, Any], str]:
    """Each model's URL and evaluation records on the stack serving base (and why there are
    none, when there are none)."""
    from pulumi import automation as auto

    try:
        outputs = auto.Stack.select(stack, engine.workspace()).outputs()
    except auto.StackNotFoundError:
        return {}, {}, f"no {stack} stack serves base"
    endpoints: dict[str, Any] = dict(outputs["endpoints"].value) if "endpoints" in outputs else {}
    evaluations: dict[str, Any] = dict(outputs["evaluations"].value) if "evaluations" in outputs else {}
    urls = {m: str(e["url"]) for m, e in endpoints.items() if e.get("url")}
    return urls, evaluations, f"{stack} does not serve it"


def cmd_open(args: argparse.Namespace) -> int:
    from llmops.errors import UserError
    from llmops.gitrepo import GitError
    from llmops.plan import plan_from_args
    from llmops.registry import load_registry
    from llmops.settings import load_all_stacks

    root, plan = plan_from_args(args)
    engine = engine_from_args(args, root)
    try:
        if args.environment != ENVIRONMENT:
            return _open_aws(args, open_aws_review(engine, plan, require_pr(args.pr), args.environment))
        opened = open_review(engine, plan, require_pr(args.pr), ttl_hours=args.ttl, port=args.base_port)
    except (CiError, GitError, ValueError) as exc:  # ValueError: a stack file's settings (located)
        raise UserError(str(exc)) from None
    smokes: dict[str, Smoke] = {}
    bases: dict[str, Smoke] = {}
    notes: dict[str, str] = {}
    gates: dict[str, list[Any]] = {}
    base_evaluations: dict[str, Any] = {}
    if opened.result is not None and opened.result.ok:
        registry = load_registry(root / "models", load_all_stacks(root / "stacks"))
        base_urls, base_evaluations, why = _base_outputs(engine, args.base_stack)
        gates = {m: list(registry.models[m].compliance.evaluation) for m in opened.models}
        for model in opened.models:
            entry, serving = registry.models[model], opened.endpoints.get(model) or {}
            tokens = entry.serving.max_new_tokens or 32
            smokes[model] = smoke(str(serving.get("url", "")), model, entry.examples, max_tokens=tokens)
            if model in base_urls:
                bases[model] = smoke(base_urls[model], model, entry.examples, max_tokens=tokens)
            notes[model] = why
    body = review_comment(opened, smokes, bases, notes, gates, base_evaluations)
    _write(args, body)
    github_output(stack=opened.stack, models=json.dumps(opened.models))
    ok = opened.result is None or (opened.result.ok and all(s.ok for s in smokes.values()))
    return 0 if ok else 1


def _open_aws(args: argparse.Namespace, opened: Opened) -> int:
    """The comment of an AWS review stack: its endpoint URLs (no smoke: SageMaker takes only
    SigV4-signed calls and an EKS service answers inside its cluster)."""
    _write(args, review_comment(opened, {}, {}, {}))
    github_output(stack=opened.stack, models=json.dumps(opened.models))
    if opened.refused:
        print(f"llmops ci review: {opened.refused}", file=sys.stderr)
        return 1
    return 0 if opened.result is None or opened.result.ok else 1


def cmd_environments(args: argparse.Namespace) -> int:
    from llmops.settings import load_all_stacks

    stacks = load_all_stacks(_root(args) / "stacks")
    enabled = sorted({s.environment for s in stacks.values() if s.target == "aws" and s.review.enabled})
    print(json.dumps(enabled))
    github_output(environments=json.dumps(enabled))
    return 0


def _report(args: argparse.Namespace, closed: list[Closed]) -> int:
    for c in closed:
        print(f"{c.stack}: {c.reason}", file=sys.stderr)
        if not c.ok and c.output:
            print(c.output, file=sys.stderr)
    _write(args, closed_comment(closed, args.environment))
    return 0 if all(c.ok for c in closed) else 1


def cmd_close(args: argparse.Namespace) -> int:
    engine = engine_from_args(args, _root(args))
    return _report(args, [close_review(engine, stack_name(require_pr(args.pr), args.environment))])


def cmd_reap(args: argparse.Namespace) -> int:
    engine = engine_from_args(args, _root(args))
    open_prs = {int(n) for n in json.loads(args.open_prs)} if args.open_prs else None
    return _report(args, reap(engine, open_prs, environment=args.environment))
