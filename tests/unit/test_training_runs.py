"""Starting a SageMaker training pipeline when its training spec changes (llmops.training_runs).

Proves: the spec digest follows what a run learns from (base model, dataset version,
hyperparameters) and not where it runs (instance, runtime limit, checkpoints); after a stack's
update a pipeline whose spec has no run is started with the spec's display name, one whose spec
is running or succeeded is not, and one whose last run of the spec failed is started again
(SageMaker calls under botocore's Stubber, with the exact parameters); a stack without
pipelines never creates a client; after-update steps run in order and a failing one stops the rest.
Cannot prove: that SageMaker runs the pipeline (that is the pipeline definition's test,
tests/mocks/test_evaluation_pipeline.py) or how long a run takes.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from llmops.ci.deploy import after_updates, training_start
from llmops.ci.errors import CiError
from llmops.plan import AffectedStack
from llmops.registry import ModelEntry
from llmops.training_runs import OUTPUT, after_update, display_name, spec_digest, start_changed_runs
from tests.unit.conftest import REPO, entry

pytestmark = pytest.mark.unit

ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/llmops-dev-demo-finetune"
RUN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/llmops-dev-demo-finetune/execution/abc123"
TRAINING = {
    "base_model": "org/demo",
    "dataset": {"uri": "s3://data/demo/", "version": "1"},
    "hyperparameters": {"epochs": 1, "learning_rate": 0.0002},
    "instance": "ml.g5.2xlarge",
    "max_runtime": 3600,
}


def model(**training: Any) -> ModelEntry:
    return ModelEntry.model_validate(entry(training={**TRAINING, **training}))


def test_the_digest_follows_what_a_run_learns_from() -> None:
    base = spec_digest(model())
    assert spec_digest(model()) == base
    assert spec_digest(model(hyperparameters={"epochs": 2, "learning_rate": 0.0002})) != base
    assert spec_digest(model(dataset={"uri": "s3://data/demo/", "version": "2"})) != base
    assert spec_digest(model(base_model="org/other")) != base
    # Where and how long it runs is not what it learns.
    assert spec_digest(model(instance="ml.g5.12xlarge", max_runtime=7200, checkpoint="s3://c/demo/")) == base


def client() -> Any:
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")


def listing(stub: Stubber, *summaries: tuple[str, str]) -> None:
    stub.add_response(
        "list_pipeline_executions",
        {
            "PipelineExecutionSummaries": [
                {
                    "PipelineExecutionArn": f"{RUN}-{i}",
                    "PipelineExecutionDisplayName": name,
                    "PipelineExecutionStatus": status,
                }
                for i, (name, status) in enumerate(summaries)
            ]
        },
        {"PipelineName": ARN, "SortBy": "CreationTime", "SortOrder": "Descending"},
    )


def outputs(digest: str) -> dict[str, Any]:
    return {OUTPUT: {"demo": {"pipelineArn": ARN, "spec": digest}}}


def test_a_spec_without_a_run_starts_the_pipeline() -> None:
    digest = spec_digest(model())
    sm = client()
    with Stubber(sm) as stub:
        listing(stub, (display_name("0" * 64), "Succeeded"))  # an older spec ran
        stub.add_response(
            "start_pipeline_execution",
            {"PipelineExecutionArn": RUN},
            {
                "PipelineName": ARN,
                "PipelineExecutionDisplayName": display_name(digest),
                "PipelineExecutionDescription": f"demo: training spec {digest} at commit abc",
            },
        )
        (decision,) = start_changed_runs(outputs(digest), sm, "abc")
        stub.assert_no_pending_responses()
    assert decision.started == RUN
    assert len(display_name(digest)) <= 82


@pytest.mark.parametrize("status", ["Executing", "Succeeded", "Stopping"])
def test_a_spec_that_runs_or_ran_starts_nothing(status: str) -> None:
    digest = spec_digest(model())
    sm = client()
    with Stubber(sm) as stub:  # a start_pipeline_execution call would fail: none is stubbed
        listing(stub, (display_name(digest), status))
        (decision,) = start_changed_runs(outputs(digest), sm)
        stub.assert_no_pending_responses()
    assert decision.started is None and decision.status == status
    assert "already ran" in decision.line()


def test_a_spec_whose_run_failed_starts_again() -> None:
    digest = spec_digest(model())
    sm = client()
    with Stubber(sm) as stub:
        listing(stub, (display_name(digest), "Failed"), (display_name(digest), "Stopped"))
        stub.add_response(
            "start_pipeline_execution",
            {"PipelineExecutionArn": RUN},
            {
                "PipelineName": ARN,
                "PipelineExecutionDisplayName": display_name(digest),
                "PipelineExecutionDescription": f"demo: training spec {digest}",
            },
        )
        (decision,) = start_changed_runs(outputs(digest), sm)
        stub.assert_no_pending_responses()
    assert decision.started == RUN


def test_a_stack_without_pipelines_asks_aws_nothing() -> None:
    def no_client() -> Any:
        raise AssertionError("no client for a stack without pipelines")

    lines: list[str] = []
    after_update(lambda: {"endpoints": {}}, no_client, "", lines.append)
    assert lines == []


def test_after_update_steps_run_in_order_and_a_failure_stops_the_rest() -> None:
    calls: list[str] = []

    def gate(stack: Any) -> None:
        calls.append("gate")
        raise CiError("gate failed")

    hook = after_updates(lambda stack: calls.append("training"), gate, lambda stack: calls.append("later"))
    with pytest.raises(CiError):
        hook(None)  # type: ignore[arg-type]
    assert calls == ["training", "gate"]


def test_ci_deploy_reads_no_outputs_of_a_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmops.engine

    def outputs(*args: Any) -> Any:
        raise AssertionError("a local stack trains within `up`: nothing to read or start")

    monkeypatch.setattr(llmops.engine, "stack_outputs", outputs)
    training_start(REPO)(AffectedStack("local", "local", promotion=False))
