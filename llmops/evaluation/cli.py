"""`llmops eval run MODEL` and `llmops model-card MODEL`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmops import paths
from llmops.errors import UserError
from llmops.evaluation.cache import CACHE_DIR, RecordCache
from llmops.evaluation.gates import judge_all, summary
from llmops.evaluation.record import EvaluationRecord
from llmops.evaluation.suites import SuiteError, load_suite
from llmops.evaluation.weights import resolve_weights
from llmops.registry import ModelEntry, Registry, load_registry
from llmops.settings import load_all_stacks


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = sub.add_parser("eval", help="run a model's evaluation suites and judge its gates")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True, metavar="ACTION")
    run = ev_sub.add_parser("run", help="measure MODEL on its gated suites (cached); exit 1 when a gate fails")
    run.add_argument("model")
    run.add_argument("--stack", help="measure the artifact this stack serves and compare with its recorded results")
    run.add_argument("--suite", help="only this suite")
    run.add_argument("--json", action="store_true", help="print {suite: {metric: {value, threshold, passed}}}")
    run.set_defaults(func=cmd_run)

    card = sub.add_parser("model-card", help="generate MODEL's card from the registry and its latest evaluation")
    card.add_argument("model")
    mode = card.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write it to the path compliance.model_card names")
    mode.add_argument("--check", action="store_true", help="exit 1 when the written card is stale")
    card.set_defaults(func=cmd_model_card)


def _registry(root: Path) -> Registry:
    from llmops.registry import RegistryError

    try:
        return load_registry(paths.models_dir(root), load_all_stacks(paths.stacks_dir(root)))
    except RegistryError as exc:
        raise UserError(f"the registry is invalid:\n{exc}") from None


def _entry(registry: Registry, name: str) -> ModelEntry:
    if name not in registry.models:
        raise UserError(f"no model {name!r} in the registry (known: {', '.join(sorted(registry.models))})")
    return registry.models[name]


def evaluate_model(
    root: Path, entry: ModelEntry, *, stack: str | None = None, only: str | None = None, log: bool = True
) -> tuple[dict[str, EvaluationRecord], dict[str, EvaluationRecord]]:
    """(records measured now, records of the serving version from the stack's outputs)."""
    from llmops.evaluation.harness import lm_eval_version, local_model, run_suite

    gates = [g for g in entry.compliance.evaluation if only is None or g.suite == only]
    if not gates:
        raise UserError(f"{entry.name} has no evaluation gate{f' on suite {only}' if only else ''}")
    from llmops.engine import stack_outputs

    outputs = stack_outputs(stack, root) if stack else None
    weights = resolve_weights(root, entry, outputs)
    cache = RecordCache(root / CACHE_DIR)
    version = lm_eval_version()
    records: dict[str, EvaluationRecord] = {}
    lm = None
    for name in dict.fromkeys(g.suite for g in gates):
        try:
            suite = load_suite(paths.models_dir(root), name)
        except SuiteError as exc:
            raise UserError(str(exc)) from None
        record = cache.get(weights.id, suite.sha256, version)
        if record is None:
            if log:
                print(f"running {name} on {weights.id[:12]} ...", file=sys.stderr, flush=True)
            lm = lm or local_model(weights.path)
            record = run_suite(suite, lm, model=entry.name, weights=weights.id)
            cache.put(record)
        records[name] = record
    serving: dict[str, EvaluationRecord] = {}
    for version_results in ((outputs or {}).get("evaluations") or {}).get(entry.name, {}).values():
        for suite_name, result in version_results.items():
            if result.get("weights") != weights.id:
                serving[suite_name] = EvaluationRecord.from_output(entry.name, result)
    return records, serving


def cmd_run(args: argparse.Namespace) -> int:
    root = paths.repo_root()
    entry = _entry(_registry(root), args.model)
    records, serving = evaluate_model(root, entry, stack=args.stack, only=args.suite, log=not args.json)
    gates = [g for g in entry.compliance.evaluation if args.suite is None or g.suite == args.suite]
    verdicts = judge_all(gates, records, serving)
    if args.json:
        print(json.dumps(summary(verdicts), indent=2, sort_keys=True))
    else:
        for record in records.values():
            shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(record.metrics.items()))
            print(f"{record.suite} ({record.examples} examples, lm-eval {record.lm_eval_version}, "
                  f"{record.evaluated_at}, {record.where}): {shown}")  # fmt: skip
        for verdict in verdicts:
            print(verdict.explain())
    return 0 if all(v.passed for v in verdicts) else 1


def cmd_model_card(args: argparse.Namespace) -> int:
    from llmops.evaluation.cards import card_path, render_card, stale_reasons

    root = paths.repo_root()
    entry = _entry(_registry(root), args.model)
    target = card_path(root, entry)
    if args.check:
        if target is None:
            print(f"{entry.name}: its card is hosted elsewhere ({entry.compliance.model_card})")
            return 0
        reasons = stale_reasons(root, entry)
        for reason in reasons:
            print(f"{target.relative_to(root)}: {reason}", file=sys.stderr)
        return 1 if reasons else 0
    latest = RecordCache(root / CACHE_DIR).latest(entry.name)
    text = render_card(root, entry, latest)
    if args.write:
        if target is None:
            raise UserError(
                f"{entry.name}: compliance.model_card is a URL ({entry.compliance.model_card}), not a file here"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {target.relative_to(root)}")
    else:
        sys.stdout.write(text)
    return 0
