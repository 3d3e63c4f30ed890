"""The SageMaker pipeline's evaluation: processing step, condition per gate, fail step.

Proves: with gates, the definition the SDK builds (offline) runs an Evaluate processing
step on the training step's model in an image from the SDK's tables, writes
evaluation.json (under the execution's id) as a property file, compares every gate with
JsonGet in the right direction and each `max_regression_vs_serving` on the report's
regression against the approved champion, and registers the model package, carrying
its report as model-quality statistics, only in the condition's passing branch,
failing the pipeline otherwise; the code archive carries the suites and is reproducible.
Cannot prove: that the processing job runs in AWS (no account here); the same suites run
for real on the local target (tests/engine/test_evaluation.py).
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest

from components.aws import sagemaker_sdk
from components.aws.evaluation import EvaluationSpec, evaluation_archive
from llmops.registry import EvaluationGate
from tests.mocks.test_sagemaker_sdk import _definition
from tests.support.project import REPO

pytestmark = pytest.mark.mocks

EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}

GATES = [
    EvaluationGate(suite="tiny-chat-tasks", metric="exact_match", threshold=0.15, max_regression_vs_serving=0.1),
    EvaluationGate(suite="tiny-chat-safety", metric="violation_rate", threshold=0.1, higher_is_better=False),
]


def _spec() -> EvaluationSpec:
    return EvaluationSpec(
        gates=GATES,
        code_uri="s3://artifacts-bucket/chat/evaluation-code/abc/",
        output_uri="s3://artifacts-bucket/chat/evaluation/",
        image=sagemaker_sdk.training_image("us-east-1", "ml.g5.2xlarge"),
        instance_type="ml.g5.2xlarge",
        lm_eval_version="0.4.13",
        package_group="llmops-staging-chat",
    )


def test_the_model_is_registered_only_when_every_gate_passes() -> None:
    definition: dict[str, Any] = _definition(evaluation=_spec())
    train, evaluate, gate = definition["Steps"]
    assert (train["Type"], evaluate["Type"], gate["Type"]) == ("Training", "Processing", "Condition")

    a = evaluate["Arguments"]
    assert "huggingface-pytorch-training" in a["AppSpecification"]["ImageUri"]
    assert a["AppSpecification"]["ContainerEntrypoint"][-1].endswith("tar xzf code.tar.gz && exec python3 evaluate.py")
    assert json.loads(a["Environment"]["GATES"])[1]["metric"] == "violation_rate"
    inputs = {i["InputName"]: i["S3Input"] for i in a["ProcessingInputs"]}
    assert inputs["model"]["S3Uri"] == {"Get": "Steps.FineTune.ModelArtifacts.S3ModelArtifacts"}
    assert inputs["code"]["S3Uri"] == "s3://artifacts-bucket/chat/evaluation-code/abc/"
    (output,) = a["ProcessingOutputConfig"]["Outputs"]
    # Each execution its own folder: the report a package was registered with is never overwritten.
    this_run = {"Std:Join": {"On": "/", "Values": ["s3://artifacts-bucket/chat/evaluation", EXECUTION_ID]}}
    assert output["OutputName"] == "evaluation" and output["S3Output"]["S3Uri"] == this_run
    assert a["Environment"]["MODEL_PACKAGE_GROUP"] == "llmops-staging-chat"  # whose approved package is champion
    (report,) = evaluate["PropertyFiles"]
    assert report == {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}

    conditions = gate["Arguments"]["Conditions"]
    assert [c["Type"] for c in conditions] == ["GreaterThanOrEqualTo", "LessThanOrEqualTo", "LessThanOrEqualTo"]
    assert [c["LeftValue"]["Std:JsonGet"]["Path"] for c in conditions] == [
        "tiny-chat-tasks.exact_match.value",
        "tiny-chat-safety.violation_rate.value",
        "tiny-chat-tasks.exact_match.regression",  # champion/challenger: at most 0.1 worse than serving
    ]
    assert all(
        c["LeftValue"]["Std:JsonGet"]["PropertyFile"] == {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}
        for c in conditions
    )
    assert [c["RightValue"] for c in conditions] == [0.15, 0.1, 0.1]
    (register,) = gate["Arguments"]["IfSteps"]
    # The package carries this run's report: the next run's champion values come from it.
    statistics = register["Arguments"]["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["S3Uri"] == {
        "Std:Join": {"On": "/", "Values": ["s3://artifacts-bucket/chat/evaluation", EXECUTION_ID, "evaluation.json"]}
    }
    (fail,) = gate["Arguments"]["ElseSteps"]
    assert register["Type"] == "RegisterModel" and fail["Type"] == "Fail"
    assert "tiny-chat-safety/violation_rate <= 0.1" in fail["Arguments"]["ErrorMessage"]


def test_without_gates_the_pipeline_registers_after_training() -> None:
    assert [s["Type"] for s in _definition()["Steps"]] == ["Training", "RegisterModel"]


def test_the_code_archive_carries_the_suites_and_is_reproducible() -> None:
    raw, sha = evaluation_archive(REPO / "models", ["tiny-chat-safety", "tiny-chat-heldout"])
    assert evaluation_archive(REPO / "models", ["tiny-chat-heldout", "tiny-chat-safety"]) == (raw, sha)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = tar.getnames()
    assert "evaluate.py" in names and "llmops/local/train.py" in names
    assert "evals/tiny-chat-safety/tiny-chat-safety.yaml" in names and "evals/tiny-chat-heldout/heldout.txt" in names
    assert not any("tiny-chat-tasks" in n or "__pycache__" in n for n in names)
