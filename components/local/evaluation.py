"""The local Evaluation: a model's suites measured on the candidate weights, as a Pulumi dynamic resource.

`LocalEvaluation` (one per model) evaluates the weights of every variant version
of the model on every gated suite and judges all gates at once. Its previous
outputs are the records of the versions that serve now (a failed evaluation never
becomes state), so a version is compared with the one it replaces
(`max_regression_vs_serving`) without any other state. Records are reused from
the cache when the weights, the suite's content and the lm-eval version are the
same; only a miss loads the harness and the model (in this provider process,
one suite at a time).

- A failing gate raises with the metric, the threshold, the serving version's
  value and the worst examples: `up` fails here, before the candidate's replicas
  start (they depend on this resource), and the serving version keeps serving.
- Same inputs → no diff; `destroy` removes nothing (records are data).
"""

from __future__ import annotations

import functools
import sys
import threading
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult

from llmops.registry import TRAINING_OUTPUT, EvaluationGate, WeightsSource

# What decides the records: a change here re-evaluates (the cache may still answer).
INPUTS = ("model", "suites", "lmEvalVersion", "versions", "gates", "cacheDir")
_RUN_LOCK = threading.Lock()  # the engine updates resources in parallel; one harness run at a time


class GateFailed(RuntimeError):
    """A candidate version missed a gate; the message explains which and why."""


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=2)
def _model(path: str) -> Any:
    """The harness's model over a folder, loaded once for all the suites that measure it."""
    from llmops.evaluation.harness import local_model

    return local_model(Path(path))


def suite_record(props: dict[str, Any], spec: dict[str, str], weights: str, path: str) -> Any:
    """The suite's record on these weights: from the cache, else measured (one harness run at a time)."""
    from llmops.evaluation.cache import RecordCache
    from llmops.evaluation.suites import Suite

    suite = Suite(name=spec["name"], path=Path(spec["path"]))
    cache = RecordCache(Path(props["cacheDir"]))
    cached = cache.get(weights, spec["sha256"], props["lmEvalVersion"])
    if cached is not None:
        _progress(f"{props['model']}: {suite.name} on {weights[:12]}: cached record from {cached.evaluated_at}")
        return cached
    with _RUN_LOCK:
        from llmops.evaluation.harness import run_suite

        _progress(f"{props['model']}: running suite {suite.name} on {weights[:12]}")
        record = run_suite(suite, _model(path), model=props["model"], weights=weights)
    cache.put(record)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(record.metrics.items()))
    _progress(f"{props['model']}: {suite.name}: {shown} ({record.seconds:.1f}s)")
    return record


def evaluate(props: dict[str, Any], olds: dict[str, Any] | None) -> dict[str, Any]:
    """Records and verdicts for every version; raises GateFailed when one misses a gate."""
    from llmops.evaluation.gates import judge
    from llmops.evaluation.record import EvaluationRecord

    gates = [EvaluationGate.model_validate(g) for g in props["gates"]]
    previous = dict((olds or {}).get("records") or {})
    # The champion of a version: its own previous record, else the version that carried most traffic.
    old_weights = dict((olds or {}).get("weights") or {})
    main = max(old_weights, key=lambda v: old_weights[v]) if old_weights else None
    records: dict[str, Any] = {}
    results: dict[str, Any] = {}
    failures: list[str] = []
    for v in props["versions"]:
        results[v["version"]], records[v["version"]] = {}, {}
        for spec in props["suites"]:
            suite = spec["name"]
            record = suite_record(props, spec, v["weights"], v["path"])
            champion_doc = (previous.get(v["version"]) or previous.get(main or "") or {}).get(suite)
            champion = EvaluationRecord.model_validate(champion_doc) if champion_doc else None
            if champion is not None and champion.weights == record.weights:
                champion = None  # the same weights: nothing to compare
            verdicts = [judge(g, record, champion) for g in gates if g.suite == suite]
            records[v["version"]][suite] = record.model_dump()
            results[v["version"]][suite] = {
                **record.to_output(),
                "gates": {x.gate.metric: x.to_dict() for x in verdicts},
            }
            for x in verdicts:
                if not x.passed:
                    failures.append(f"{props['model']} {v['version']} ({v['weights'][:12]}): {x.explain()}")
    if failures:
        raise GateFailed("evaluation gate failed; the serving version keeps serving:\n" + "\n".join(failures))
    return {
        **{k: props[k] for k in INPUTS},
        "records": records,
        "results": results,
        "weights": {v["version"]: v["weight"] for v in props["versions"]},
    }


class EvaluationProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        for spec in news.get("suites") or []:
            if not Path(str(spec.get("path"))).is_dir():
                failures.append(CheckFailure("suites", f"no such suite folder: {spec.get('path')}"))
        if not news.get("gates"):
            failures.append(CheckFailure("gates", "an Evaluation needs at least one gate"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"{props['model']}-evaluation", evaluate(props, None))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in INPUTS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(evaluate(news, olds))


class LocalEvaluation(pulumi.dynamic.Resource, module="local", name="Evaluation"):
    results: pulumi.Output[dict[str, Any]]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        outputs = {"records": None, "results": None, "weights": None}
        super().__init__(EvaluationProvider(), name, {**props, **outputs}, opts)


def _weights(model: str, version: str, source: WeightsSource, root: Path, artifact: Any) -> tuple[Any, Any]:
    """(weights id, folder) of a variant: a training artifact's sha256, or a folder's content hash."""
    if source.artifact is not None:
        from llmops.local.packages import PackageMissingError, pinned_folder

        try:
            return source.artifact, str(
                pinned_folder(root, f"models/{model}.yaml: versions.{version}.local", source.artifact)
            )
        except PackageMissingError as exc:
            raise pulumi.RunError(str(exc)) from None
    source_local = str(source.local)
    if source_local == TRAINING_OUTPUT:
        if artifact is None:
            raise pulumi.RunError(f"a version is {TRAINING_OUTPUT!r} but the stack trains no artifact")
        return artifact.artifact_sha256, artifact.artifact_uri.apply(lambda uri: uri.removeprefix("file://"))
    from llmops.local.store import tree_sha256

    folder = (root / source_local).resolve()
    return tree_sha256(folder), str(folder)


def build_evaluation(component: Any, name: str, args: Any) -> None:
    from llmops.evaluation.cache import CACHE_DIR
    from llmops.evaluation.suites import load_suite

    ctx, dep = args.context, args.deployment
    root = ctx.root.resolve()
    suites = [load_suite(ctx.models_dir, name) for name in dict.fromkeys(g.suite for g in args.gates)]
    versions = []
    for variant in dep.variants:
        source = dep.variant_source(variant)
        if source.local is None:
            raise pulumi.RunError(
                f"models/{dep.name}.yaml: compliance.evaluation: the local target evaluates local weights only; "
                f"variant {variant.version} serves {source.uri}"
            )
        weights, path = _weights(dep.name, variant.version, source, root, args.training)
        versions.append(
            pulumi.Output.all(weights, path).apply(
                lambda a, v=variant: {"version": v.version, "weight": v.weight, "weights": a[0], "path": a[1]}
            )
        )
    props = {
        "model": dep.name,
        "suites": [{"name": s.name, "sha256": s.sha256, "path": str(s.path)} for s in suites],
        "lmEvalVersion": package_version("lm_eval"),
        "versions": pulumi.Output.all(*versions),
        "gates": [g.model_dump() for g in args.gates],
        "cacheDir": str(root / CACHE_DIR),
    }
    depends = [args.training] if args.training is not None else []
    evaluation = LocalEvaluation(f"{name}-run", props, pulumi.ResourceOptions(parent=component, depends_on=depends))
    component.results = evaluation.results
