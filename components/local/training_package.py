"""The local training package: a run's artifact measured against its model's gates, as a Pulumi dynamic resource.

The local equivalent of the SageMaker pipeline's evaluate-and-register steps. After each
local training run, `LocalTrainingPackage` runs the model's gated suites on the new artifact
(records reused from the evaluation cache when the weights and suites are the same), judges
every gate on its own (no serving version to compare with: the package serves nowhere) and
writes the package record (`llmops.local.packages`). A failed gate does not fail `up`, as a
SageMaker condition step does not: it is recorded, and `llmops train adopt` refuses the package.

- Same artifact, suites, gates → no diff; `destroy` removes nothing (records are data).
- `refresh` notices a deleted record, and the next `up` writes it again.
"""

from __future__ import annotations

import sys
import time
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.local.evaluation import suite_record
from llmops.local.packages import write_package
from llmops.registry import EvaluationGate, ModelEntry

INPUTS = ("model", "artifactSha256", "spec", "lineage", "suites", "gates", "lmEvalVersion", "cacheDir", "storeDir")


def package(props: dict[str, Any]) -> dict[str, Any]:
    """Measure the artifact on every gated suite and write its package record."""
    from llmops.evaluation.gates import judge

    sha = str(props["artifactSha256"])
    folder = str(Path(props["storeDir"]) / sha)
    gates = [EvaluationGate.model_validate(g) for g in props["gates"]]
    evaluation: dict[str, Any] = {}
    for spec in props["suites"]:
        record = suite_record(props, spec, sha, folder)
        verdicts = [judge(g, record) for g in gates if g.suite == spec["name"]]
        evaluation[spec["name"]] = {**record.to_output(), "gates": {v.gate.metric: v.to_dict() for v in verdicts}}
    passed = all(g["passed"] for result in evaluation.values() for g in result["gates"].values())
    record_doc = {
        "model": props["model"],
        "artifactSha256": sha,
        "spec": props["spec"],
        "lineage": props["lineage"],
        "evaluation": evaluation,
        "passed": passed,
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = write_package(Path(props["storeDir"]), record_doc)
    verdict = "every gate passed" if passed else "a gate FAILED: `llmops train adopt` will refuse it"
    print(f"{props['model']}: package {sha[:12]} recorded ({verdict})", file=sys.stderr, flush=True)
    return {**{k: props[k] for k in INPUTS if k in props}, "recordPath": str(path), "passed": passed, "present": True}


class PackageProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"{props['model']}-{str(props['artifactSha256'])[:16]}", package(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in INPUTS if olds.get(k) != news.get(k)] or ([] if olds.get("present", True) else ["x"])
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(package(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = props.get("recordPath")
        return ReadResult(id_, {**props, "present": bool(path) and Path(str(path)).is_file()})


class LocalTrainingPackage(pulumi.dynamic.Resource, module="local", name="TrainingPackage"):
    recordPath: pulumi.Output[str]
    passed: pulumi.Output[bool]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(PackageProvider(), name, {**props, "recordPath": None, "passed": None, "present": None}, opts)


def build_package(
    parent: pulumi.Resource, name: str, model: ModelEntry, ctx: Any, sha: pulumi.Output[str], lineage: Any
) -> pulumi.Output[dict[str, Any]]:
    """The package of the run whose artifact is `sha`; its summary is the `trainingPackages` stack output."""
    from llmops.evaluation.cache import CACHE_DIR
    from llmops.evaluation.suites import load_suite
    from llmops.local.store import STORE_DIR
    from llmops.training_runs import spec_digest

    root = ctx.root.resolve()
    gates = list(model.compliance.evaluation)
    suites = [load_suite(ctx.models_dir, s) for s in dict.fromkeys(g.suite for g in gates)]
    props = {
        "model": model.name,
        "artifactSha256": sha,
        "spec": spec_digest(model),
        "lineage": lineage,
        "suites": [{"name": s.name, "sha256": s.sha256, "path": str(s.path)} for s in suites],
        "gates": [g.model_dump() for g in gates],
        "lmEvalVersion": package_version("lm_eval"),
        "cacheDir": str(root / CACHE_DIR),
        "storeDir": str(root / STORE_DIR),
    }
    made = LocalTrainingPackage(f"{name}-package", props, pulumi.ResourceOptions(parent=parent))
    return pulumi.Output.all(sha, made.passed, made.recordPath).apply(
        lambda a: {"artifactSha256": a[0], "spec": props["spec"], "passed": a[1], "record": a[2]}
    )
