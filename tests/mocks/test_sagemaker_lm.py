"""The lm-eval model over a SageMaker endpoint, with botocore's Stubber.

Proves: a generation suite runs through lm-eval against an endpoint, each request is
an InvokeEndpoint with the chat messages (the Messages API), greedy, with the suite's
stop strings, to the variant asked for; the suite's metric is computed from the
endpoint's answers; log-likelihood suites fail with a clear message; `llmops ci deploy`'s
staging gate measures every variant through its own variant, writes a traceable record per
version for prod's policy, and stops the promotion when a version misses a gate. Cannot prove: a real
endpoint's answers (no AWS account here).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from llmops.evaluation.harness import run_suite
from llmops.evaluation.records import RECORDS_ENV, evaluation_records
from llmops.evaluation.sagemaker_lm import SageMakerLM
from llmops.evaluation.staging import StagingGateFailed, staging_gate
from llmops.evaluation.suites import load_suite
from tests.support.project import REPO

pytestmark = pytest.mark.mocks


def _body(text: str) -> StreamingBody:
    raw = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def test_a_generation_suite_runs_against_the_endpoint() -> None:
    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    suite = load_suite(REPO / "models", "tiny-chat-safety")
    requests = [json.loads(line) for line in (suite.path / "requests.jsonl").read_text().splitlines()]
    sent: list[dict[str, Any]] = []
    with Stubber(client) as stub:
        for i, req in enumerate(requests):
            answer = "Step one: find the owner." if i == 0 else "I cannot help with that."
            expected = {
                "EndpointName": "llmops-staging-chat",
                "TargetVariant": "v2",
                "ContentType": "application/json",
                "Accept": "application/json",
                "Body": json.dumps(
                    {
                        "messages": [{"role": "user", "content": req["request"]}],
                        "max_tokens": 32,
                        "temperature": 0,
                        "stop": ["<|end|>"],
                    }
                ).encode(),
            }
            stub.add_response("invoke_endpoint", {"Body": _body(answer), "ContentType": "application/json"}, expected)
            sent.append(expected)
        lm = SageMakerLM("llmops-staging-chat", client, variant="v2")
        record = run_suite(
            suite, lm, model="chat", weights="org/chat@abc", where="sagemaker-endpoint:llmops-staging-chat"
        )
        stub.assert_no_pending_responses()
    assert record.metrics["violation_rate"] == pytest.approx(1 / len(requests))
    assert record.where == "sagemaker-endpoint:llmops-staging-chat" and record.weights == "org/chat@abc"
    assert record.worst[0]["response"] == "Step one: find the owner."


def test_loglikelihood_suites_are_refused() -> None:
    lm = SageMakerLM("e", client=None)
    with pytest.raises(NotImplementedError, match="endpoints return no token scores"):
        lm.loglikelihood_rolling([])


def _questions() -> list[dict[str, Any]]:
    path = REPO / "models" / "evals" / "assistant-basics" / "questions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _stub_answers(stub: Stubber, variant: str, right: bool) -> None:
    for q in _questions():
        answer = f"It is {q['expected'].split('|')[0]}." if right else "I do not know."
        stub.add_response(
            "invoke_endpoint",
            {"Body": _body(answer), "ContentType": "application/json"},
            {
                "EndpointName": "llmops-staging-llama",
                "TargetVariant": variant,
                "ContentType": "application/json",
                "Accept": "application/json",
                "Body": ANY,
            },
        )


@pytest.mark.parametrize("v2_right", [True, False])
def test_the_staging_gate_records_each_version_and_stops_promotion_on_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, v2_right: bool
) -> None:
    monkeypatch.setenv(RECORDS_ENV, str(tmp_path))
    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    outputs = {"endpoints": {"llama-3-1-8b-instruct": {"endpointName": "llmops-staging-llama"}}}
    with Stubber(client) as stub:
        _stub_answers(stub, "v1", right=True)
        _stub_answers(stub, "v2", right=v2_right)
        if v2_right:
            written = staging_gate(REPO, "staging", "staging", outputs, client, lambda _: None)
            assert len(written) == 2
        else:
            with pytest.raises(StagingGateFailed, match="llama-3-1-8b-instruct v2: gate assistant-basics/accuracy"):
                staging_gate(REPO, "staging", "staging", outputs, client, lambda _: None)
        stub.assert_no_pending_responses()
    records = evaluation_records("llama-3-1-8b-instruct", REPO, ["v1", "v2"])
    assert records["v1"][0]["passed"] is True and records["v1"][0]["metrics"] == {"accuracy": 1.0}
    assert records["v2"][0]["passed"] is v2_right
    assert records["v2"][0]["where"] == "sagemaker-endpoint:llmops-staging-llama/v2"
    assert records["v2"][0]["weights"].startswith("hf://meta-llama/Llama-3.1-8B-Instruct")


def test_other_environments_are_not_gated_here() -> None:
    assert staging_gate(REPO, "dev", "dev", {}, None, print) == []
