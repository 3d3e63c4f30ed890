"""Drift of captured traffic against a dataset's eval split, over text descriptors, with Evidently.

Descriptors of each prompt and answer: length, out-of-vocabulary share (words the
train split never uses), non-letter share, and for answers whether it is empty or
a refusal. Evidently's `ValueDrift` compares each descriptor's distribution in the
captured traffic with the eval split's with a statistical test (Kolmogorov-Smirnov
for numbers, a two-proportion Z-test for the yes/no descriptors): a descriptor
drifted when the test's p-value falls below the threshold. Tests, not distances,
because an eval split is small (tens to thousands of records) and a distance
between small samples is mostly noise. `DriftedColumnsCount` gives the overall
score, the share of drifted descriptors. The same
module runs on both targets: it reads capture files in SageMaker's format from a
local folder or a synced copy of the capture bucket.

    llmops monitor drift --stack S --model M [--json]
    python -m llmops.datasets.drift serve --model M --capture DIR --dataset NAME --port P --interval S
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmops.datasets.capture import Exchange, read_capture
from llmops.datasets.records import read_records
from llmops.datasets.registry import DatasetEntry

NUMERIC = (
    "prompt_length", "prompt_oov_share", "prompt_non_letter_share",
    "answer_length", "answer_oov_share", "answer_non_letter_share",
)  # fmt: skip
FLAGS = ("answer_empty", "answer_refusal")
DESCRIPTORS = NUMERIC + FLAGS
_WORD_RE = re.compile(r"[^\W\d_]+")
_REFUSAL_RE = re.compile(
    r"\b(i can(?:no|')t|i cannot|i am (?:not able|unable)|i'm (?:not able|unable)|i won't|i am sorry|i'm sorry|"
    r"as an ai|i do not know|i don't know)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DriftSettings:
    # p-value below which a descriptor drifted: 0.01, not 0.05, as 8 descriptors are tested at once
    # (at 0.05 some descriptor of in-distribution traffic drifts by chance a third of the time).
    threshold: float = 0.01
    drift_share: float = 0.25  # share of drifted descriptors that makes the whole model drifted
    min_records: int = 30  # fewer captured records say nothing


@dataclass
class DriftResult:
    model: str
    dataset: str
    records: int
    reference_records: int
    descriptors: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {p_value, method, drifted}
    score: float = 0.0  # share of drifted descriptors
    drifted: bool = False
    note: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def vocabulary(texts: Iterable[str]) -> set[str]:
    return {w.casefold() for t in texts for w in _WORD_RE.findall(t)}


def describe(pairs: Sequence[tuple[str, str]], vocab: set[str]) -> Any:
    """One row of descriptors per (prompt, answer)."""
    import pandas as pd

    def shares(text: str) -> tuple[float, float]:
        words = _WORD_RE.findall(text)
        oov = sum(1 for w in words if w.casefold() not in vocab) / len(words) if words else 0.0
        chars = [c for c in text if not c.isspace()]
        non_letter = sum(1 for c in chars if not c.isalpha()) / len(chars) if chars else 0.0
        return oov, non_letter

    rows = []
    for prompt, answer in pairs:
        p_oov, p_nl = shares(prompt)
        a_oov, a_nl = shares(answer)
        rows.append(
            (
                len(prompt),
                p_oov,
                p_nl,
                len(answer),
                a_oov,
                a_nl,
                "yes" if not answer.strip() else "no",
                "yes" if _REFUSAL_RE.search(answer) else "no",
            )
        )
    return pd.DataFrame(rows, columns=list(DESCRIPTORS))


def reference_pairs(entry: DatasetEntry, root: Path) -> tuple[list[tuple[str, str]], set[str]]:
    """(prompt, answer) per User/Assistant turn pair of the eval split, and the train split's vocabulary."""
    pairs = []
    for rec in read_records(entry.split_path(root, "eval")):
        turns = rec.turns()
        for (r1, prompt), (r2, answer) in itertools.pairwise(turns):
            if r1 == "U" and r2 == "A":
                pairs.append((prompt, answer))
    vocab = vocabulary(r.text for r in read_records(entry.split_path(root, "train")))
    return pairs, vocab


def compute_drift(
    model: str,
    entry: DatasetEntry,
    root: Path,
    exchanges: Sequence[Exchange],
    settings: DriftSettings | None = None,
    html: Path | None = None,
) -> DriftResult:
    """Drift of `exchanges` from the dataset's eval split; `html`: also save Evidently's own report there."""
    started = time.perf_counter()
    settings = settings or DriftSettings()
    ref_pairs, vocab = reference_pairs(entry, root)
    result = DriftResult(model=model, dataset=entry.ref, records=len(exchanges), reference_records=len(ref_pairs))
    if len(exchanges) < settings.min_records:
        result.note = f"{len(exchanges)} captured record(s); need {settings.min_records} to judge drift"
        result.seconds = time.perf_counter() - started
        return result

    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    definition = DataDefinition(numerical_columns=list(NUMERIC), categorical_columns=list(FLAGS))
    reference = Dataset.from_pandas(describe(ref_pairs, vocab), data_definition=definition)
    current = Dataset.from_pandas(
        describe([(e.prompt, e.answer) for e in exchanges], vocab), data_definition=definition
    )
    methods = {c: "ks" for c in NUMERIC} | {c: "z" for c in FLAGS}
    thresholds = dict.fromkeys(DESCRIPTORS, settings.threshold)
    report = Report(
        [ValueDrift(column=c, method=methods[c], threshold=settings.threshold) for c in DESCRIPTORS]
        + [
            DriftedColumnsCount(
                columns=list(DESCRIPTORS),
                drift_share=settings.drift_share,
                per_column_method=dict(methods),
                per_column_threshold=thresholds,
            )
        ]
    )
    run = report.run(current, reference)
    if html is not None:
        run.save_html(str(html))
    snapshot = run.dict()
    for metric in snapshot["metrics"]:
        config, value = metric["config"], metric["value"]
        if config["type"].endswith("ValueDrift"):
            column, p_value = config["column"], float(value)
            result.descriptors[column] = {
                "p_value": p_value,
                "method": methods[column],
                "drifted": p_value < settings.threshold,
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            result.score = round(float(value["share"]), 4)
    result.drifted = result.score >= settings.drift_share
    result.seconds = time.perf_counter() - started
    return result


def result_lines(result: DriftResult) -> list[str]:
    head = f"{result.model}: {result.records} captured vs {result.reference_records} reference ({result.dataset})"
    if result.note:
        return [head, f"  {result.note}"]
    lines = [head]
    for name in DESCRIPTORS:
        d = result.descriptors.get(name)
        if d:
            mark = "DRIFT" if d["drifted"] else "ok"
            lines.append(f"  {name:<24} {d['method']:<3} p={d['p_value']:<10.3g} {mark}")
    verdict = "DRIFT DETECTED" if result.drifted else "no drift"
    lines.append(f"  overall: {result.score:.0%} of descriptors drifted -> {verdict}")
    return lines


# --------------------------------------------------------------------------- the scheduled monitor


def serve(
    model: str,
    entry: DatasetEntry,
    root: Path,
    capture: Path,
    port: int,
    interval: float,
    settings: DriftSettings,
    window: int = 10_000,
) -> None:
    """Recompute drift every `interval` seconds over the latest `window` records; export it on /metrics."""
    from prometheus_client import Gauge, start_http_server

    score = Gauge("llmops_drift_score", "Share of the model's descriptors that drifted", ["model"])
    p_values = Gauge("llmops_drift_p_value", "p-value of one descriptor's drift test", ["model", "descriptor"])
    detected = Gauge("llmops_drift_detected", "1 when the model's captured traffic drifted", ["model"])
    records = Gauge("llmops_drift_records", "Captured records in the last drift run", ["model"])
    last = Gauge("llmops_drift_last_run_timestamp_seconds", "When drift was last computed", ["model"])
    start_http_server(port, addr="127.0.0.1")
    print(f"drift monitor for {model}: /metrics on 127.0.0.1:{port}, every {interval}s", flush=True)
    while True:
        exchanges = list(read_capture(capture, model))[-window:]
        try:
            result = compute_drift(model, entry, root, exchanges, settings)
        except Exception as exc:  # keep the monitor alive; the next run may succeed
            print(f"drift run failed: {exc}", flush=True)
        else:
            records.labels(model).set(result.records)
            if not result.note:  # too few records judge nothing: no score (a 0 would read as "no drift")
                score.labels(model).set(result.score)
                for name, d in result.descriptors.items():
                    p_values.labels(model, name).set(d["p_value"])
                detected.labels(model).set(1 if result.drifted else 0)
            last.labels(model).set(time.time())
            print(" | ".join(result_lines(result)), flush=True)
        time.sleep(interval)


def cloudwatch_metrics(result: DriftResult) -> list[dict[str, Any]]:
    """The run as CloudWatch metric data: the AWS counterpart of the local monitor's gauges."""
    model = [{"Name": "Model", "Value": result.model}]
    data: list[dict[str, Any]] = [
        {"MetricName": "DriftRecords", "Dimensions": model, "Value": float(result.records), "Unit": "Count"},
    ]
    if not result.note:  # too few records judge nothing: publish no verdict
        data += [
            {"MetricName": "DriftScore", "Dimensions": model, "Value": result.score, "Unit": "None"},
            {"MetricName": "DriftDetected", "Dimensions": model, "Value": float(result.drifted), "Unit": "None"},
        ]
    return data


def publish_cloudwatch(result: DriftResult, namespace: str) -> None:
    import boto3

    boto3.client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=cloudwatch_metrics(result))


def main(argv: list[str] | None = None) -> int:
    from llmops import paths
    from llmops.datasets.registry import load_datasets

    parser = argparse.ArgumentParser(prog="python -m llmops.datasets.drift")
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("run", "serve"):
        p = sub.add_parser(action)
        p.add_argument("--model", required=True)
        p.add_argument("--dataset", required=True, help="dataset name whose eval split is the reference")
        p.add_argument("--capture", type=Path, required=True, help="capture root (holds MODEL/VARIANT/…/*.jsonl)")
        p.add_argument("--drift-share", type=float, default=DriftSettings.drift_share)
        p.add_argument("--threshold", type=float, default=DriftSettings.threshold, help="p-value")
        p.add_argument("--min-records", type=int, default=DriftSettings.min_records)
        if action == "run":
            p.add_argument("--cloudwatch", metavar="NAMESPACE", help="also publish DriftScore/DriftDetected there")
        if action == "serve":
            p.add_argument("--port", type=int, required=True)
            p.add_argument("--interval", type=float, default=30.0)
    args = parser.parse_args(argv)
    root = paths.repo_root()
    registry, _ = load_datasets(root)
    entry = registry.get(args.dataset)
    settings = DriftSettings(threshold=args.threshold, drift_share=args.drift_share, min_records=args.min_records)
    if args.action == "serve":
        serve(args.model, entry, root, args.capture, args.port, args.interval, settings)
        return 0
    result = compute_drift(args.model, entry, root, list(read_capture(args.capture, args.model)), settings)
    print(json.dumps(result.to_json(), indent=2))
    if args.cloudwatch:
        publish_cloudwatch(result, args.cloudwatch)
    return 1 if result.drifted else 0


if __name__ == "__main__":
    sys.exit(main())
