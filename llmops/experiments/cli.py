"""`llmops experiment report|advance`, `llmops history`, `llmops rollback`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from llmops import paths
from llmops.errors import UserError
from llmops.experiments.data import ExperimentData
from llmops.experiments.delivery import (
    Collect,
    DeliveryError,
    advance,
    environment_of,
    format_state,
    history,
    rollback,
)
from llmops.experiments.prometheus import PrometheusSource, SourceError
from llmops.experiments.report import Report, build_report
from llmops.naming import short_name, variant_name
from llmops.registry import Deployment, RegistryError, load_registry
from llmops.settings import StackSettings, load_all_stacks

DEFAULT_WINDOW = 3600


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    exp = sub.add_parser("experiment", help="A/B experiments: statistical report, advance or roll back a canary")
    exp_sub = exp.add_subparsers(dest="experiment_command", required=True, metavar="ACTION")
    rep = exp_sub.add_parser("report", help="per-variant metrics, tests and the verdict of a model's experiment")
    _source_arguments(rep)
    rep.add_argument("--model", help="registry name (default: every model with a split in the environment)")
    rep.add_argument("--json", action="store_true", help="machine-readable output")
    rep.add_argument(
        "--window", type=_positive, help="seconds to analyse back from now (default: since the split was committed)"
    )
    rep.add_argument("--html", type=Path, metavar="FILE", help="also write the report as one offline HTML file")
    rep.set_defaults(func=cmd_report)
    adv = exp_sub.add_parser("advance", help="commit the next weight step, or the canary's removal, per the verdict")
    _source_arguments(adv)
    adv.add_argument("--model", action="append", help="only this model (repeatable)")
    adv.set_defaults(func=cmd_advance)

    sm = exp_sub.add_parser(
        "smoke", help="send each deployed variant its example prompts; fail on errors or latency above the SLO"
    )
    sm.add_argument("--stack", default="local")
    sm.add_argument(
        "--per-prompt", type=_positive, default=2, help="requests per example prompt and variant (at most 10)"
    )
    sm.add_argument("--timeout", type=_positive, default=120, help="seconds one request may take")
    sm.set_defaults(func=cmd_smoke)

    hist = sub.add_parser("history", help="which registry commit and versions serve a stack, and since when")
    hist.add_argument("--stack", default="local")
    hist.add_argument("--ref", default="HEAD", help="the branch or commit whose history is read")
    hist.add_argument("--all", action="store_true", help="every change, not only the current state")
    hist.add_argument("--json", action="store_true")
    hist.set_defaults(func=cmd_history)

    rb = sub.add_parser("rollback", help="commit the revert of a stack's last registry change (or since --to)")
    rb.add_argument("--stack", default="local")
    rb.add_argument("--to", metavar="COMMIT", help="revert every change to this environment after COMMIT")
    rb.set_defaults(func=cmd_rollback)


def _positive(text: str) -> int:
    """A whole number of at least 1 (a window or period of 0 or less analyses nothing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _source_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", default="local")
    p.add_argument("--prometheus-url", help="local target: Prometheus (default: the stack's prometheusUrl output)")
    p.add_argument("--period", type=_positive, default=60, help="aws target: CloudWatch period in seconds")


# --------------------------------------------------------------------------- sources


def _stack(root: Path, stack: str) -> StackSettings:
    """A stack's settings; a model stack's (`<env>.<model>`) are its environment's, narrowed to the model."""
    from llmops.layout import stack_settings

    return stack_settings(paths.stacks_dir(root), stack)


def prometheus_url(root: Path, stack: str) -> str:
    from llmops.engine import stack_outputs

    url = stack_outputs(stack, root).get("prometheusUrl")
    if not isinstance(url, str) or not url:
        raise UserError(f"stack {stack} has no prometheusUrl output: pass --prometheus-url")
    return url


def collector(root: Path, args: argparse.Namespace) -> tuple[StackSettings, Collect]:
    """The stack's settings and a `collect(deployment, start, end)` for its target."""
    settings = _stack(root, args.stack)
    if settings.target == "local":
        source = PrometheusSource(args.prometheus_url or prometheus_url(root, args.stack))

        def collect_local(dep: Deployment, start: float, end: float) -> ExperimentData:
            return source.collect(dep.name, dep.environment, dep.variants, start, end)

        return settings, collect_local

    import boto3

    from llmops.experiments.cloudwatch import CloudWatchSource

    client = boto3.client("cloudwatch", region_name=settings.region)

    def collect_aws(dep: Deployment, start: float, end: float) -> ExperimentData:
        endpoint = short_name("llmops", dep.environment, dep.name, max_len=63)
        names = {v.version: variant_name(v.version) for v in dep.variants}
        cw = CloudWatchSource(client, endpoint, period=args.period)
        return cw.collect(dep.name, dep.environment, dep.variants, start, end, names)

    return settings, collect_aws


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """A source or delivery failure as one line (details on stderr), never a traceback."""
    try:
        yield
    except (SourceError, DeliveryError) as exc:
        lines = str(exc).splitlines()
        if len(lines) > 1:
            print("\n".join(lines[1:]), file=sys.stderr)
        raise UserError(lines[0]) from None


# --------------------------------------------------------------------------- commands


def cmd_report(args: argparse.Namespace) -> int:
    if args.html is not None:
        from llmops.dashboard.reports import html_target

        html_target(args.html)
    root = paths.repo_root()
    settings, collect = collector(root, args)
    try:
        registry = load_registry(paths.models_dir(root), load_all_stacks(paths.stacks_dir(root)))
    except RegistryError as exc:
        raise UserError(f"the registry is invalid:\n{exc}") from None
    deps = [d for d in registry.deployed_to(settings.environment) if not args.model or d.name == args.model]
    if args.model and not deps:
        raise UserError(f"model {args.model!r} is not deployed to {settings.environment}")
    if not args.model:
        deps = [d for d in deps if sum(1 for v in d.variants if v.weight > 0) > 1]
    now = time.time()
    reports = []
    with _user_errors():
        hist = history(root, settings.environment) if args.window is None else {}
        for dep in deps:
            since = hist[dep.name].current if dep.name in hist else None
            start = now - args.window if args.window else (since.timestamp if since else now - DEFAULT_WINDOW)
            reports.append(build_report(dep, collect(dep, start, now)))
    if args.html is not None:
        _write_html(root, args, settings, reports)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports] if not args.model else reports[0].to_dict(), indent=2))
    elif not reports:
        print(f"no experiment in {settings.environment}: no model splits its traffic")
    else:
        print("\n".join(r.text() for r in reports), end="")
    return 0


def _write_html(root: Path, args: argparse.Namespace, settings: StackSettings, reports: list[Report]) -> None:
    from llmops.dashboard.reports import write_experiment_html

    if len(reports) != 1:
        raise UserError(f"--html writes one experiment: pass --model (found {len(reports)})")
    url = (args.prometheus_url or prometheus_url(root, args.stack)) if settings.target == "local" else None
    write_experiment_html(args.html, reports[0], url)
    print(f"wrote {args.html}", file=sys.stderr)


def cmd_advance(args: argparse.Namespace) -> int:
    root = paths.repo_root()
    _, collect = collector(root, args)
    with _user_errors():
        decisions = advance(root, args.stack, collect, now=time.time(), models=args.model)
    for d in decisions:
        sha = f" [{d.commit[:12]}]" if d.commit else ""
        print(f"{d.model}: {d.action}{sha}: {d.detail}")
    if not decisions:
        print("no canary with a rollout to advance")
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    import httpx

    from llmops.experiments.smoke_requests import MAX_PER_PROMPT, invoker_for, probe, stack_endpoints
    from llmops.experiments.smoke_verdict import judge
    from llmops.sizing import stack_deployments

    if args.per_prompt > MAX_PER_PROMPT:
        raise UserError(f"--per-prompt: {args.per_prompt} is above {MAX_PER_PROMPT} (a smoke check, not a load test)")
    root = paths.repo_root()
    settings = _stack(root, args.stack)
    try:
        registry = load_registry(paths.models_dir(root), load_all_stacks(paths.stacks_dir(root)))
    except RegistryError as exc:
        raise UserError(f"the registry is invalid:\n{exc}") from None
    endpoints = stack_endpoints(root, args.stack)

    def sagemaker() -> object:
        import boto3
        from botocore.config import Config

        config = Config(read_timeout=args.timeout, retries={"max_attempts": 1})
        return boto3.client("sagemaker-runtime", region_name=settings.region, config=config)

    failed = 0
    with httpx.Client(timeout=httpx.Timeout(args.timeout, connect=10.0)) as http:
        for dep in stack_deployments(registry, settings):
            if dep.name not in endpoints:
                print(f"FAIL {dep.name}: stack {args.stack} has no endpoint for it (endpoints output)")
                failed += 1
                continue
            invoke, where = invoker_for(dep, endpoints[dep.name], http, sagemaker)
            for p in probe(dep, invoke, where, args.per_prompt):
                r = judge(dep.name, p, dep.model.monitoring.slo)
                failed += r.failed
                print(r.line())
    if failed:
        print(f"smoke check failed for {failed} variant(s)", file=sys.stderr)
        return 1
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    root = paths.repo_root()
    with _user_errors():
        environment = environment_of(root, args.stack)
        hist = history(root, environment, args.ref)
    if args.json:
        out = {
            m: [
                {"commit": c.commit, "date": c.date, "subject": c.subject, "variants": dict(c.state)} for c in h.changes
            ]
            if args.all
            else {"commit": h.changes[-1].commit, "date": h.changes[-1].date, "variants": dict(h.changes[-1].state)}
            for m, h in hist.items()
        }
        print(json.dumps({"environment": environment, "models": out}, indent=2))
        return 0
    print(f"{args.stack} (environment {environment}), registry history of {args.ref}:")
    for model, h in hist.items():
        changes = h.changes if args.all else h.changes[-1:]
        for c in reversed(changes):
            age = _age(c.timestamp)
            print(f"  {model:<28} {format_state(c.state):<24} since {c.commit[:12]} {c.date} ({age}) {c.subject}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    root = paths.repo_root()
    with _user_errors():
        sha, reverted = rollback(root, args.stack, args.to)
    print(f"committed {sha[:12]}: reverts {', '.join(c.commit[:12] for c in reverted)}")
    print("push it (or open a pull request): CI's deploy applies it like any registry change")
    return 0


def _age(ts: float) -> str:
    seconds = max(0, int(datetime.now(UTC).timestamp() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
