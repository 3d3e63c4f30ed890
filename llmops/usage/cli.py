"""`llmops cost --measured` and `llmops rightsize`: measured usage of a stack, priced and right-sized."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops.usage.data import VersionUsage, parse_duration
from llmops.usage.rightsize import DEFAULT_MIN_MINUTES

DEFAULT_WINDOW = "7d"


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _minutes(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes of at least 1")
    return int(text)


def add_window_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--window", type=_duration, default=DEFAULT_WINDOW, help="how far back to measure: 10m, 24h, 7d (default 7d)"
    )
    p.add_argument(
        "--prometheus-url",
        help="Prometheus to read: the local target's, or an EKS stack's reached another way (a port-forward); "
        "default: the stack's prometheusUrl output (on EKS through the cluster's API server)",
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`cost` (llmops/cost.py's, with `--measured` added: the estimate never imports this package)
    and `rightsize`."""
    from llmops import cost as estimate

    estimate.add_parser(sub)
    cost = sub.choices["cost"]
    cost.add_argument("--measured", action="store_true", help="$ per 1M tokens from measured serving")
    add_window_arguments(cost)
    cost.set_defaults(func=cmd_cost)
    p = sub.add_parser(
        "rightsize",
        help="propose min/max replicas, instance and scale to zero from measured load (--write edits the registry)",
    )
    p.add_argument("--stack", required=True)
    add_window_arguments(p)
    p.add_argument(
        "--min-minutes",
        type=_minutes,
        default=DEFAULT_MIN_MINUTES,
        help=f"measured minutes below which no proposal is made (default {DEFAULT_MIN_MINUTES})",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--write", action="store_true", help="edit the registry files, keeping comments")
    p.add_argument("--commit", action="store_true", help="with --write: one commit per model, evidence in the message")
    p.set_defaults(func=cmd_rightsize)


Measured = list[tuple[Any, list[VersionUsage]]]  # (Deployment, its versions' usage)


def measure(root: Path, stack: str, window: str, prometheus_url: str | None) -> tuple[Any, Measured]:
    """The stack's settings and each deployment's measured usage over the window."""
    from llmops import paths
    from llmops.errors import UserError
    from llmops.experiments.prometheus import SourceError
    from llmops.registry import RegistryError, load_registry
    from llmops.settings import load_all_stacks
    from llmops.sizing import stack_deployments

    stacks = load_all_stacks(paths.stacks_dir(root))
    if stack not in stacks:
        raise UserError(f"no stack {stack!r} (stacks/: {', '.join(sorted(stacks))})")
    settings = stacks[stack]
    try:
        registry = load_registry(paths.models_dir(root), stacks)
    except RegistryError as exc:
        raise UserError(f"the registry has problems (see `llmops registry validate`): {exc}") from None
    seconds, end = parse_duration(window), time.time()
    collect = _collector(root, stack, settings, prometheus_url, seconds, end)
    try:
        return settings, [(dep, collect(dep)) for dep in stack_deployments(registry, settings)]
    except SourceError as exc:
        raise UserError(str(exc).splitlines()[0]) from None


def _collector(
    root: Path, stack: str, settings: Any, prometheus_url: str | None, seconds: float, end: float
) -> Callable[[Any], list[VersionUsage]]:
    if settings.target == "local":
        from llmops.experiments.cli import prometheus_url as stack_prometheus
        from llmops.experiments.prometheus import PrometheusSource
        from llmops.usage import prometheus

        source = PrometheusSource(prometheus_url or stack_prometheus(root, stack))
        return lambda dep: prometheus.collect(source, dep.name, [v.version for v in dep.variants], seconds, end)

    import boto3

    from llmops import paths
    from llmops.catalog import load_catalog
    from llmops.naming import COMPONENT_VARIANT, inference_component_name, short_name, variant_name
    from llmops.sizing import size_for_stack, stack_platform
    from llmops.usage import cloudwatch

    client = boto3.client("cloudwatch", region_name=settings.region)
    eks = _eks_collector(root, stack, settings, prometheus_url, seconds, end)

    def collect_aws(dep: Any) -> list[VersionUsage]:
        if stack_platform(dep, settings) == "ec2":  # EKS: the runtimes' /metrics in the cluster's Prometheus
            return eks(dep)
        endpoint = short_name("llmops", dep.environment, dep.name, max_len=63)
        gpus = load_catalog().get(size_for_stack(dep, settings, paths.models_dir(root)).instance_type).gpus
        if dep.scale_to_zero is not None:  # one inference component on the one variant
            names = {v.version: COMPONENT_VARIANT for v in dep.variants}
            component = inference_component_name(endpoint)
            return cloudwatch.collect(client, endpoint, dep.name, names, gpus, seconds, end, component)
        names = {v.version: variant_name(v.version) for v in dep.variants}
        return cloudwatch.collect(client, endpoint, dep.name, names, gpus, seconds, end)

    return collect_aws


def _eks_collector(
    root: Path, stack: str, settings: Any, prometheus_url: str | None, seconds: float, end: float
) -> Callable[[Any], list[VersionUsage]]:
    """EKS endpoints' usage from the cluster's Prometheus: through the API server's service proxy
    (the stack's `cluster` and `prometheusUrl` outputs), or `--prometheus-url` where it is reachable
    another way (a port-forward). The stack outputs are read once, at the first EKS endpoint."""
    from llmops.observability import eks_runtime
    from llmops.usage import eks

    sources: list[tuple[Any, str | None]] = []

    def source() -> tuple[Any, str | None]:
        if not sources:
            sources.append(_eks_source(root, stack, settings, prometheus_url))
        return sources[0]

    def collect(dep: Any) -> list[VersionUsage]:
        if settings.target != "aws":  # the kube target runs no cluster Prometheus
            note = "served by the kube target, which runs no Prometheus: not measured"
            return [VersionUsage(dep.name, v.version, seconds, "eks", notes=[note]) for v in dep.variants]
        prom, namespace = source()
        versions = [v.version for v in dep.variants]
        return eks.collect(prom, dep.name, eks_runtime(dep), versions, seconds, end, namespace=namespace)

    return collect


def _eks_source(root: Path, stack: str, settings: Any, prometheus_url: str | None) -> tuple[Any, str | None]:
    from llmops.experiments.prometheus import PrometheusSource

    if prometheus_url:
        return PrometheusSource(prometheus_url), None
    import boto3

    from llmops.engine import stack_outputs
    from llmops.experiments.prometheus import SourceError
    from llmops.usage.cluster_access import cluster_prometheus

    outputs = stack_outputs(stack, root)
    cluster, url = outputs.get("cluster"), outputs.get("prometheusUrl")
    if not isinstance(cluster, dict) or not url:
        raise SourceError(f"stack {stack} has no cluster or prometheusUrl output: pass --prometheus-url")
    sts = boto3.client("sts", region_name=settings.region)
    return cluster_prometheus(cluster, str(url), sts), cluster.get("servingNamespace")


def cmd_cost(args: argparse.Namespace) -> int:
    from llmops import cost

    return cmd_measured(args) if args.measured else cost.cmd_cost(args)


def cmd_measured(args: argparse.Namespace) -> int:
    """`llmops cost --measured --stack S`."""
    from llmops import paths
    from llmops.errors import UserError
    from llmops.usage.measured import MeasuredCost, deployment_price, estimated_replicas, format_measured

    if not args.stack:
        raise UserError("--measured needs --stack: the stack whose serving is measured")
    root = (args.root or paths.repo_root()).resolve()
    settings, measured = measure(root, args.stack, args.window, args.prometheus_url)
    costs = []
    for dep, usages in measured:
        price = deployment_price(dep, settings, paths.models_dir(root))
        costs += [MeasuredCost(u, price, estimated_replicas(dep, settings, u.version)) for u in usages]
    if args.json:
        body = {"stack": args.stack, "environment": settings.environment, "window": args.window}
        print(json.dumps({**body, "versions": [c.to_dict() for c in costs]}, indent=2))
        return 0
    print(format_measured(args.stack, settings.environment, args.window, costs))
    return 0


def cmd_rightsize(args: argparse.Namespace) -> int:
    from llmops import paths
    from llmops.errors import UserError
    from llmops.promote import PromotionError, commit_file
    from llmops.usage import rightsize
    from llmops.usage.measured import deployment_price

    if args.commit and not args.write:
        raise UserError("--commit needs --write")
    root = paths.repo_root()
    settings, measured = measure(root, args.stack, args.window, args.prometheus_url)
    proposals = []
    for dep, usages in measured:
        price = deployment_price(dep, settings, paths.models_dir(root))
        cheaper = None
        if settings.target != "local" and dep.instance != "auto":
            cheaper = deployment_price(dataclasses.replace(dep, instance="auto"), settings, paths.models_dir(root))
        proposals.append(
            rightsize.propose(dep, settings, usages, price, cheaper, window=args.window, min_minutes=args.min_minutes)
        )
    if args.json:
        print(json.dumps({"stack": args.stack, "proposals": [p.to_dict() for p in proposals]}, indent=2))
    else:
        for p in proposals:
            print(p.message() if p.changed else f"{p.model} in {p.environment}: no change. {' '.join(p.reasons)}")
            print()
    if not args.write:
        return 0
    for p in (p for p in proposals if p.changed):
        try:
            path, before, after = rightsize.write(root, p)
        except PromotionError as exc:
            raise UserError(str(exc)) from None
        display = str(path.relative_to(root))
        diff = difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"a/{display}", f"b/{display}")
        sys.stderr.write("".join(diff))
        path.write_text(after, encoding="utf-8")
        if args.commit:
            try:
                sha = commit_file(root, path, p.message())
            except PromotionError as exc:
                raise UserError(str(exc)) from None
            print(f"committed {sha[:12]}: {p.message().splitlines()[0]}", file=sys.stderr)
    return 0
