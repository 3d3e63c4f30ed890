"""`llmops ci …`: the argument parsers and the commands the workflows run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmops.ci.comment import load_policy_reports, load_previews, pr_comment, save_previews
from llmops.ci.deploy import after_updates, check_promoted, deploy, record_deployed, staging_gate, training_start
from llmops.ci.drift import drift_report
from llmops.ci.errors import CiError
from llmops.ci.github import github_output, github_summary
from llmops.ci.results import RunResult
from llmops.ci.runner import DEFAULT_POLICY_CONFIG_DIR, DEFAULT_POLICY_PACK, engine_from_args
from llmops.ci.selection import check_checkout, select_stacks, validate_registry
from llmops.gitrepo import GitError
from llmops.plan import Plan, add_range_arguments, plan_from_args
from llmops.settings import PROMOTION_ORDER, StackSettings

EXIT_DRIFT = 2


def _common(p: argparse.ArgumentParser, *, ranged: bool = True) -> None:
    if ranged:
        add_range_arguments(p)
    p.add_argument("--stack", action="append", default=[], dest="only", help="only this affected stack (repeatable)")
    p.add_argument("--target", choices=("aws", "local", "kube"), help="only stacks of this target (CI: aws)")
    p.add_argument("--policy-pack", default=DEFAULT_POLICY_PACK, help="policy pack path (an executable analyzer)")
    p.add_argument("--policy-config-dir", default=DEFAULT_POLICY_CONFIG_DIR, help="holds <environment>.json")
    p.add_argument("--timeout", type=float, default=None, help="seconds per pulumi command")
    p.add_argument("--quiet", action="store_true", help="do not echo pulumi's output")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ci = sub.add_parser("ci", help="the CI steps: plan, preview, policy, deploy, pr-comment, review, drift")
    ci_sub = ci.add_subparsers(dest="ci_command", required=True, metavar="STEP")

    p = ci_sub.add_parser("plan", help="affected stacks; step outputs `stacks`, `matrix` and `any` in GitHub")
    add_range_arguments(p)
    p.add_argument("--target", choices=("aws", "local", "kube"), help="only stacks of this target")
    p.set_defaults(func=cmd_plan)

    p = ci_sub.add_parser("preview", help="policy-checked preview of each affected stack")
    _common(p)
    p.add_argument("--out", type=Path, help="save <stack>.txt (console) and <stack>.json (results) here")
    p.set_defaults(func=cmd_preview)

    p = ci_sub.add_parser("deploy", help="validate, plan, then preview and up each affected stack in order")
    _common(p)
    p.add_argument("--dry-run", action="store_true", help="validate, plan and preview only")
    p.add_argument("--report", type=Path, help="write every run's results (changes, resources, violations) as JSON")
    p.add_argument(
        "--deployed",
        type=Path,
        help="model stacks: require each earlier environment's stack of the model to be recorded in this "
        "folder, and record each stack deployed here",
    )
    p.set_defaults(func=cmd_deploy)

    p = ci_sub.add_parser("pr-comment", help="markdown for the pull request: plan, previews, cost before → after")
    _common(p)
    p.add_argument("--previews", type=Path, help="read previews saved in this folder instead of running them")
    p.add_argument("--policy", type=Path, help="read offline policy reports (<stack>.policy.json) from this folder")
    p.add_argument("--output", type=Path, help="write the markdown here (default: stdout)")
    p.set_defaults(func=cmd_pr_comment)

    p = ci_sub.add_parser("policy", help="the policy pack over a stack's program under mocks: offline, no credentials")
    p.add_argument("--stack", action="append", required=True, dest="stacks", help="a stack file's name (repeatable)")
    p.add_argument("--repo", type=Path, default=None, help="the checkout (default: this project)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--out", type=Path, help="also save <stack>.policy.json here (for `ci pr-comment --policy`)")
    p.set_defaults(func=cmd_policy)

    p = ci_sub.add_parser("select", help="select a stack as every step does: a local one is created, a cloud one never")
    p.add_argument("--stack", required=True)
    p.add_argument("--existing", action="store_true", help="fail instead of creating a missing local stack")
    p.set_defaults(func=cmd_select)

    from llmops.ci.review_cli import add_review_parser

    add_review_parser(ci_sub)

    p = ci_sub.add_parser("drift", help="refresh-preview each stack; exit 2 and a report when anything drifted")
    _common(p, ranged=False)
    p.add_argument("--repo", type=Path, default=None, help="the checkout (default: this project)")
    p.add_argument("--report", type=Path, help="write the markdown report here when drift is found")
    p.set_defaults(func=cmd_drift)


def _fail(exc: Exception) -> None:
    from llmops.errors import UserError

    lines = str(exc).splitlines()
    if len(lines) > 1:
        print("\n".join(lines[1:]), file=sys.stderr)
    raise UserError(lines[0]) from None


def _render_plan(plan: Plan) -> str:
    from llmops.plan import render

    return render(plan)


def cmd_select(args: argparse.Namespace) -> int:
    """`make preview|up|refresh|destroy` select their stack here, so `make` never creates a cloud stack
    (`pulumi stack select --create` would, rewriting its committed stack file with a passphrase salt)."""
    from llmops.ci.runner import Engine
    from llmops.engine import engine_env
    from llmops.paths import repo_root

    root = repo_root()
    engine = Engine(root, engine_env(root), DEFAULT_POLICY_PACK, DEFAULT_POLICY_CONFIG_DIR)
    try:
        engine.select(args.stack, create=not args.existing)
    except CiError as exc:
        _fail(exc)
    print(f"stack {args.stack} selected")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    root, plan = plan_from_args(args)
    stacks = select_stacks(plan, root, [], args.target)
    print(_render_plan(plan))
    names = [s.stack for s in stacks]
    matrix = {
        "include": [
            {
                "stack": s.stack,
                "environment": s.environment,
                "policy_config": f"{DEFAULT_POLICY_CONFIG_DIR}/{s.environment}.json",
            }
            for s in stacks
        ]
    }
    # Per environment of the promotion chain, its model stacks (llmops.layout) as a matrix of their own.
    models = {
        env: [{"stack": s.stack, "model": s.model} for s in stacks if s.environment == env and s.model is not None]
        for env in PROMOTION_ORDER
    }
    github_output(
        stacks=json.dumps(names),
        matrix=json.dumps(matrix),
        any=str(bool(names)).lower(),
        **{f"models_{env}": json.dumps({"include": legs}) for env, legs in models.items()},
        **{f"any_models_{env}": str(bool(legs)).lower() for env, legs in models.items()},
    )
    github_summary(f"### Plan\n\n```\n{_render_plan(plan)}\n```")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    root, plan = plan_from_args(args)
    engine = engine_from_args(args, root)
    results = []
    try:
        for stack in select_stacks(plan, root, args.only, args.target):
            engine.select(stack.stack)
            results.append(engine.preview(stack.stack, stack.environment))
    except CiError as exc:
        _fail(exc)
    if args.out:
        save_previews(args.out, results)
    for result in results:
        status = "ok" if result.ok else "FAILED"
        print(f"{result.stack}: {status}, {result.summary()}, {len(result.violations)} policy violation(s)")
    return 0 if all(r.ok for r in results) else 1


def cmd_deploy(args: argparse.Namespace) -> int:
    root, plan = plan_from_args(args)
    results: list[RunResult] = []
    try:
        check_checkout(root, plan)
        validate_registry(root)
        print(_render_plan(plan))
        stacks = select_stacks(plan, root, args.only, args.target)
        if not stacks:
            print("nothing to deploy")
            return 0
        hooks = [training_start(root), staging_gate(root)]
        if args.deployed is not None:
            for stack in stacks:
                check_promoted(plan, stack, args.deployed)
            if not args.dry_run:
                hooks.append(lambda stack: record_deployed(stack, args.deployed))
        deploy(
            engine_from_args(args, root),
            stacks,
            dry_run=args.dry_run,
            results=results,
            after_update=after_updates(*hooks),
        )
    except CiError as exc:
        _fail(exc)
    finally:
        if args.report:
            report = {"plan": plan.to_dict(), "runs": [r.to_dict() for r in results]}
            args.report.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\n{'previewed' if args.dry_run else 'deployed'}: {', '.join(s.stack for s in stacks)}")
    return 0


def cmd_pr_comment(args: argparse.Namespace) -> int:
    root, plan = plan_from_args(args)
    stacks = select_stacks(plan, root, args.only, args.target)
    try:
        if args.previews:
            previews = load_previews(args.previews, stacks)
        else:
            engine = engine_from_args(args, root)
            previews = {}
            for stack in stacks:
                engine.select(stack.stack)
                previews[stack.stack] = engine.preview(stack.stack, stack.environment)
        policy = load_policy_reports(args.policy, stacks) if args.policy else {}
        body = pr_comment(root, plan, stacks, previews, policy)
    except (CiError, GitError) as exc:
        _fail(exc)
    if args.output:
        args.output.write_text(body, encoding="utf-8")
    else:
        sys.stdout.write(body)
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    from llmops.ci.offline_policy import check_stack
    from llmops.paths import repo_root

    root = (args.repo or repo_root()).resolve()
    try:
        reports = [check_stack(root, stack) for stack in args.stacks]
    except CiError as exc:
        _fail(exc)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for report in reports:
            (args.out / f"{report.stack}.policy.json").write_text(json.dumps(report.to_dict(), indent=2))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        for report in reports:
            print(f"{report.stack} ({report.environment}): {report.summary()}")
            for finding in report.findings:
                print(f"  {finding}")
    return 0 if all(r.ok for r in reports) else 1


def _with_model_stacks(root: Path, settings: dict[str, StackSettings]) -> dict[str, StackSettings]:
    """Every stack, each split environment's model stacks (llmops.layout) after their platform stack."""
    from llmops.layout import deployed_models, model_stacks
    from llmops.registry import load_registry

    split = {n: s for n, s in settings.items() if s.layout == "split"}
    registry = load_registry(root / "models", settings) if split else None  # read once for every environment
    out: dict[str, StackSettings] = {}
    for name in sorted(settings):
        out[name] = settings[name]
        if name in split:
            deployed = deployed_models(root, settings[name], registry)
            out.update(dict.fromkeys(model_stacks(name, settings[name], deployed), settings[name]))
    return out


def cmd_drift(args: argparse.Namespace) -> int:
    from llmops.paths import repo_root
    from llmops.settings import load_all_stacks

    root = (args.repo or repo_root()).resolve()
    engine = engine_from_args(args, root)
    settings = load_all_stacks(root / "stacks")
    everything = _with_model_stacks(root, settings)
    names = [n for n in everything if (not args.only or n in args.only)]
    names = [n for n in names if not args.target or everything[n].target == args.target]
    drifted: list[RunResult] = []
    try:
        for name in names:
            engine.select(name)
            result = engine.preview(name, everything[name].environment, refresh=True)
            if result.has_changes:
                drifted.append(result)
            elif not result.ok:
                raise CiError(f"refresh preview of {name} failed (exit status {result.returncode})")
            print(f"{name}: {'DRIFT, ' if result.has_changes else 'no drift, '}{result.summary()}")
    except CiError as exc:
        _fail(exc)
    github_output(drift=str(bool(drifted)).lower(), stacks=json.dumps([r.stack for r in drifted]))
    if not drifted:
        return 0
    report = drift_report(drifted)
    if args.report:
        args.report.write_text(report, encoding="utf-8")
    github_summary(report)
    return EXIT_DRIFT
