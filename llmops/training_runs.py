"""Starting a model's SageMaker training pipeline when its training spec changes.

`pulumi up` defines the pipeline (components/aws/training.py) but defining starts nothing.
What a run learns from is its spec: the base model, the dataset at its version and the
hyperparameters (`spec_digest`). The stack exports, per pipeline, its ARN and the digest of the
spec it was defined with (`trainingRuns`); after a stack's update `llmops ci deploy` starts each
pipeline whose spec has no run yet (`start_changed_runs`). A run is found again by its display
name, `spec-<digest>`, so a redeploy of the same spec starts nothing, and a spec whose last run
failed or was stopped starts again. Where the instance, runtime limit or checkpoints change, the
spec is the same: nothing new would be learned.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmops.registry import ModelEntry

OUTPUT = "trainingRuns"  # the stack output: model -> {"pipelineArn", "packageGroup", "spec"}
# A run of a spec still counts while it is under way or once it succeeded.
LIVE = frozenset({"Executing", "Stopping", "Succeeded"})
DIGEST_CHARS = 40  # display names hold at most 82 characters


def training_spec(entry: ModelEntry) -> dict[str, Any]:
    """What a run learns from: base model, dataset@version, hyperparameters."""
    training = entry.training
    if training is None:
        raise ValueError(f"{entry.name} has no training section")
    return {
        "base_model": training.base_model,
        "dataset": training.dataset.ref,
        "hyperparameters": training.hyperparameters,
    }


def spec_digest(entry: ModelEntry) -> str:
    """sha256 of the spec's canonical JSON: equal specs, equal digests, whatever the file's layout."""
    text = json.dumps(training_spec(entry), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def display_name(digest: str) -> str:
    return f"spec-{digest[:DIGEST_CHARS]}"


@dataclass(frozen=True)
class RunDecision:
    model: str
    pipeline_arn: str
    spec: str
    started: str | None  # the new execution's ARN; None when a run of this spec exists
    existing: str | None = None  # the execution found for this spec, and its status
    status: str | None = None

    def line(self) -> str:
        if self.started:
            return f"{self.model}: training spec {self.spec[:12]} has no run: started {self.started}"
        return f"{self.model}: training spec {self.spec[:12]} already ran ({self.status}): {self.existing}"


def _existing_run(client: Any, pipeline_arn: str, name: str) -> tuple[str, str] | None:
    """The newest execution of the pipeline with this display name that is live or succeeded."""
    for page in client.get_paginator("list_pipeline_executions").paginate(
        PipelineName=pipeline_arn, SortBy="CreationTime", SortOrder="Descending"
    ):
        for summary in page.get("PipelineExecutionSummaries", []):
            if summary.get("PipelineExecutionDisplayName") == name and summary["PipelineExecutionStatus"] in LIVE:
                return summary["PipelineExecutionArn"], summary["PipelineExecutionStatus"]
    return None


def start_changed_runs(outputs: dict[str, Any], client: Any, commit: str = "") -> list[RunDecision]:
    """For each pipeline in a stack's outputs: start it unless its spec already has a live or
    successful run. `client` is a boto3 SageMaker client; `commit` is recorded in the description."""
    decisions: list[RunDecision] = []
    for model, run in sorted((outputs.get(OUTPUT) or {}).items()):
        arn, digest = run["pipelineArn"], run["spec"]
        name = display_name(digest)
        found = _existing_run(client, arn, name)
        if found is not None:
            decisions.append(RunDecision(model, arn, digest, None, *found))
            continue
        started = client.start_pipeline_execution(
            PipelineName=arn,
            PipelineExecutionDisplayName=name,
            PipelineExecutionDescription=f"{model}: training spec {digest}"
            + (f" at commit {commit}" if commit else ""),
        )["PipelineExecutionArn"]
        decisions.append(RunDecision(model, arn, digest, started))
    return decisions


def after_update(
    outputs: Callable[[], dict[str, Any]], client: Callable[[], Any], commit: str, log: Callable[[str], None]
) -> None:
    """Start the changed runs of one updated stack, saying what was done for each pipeline."""
    stack_outputs = outputs()
    if not stack_outputs.get(OUTPUT):
        return
    for decision in start_changed_runs(stack_outputs, client(), commit):
        log(decision.line())
