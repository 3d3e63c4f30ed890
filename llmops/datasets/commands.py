"""`llmops data validate` and `llmops monitor drift`: the dataset commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmops import paths
from llmops.errors import UserError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = sub.add_parser("data", help="validate the registry's datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    val = data_sub.add_parser("validate", help="every problem of a dataset, as FILE:LINE: check: message")
    val.add_argument("name", nargs="?", help="dataset name (default: every dataset of models/datasets/)")
    val.add_argument("--json", action="store_true", help="{problems: [{file, line, check, message}], summary}")
    val.set_defaults(func=cmd_validate)

    mon = sub.add_parser("monitor", help="monitoring of served models")
    mon_sub = mon.add_subparsers(dest="monitor_command", required=True, metavar="ACTION")
    drift = mon_sub.add_parser("drift", help="drift of a model's captured traffic from its dataset's eval split")
    drift.add_argument("--stack", default="local")
    drift.add_argument("--model", required=True)
    drift.add_argument(
        "--capture", type=Path, help="capture root (default: the local stack's; for AWS a synced copy of the bucket)"
    )
    drift.add_argument("--json", action="store_true")
    drift.add_argument("--html", type=Path, metavar="FILE", help="also write Evidently's report (one offline file)")
    drift.set_defaults(func=cmd_drift)


def cmd_validate(args: argparse.Namespace) -> int:
    from llmops.datasets.validate import validate_files

    reports, problems = validate_files(paths.repo_root(), args.name)
    for report in reports:
        problems += report.problems
    if args.json:
        doc = {
            "problems": [p.__dict__ for p in problems],
            "summary": {
                "datasets": [r.to_json()["summary"] for r in reports],
                "problems": len(problems),
                "ok": not problems,
            },
        }
        print(json.dumps(doc, indent=2))
    else:
        for problem in problems:
            print(problem)
        for report in reports:
            counts = ", ".join(f"{k} {v}" for k, v in report.records.items())
            state = "OK" if report.ok else f"{len(report.problems)} problem(s)"
            print(f"{report.dataset}: {state} ({counts} records, {report.seconds:.1f}s)", file=sys.stderr)
    return 1 if problems else 0


def cmd_drift(args: argparse.Namespace) -> int:
    from llmops.dashboard.reports import html_target
    from llmops.datasets.capture import capture_root, read_capture
    from llmops.datasets.drift import DriftSettings, compute_drift, result_lines
    from llmops.datasets.registry import load_datasets
    from llmops.registry import validate
    from llmops.settings import load_all_stacks

    html_target(args.html)
    root = paths.repo_root()
    stacks = load_all_stacks(paths.stacks_dir(root))
    if args.stack not in stacks:
        raise UserError(f"no stack {args.stack!r} (known: {', '.join(sorted(stacks))})")
    registry, _ = validate(paths.models_dir(root), stacks)
    entry = registry.models.get(args.model)
    if entry is None:
        raise UserError(f"no model {args.model!r} in the registry")
    dataset = entry.monitoring.drift_dataset(entry) or (
        entry.training.dataset.name if entry.training and entry.training.dataset.name else None
    )
    if dataset is None:
        raise UserError(f"{args.model}: no reference dataset (set monitoring.drift.dataset)")
    settings = stacks[args.stack]
    if args.capture is not None:
        capture = args.capture
    elif settings.target == "local":
        capture = capture_root(root / settings.local.state_dir)
    else:
        raise UserError(
            f"stack {args.stack!r} captures to S3: sync the capture prefix "
            f"(aws s3 sync s3://<bucket>/{args.model}/ DIR/{args.model}/) and pass --capture DIR"
        )
    datasets, _ = load_datasets(root)
    drift = entry.monitoring.drift
    tuned = (
        DriftSettings(threshold=drift.threshold, drift_share=drift.drift_share, min_records=drift.min_records)
        if drift
        else DriftSettings()
    )
    exchanges = list(read_capture(capture, args.model))[-10_000:]
    result = compute_drift(args.model, datasets.get(dataset), root, exchanges, tuned, html=args.html)
    if args.html is not None and result.note:
        raise UserError(f"{args.model}: {result.note}; no report written to {args.html}")
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print("\n".join(result_lines(result)))
    return 1 if result.drifted else 0
