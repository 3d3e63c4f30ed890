"""The inference-component dynamic provider against botocore's Stubber.

Proves: create sends CreateInferenceComponent with exactly the endpoint, variant, model,
accelerators, memory, startup timeouts, initial copy count and tags (the Stubber checks each
request against the real SageMaker service model too), then waits through Creating to
InService and records the ARN; a component that ends Failed raises naming it, the endpoint
and SageMaker's FailureReason; a new version updates in place with no RuntimeConfig (the
autoscaled copy count is kept), one copy at a time, rolled back on the SLO alarms, and a
changed copy count alone is no change; a new endpoint or name replaces it (delete first: the
name is fixed); delete waits until SageMaker no longer finds it, and deleting one already
gone succeeds.
Cannot prove: how long SageMaker takes, or that the instance type fits the copy (AWS-side).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from components.aws.inference_component import InferenceComponentError, InferenceComponentProvider

pytestmark = pytest.mark.unit

NAME = "llmops-dev-chat-ic"
ENDPOINT = "llmops-dev-chat"
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:inference-component/{NAME}"
PROPS: dict[str, Any] = {
    "region": "us-east-1",
    "name": NAME,
    "endpoint_name": ENDPOINT,
    "variant_name": "AllTraffic",
    "model_name": "llmops-chat-model-v2-abc1234",
    "accelerators": 1,
    "min_memory_mb": 1024,
    "startup_timeout": 1800,
    "copy_count": 1,
    "tags": {"model": "chat", "environment": "dev"},
    "rollback_alarms": ["llmops-dev-chat-p95-latency", "llmops-dev-chat-error-rate"],
}
SPEC = {
    "ModelName": "llmops-chat-model-v2-abc1234",
    "StartupParameters": {
        "ModelDataDownloadTimeoutInSeconds": 1800,
        "ContainerStartupHealthCheckTimeoutInSeconds": 1800,
    },
    "ComputeResourceRequirements": {"NumberOfAcceleratorDevicesRequired": 1.0, "MinMemoryRequiredInMb": 1024},
}


@pytest.fixture
def sagemaker() -> Any:
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def provider(client: Any) -> InferenceComponentProvider:
    return InferenceComponentProvider(client=lambda region: client, poll_seconds=0, wait_seconds=60)


def described(status: str, **extra: Any) -> dict[str, Any]:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    return {
        "InferenceComponentName": NAME,
        "InferenceComponentArn": ARN,
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
        "CreationTime": now,
        "LastModifiedTime": now,
        "InferenceComponentStatus": status,
        **extra,
    }


def test_create_sends_the_component_and_waits_until_in_service(sagemaker: Any) -> None:
    with Stubber(sagemaker) as stub:
        stub.add_response(
            "create_inference_component",
            {"InferenceComponentArn": ARN},
            {
                "InferenceComponentName": NAME,
                "EndpointName": ENDPOINT,
                "VariantName": "AllTraffic",
                "Specification": SPEC,
                "RuntimeConfig": {"CopyCount": 1},
                "Tags": [{"Key": "environment", "Value": "dev"}, {"Key": "model", "Value": "chat"}],
            },
        )
        for status in ("Creating", "Creating", "InService"):
            stub.add_response("describe_inference_component", described(status), {"InferenceComponentName": NAME})
        result = provider(sagemaker).create(dict(PROPS))
        stub.assert_no_pending_responses()
    assert result.id == NAME and result.outs["arn"] == ARN


def test_a_failed_component_raises_with_sagemakers_reason(sagemaker: Any) -> None:
    reason = "Insufficient capacity: the requested accelerators do not fit ml.g5.xlarge"
    with Stubber(sagemaker) as stub:
        stub.add_response("create_inference_component", {"InferenceComponentArn": ARN})
        stub.add_response("describe_inference_component", described("Creating"))
        stub.add_response("describe_inference_component", described("Failed", FailureReason=reason))
        with pytest.raises(InferenceComponentError) as caught:
            provider(sagemaker).create(dict(PROPS))
    assert str(caught.value) == f"inference component {NAME} on endpoint {ENDPOINT}: create failed: {reason}"


def test_a_new_version_updates_in_place_keeping_the_autoscaled_copies(sagemaker: Any) -> None:
    olds = {**PROPS, "arn": ARN, "copy_count": 1}
    news = {**PROPS, "model_name": "llmops-chat-model-v3-def5678", "copy_count": 1}
    p = provider(sagemaker)
    diff = p.diff(NAME, olds, news)
    assert diff.changes and not diff.replaces
    with Stubber(sagemaker) as stub:
        stub.add_response(
            "update_inference_component",
            {"InferenceComponentArn": ARN},
            {
                "InferenceComponentName": NAME,
                "Specification": {**SPEC, "ModelName": "llmops-chat-model-v3-def5678"},
                "DeploymentConfig": {  # one copy at a time, rolled back on the SLO alarms
                    "RollingUpdatePolicy": {
                        "MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1},
                        "WaitIntervalInSeconds": 180,
                        "MaximumExecutionTimeoutInSeconds": 10800,
                    },
                    "AutoRollbackConfiguration": {
                        "Alarms": [
                            {"AlarmName": "llmops-dev-chat-p95-latency"},
                            {"AlarmName": "llmops-dev-chat-error-rate"},
                        ]
                    },
                },
            },
        )
        stub.add_response("describe_inference_component", described("Updating"))
        stub.add_response("describe_inference_component", described("InService"))
        result = p.update(NAME, olds, news)
        stub.assert_no_pending_responses()
    assert result.outs is not None and result.outs["arn"] == ARN
    # The copy count belongs to autoscaling once created: changing it alone is no change.
    assert not p.diff(NAME, olds, {**PROPS, "copy_count": 3}).changes


def test_a_new_endpoint_or_name_replaces_the_component_deleting_first(sagemaker: Any) -> None:
    p = provider(sagemaker)
    olds = {**PROPS, "arn": ARN}
    diff = p.diff(NAME, olds, {**PROPS, "endpoint_name": "llmops-pr-7-staging-chat"})
    assert diff.replaces == ["endpoint_name"] and diff.delete_before_replace
    assert p.diff(NAME, olds, {**PROPS, "name": "other-ic"}).replaces == ["name"]


def test_delete_waits_until_sagemaker_no_longer_finds_it(sagemaker: Any) -> None:
    missing = f"Could not find inference component '{NAME}'."
    with Stubber(sagemaker) as stub:
        stub.add_response("delete_inference_component", {}, {"InferenceComponentName": NAME})
        stub.add_response("describe_inference_component", described("Deleting"), {"InferenceComponentName": NAME})
        stub.add_client_error("describe_inference_component", "ValidationException", missing)
        provider(sagemaker).delete(NAME, {**PROPS, "arn": ARN})
        stub.assert_no_pending_responses()
    with Stubber(sagemaker) as stub:  # already gone (deleted by hand): nothing to do
        stub.add_client_error("delete_inference_component", "ValidationException", missing)
        provider(sagemaker).delete(NAME, {**PROPS, "arn": ARN})
        stub.assert_no_pending_responses()


def test_any_other_error_on_delete_is_raised(sagemaker: Any) -> None:
    with Stubber(sagemaker) as stub:
        stub.add_client_error("delete_inference_component", "AccessDeniedException", "not allowed")
        with pytest.raises(Exception, match="AccessDeniedException"):
            provider(sagemaker).delete(NAME, {**PROPS, "arn": ARN})
