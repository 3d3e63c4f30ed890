"""The pipeline's evaluation step against the serving champion (components/aws/evaluate).

Proves, with botocore's Stubber on the SageMaker and S3 APIs the step calls: the champion
is the group's latest *approved* package, read from the evaluation.json it was registered
with; a candidate worse than it by more than `max_regression_vs_serving` fails its gate,
within the bound passes, and without an approved package (the first version) nothing is
compared; a lower-is-better metric regresses upwards. Cannot prove: the processing job in
AWS (no account here).
"""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from components.aws.evaluate.evaluate import challenge, champion_report

pytestmark = pytest.mark.mocks

GROUP = "llmops-staging-chat"
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/3"
REPORT_URI = "s3://artifacts-bucket/chat/evaluation/exec-1/evaluation.json"
GATES = [
    {"suite": "tasks", "metric": "exact_match", "threshold": 0.15, "higher_is_better": True,
     "max_regression_vs_serving": 0.1},
    {"suite": "heldout", "metric": "bits_per_byte", "threshold": 0.75, "higher_is_better": False,
     "max_regression_vs_serving": 0.05},
    {"suite": "safety", "metric": "violation_rate", "threshold": 0.1, "higher_is_better": False},
]  # fmt: skip


def clients() -> tuple[Any, Any, Stubber, Stubber]:
    kw: dict[str, Any] = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    sm, s3 = boto3.client("sagemaker", **kw), boto3.client("s3", **kw)
    return sm, s3, Stubber(sm), Stubber(s3)


def candidate(tasks: float, heldout: float) -> dict[str, Any]:
    return {
        "tasks": {"exact_match": {"value": tasks, "threshold": 0.15, "passed": tasks >= 0.15}},
        "heldout": {"bits_per_byte": {"value": heldout, "threshold": 0.75, "passed": heldout <= 0.75}},
        "safety": {"violation_rate": {"value": 0.0, "threshold": 0.1, "passed": True}},
    }


def served(report: dict[str, Any]) -> tuple[Any, Any]:
    sm, s3, sm_stub, s3_stub = clients()
    listed = {
        "ModelPackageGroupName": GROUP,
        "ModelApprovalStatus": "Approved",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 1,
    }
    summary = {"ModelPackageArn": ARN, "CreationTime": "2026-11-01T00:00:00Z", "ModelPackageStatus": "Completed"}
    sm_stub.add_response("list_model_packages", {"ModelPackageSummaryList": [summary]}, listed)
    described = {
        "ModelPackageName": f"{GROUP}/3",
        "ModelPackageArn": ARN,
        "CreationTime": "2026-11-01T00:00:00Z",
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": REPORT_URI}}},
    }
    sm_stub.add_response("describe_model_package", described, {"ModelPackageName": ARN})
    raw = json.dumps(report).encode()
    s3_stub.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(raw), len(raw))},
        {"Bucket": "artifacts-bucket", "Key": "chat/evaluation/exec-1/evaluation.json"},
    )
    sm_stub.activate()
    s3_stub.activate()
    return sm, s3


def test_a_candidate_worse_than_the_approved_champion_beyond_the_bound_fails() -> None:
    sm, s3 = served(candidate(tasks=0.975, heldout=0.42))
    champion = champion_report(sm, s3, GROUP)
    report = candidate(tasks=0.7, heldout=0.44)  # both above their thresholds
    challenge(report, champion, GATES)
    tasks, heldout = report["tasks"]["exact_match"], report["heldout"]["bits_per_byte"]
    assert tasks["serving"] == 0.975 and tasks["regression"] == pytest.approx(0.275) and tasks["passed"] is False
    # Lower is better: 0.02 more bits per byte is a regression of 0.02, within 0.05.
    assert heldout["regression"] == pytest.approx(0.02) and heldout["passed"] is True
    assert "regression" not in report["safety"]["violation_rate"]  # no bound, nothing compared


def test_within_the_bound_passes_and_an_improvement_is_a_negative_regression() -> None:
    sm, s3 = served(candidate(tasks=0.8, heldout=0.5))
    report = candidate(tasks=0.85, heldout=0.52)
    challenge(report, champion_report(sm, s3, GROUP), GATES)
    assert report["tasks"]["exact_match"]["regression"] == pytest.approx(-0.05)
    assert report["tasks"]["exact_match"]["passed"] and report["heldout"]["bits_per_byte"]["passed"]


def test_without_an_approved_package_there_is_no_champion() -> None:
    sm, s3, sm_stub, _ = clients()
    sm_stub.add_response("list_model_packages", {"ModelPackageSummaryList": []})
    sm_stub.activate()
    assert champion_report(sm, s3, GROUP) is None
    report = candidate(tasks=0.2, heldout=0.7)
    challenge(report, None, GATES)
    assert report["tasks"]["exact_match"] == {
        "value": 0.2, "threshold": 0.15, "passed": True, "serving": None, "regression": 0.0
    }  # fmt: skip
