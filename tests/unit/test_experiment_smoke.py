"""The post-deploy smoke check: requests sent to each variant, judged against the SLO.

Proves: on SageMaker each variant gets `InvokeEndpoint` with its `TargetVariant` (a
scale-to-zero endpoint: its `InferenceComponentName`) and the model's example prompts
(botocore's Stubber checks every request against the real service model); an endpoint
that refuses every call fails naming the endpoint and variant; through the real local
front (fake replicas in process) the pinned header reaches each variant whatever its
weight, a version the front does not serve fails with the front's located answer, and a
replica failing every request fails its variant only; the judgement fails an error rate
or a share of slow answers above the SLO by the exact binomial test, and passes few
errors it cannot prove; the request count is bounded.
Cannot prove: that an EKS route honours the pin header (no cluster here); that a
SageMaker container answers the Messages API (AWS-side).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from starlette.testclient import TestClient

from llmops.experiments.smoke_requests import (
    MAX_REQUESTS,
    Outcome,
    Probe,
    http_invoker,
    invoker_for,
    probe,
    prompts_for,
)
from llmops.experiments.smoke_verdict import judge
from llmops.local.serve import RoutingTable, create_app
from llmops.registry import Deployment, Slo, Variant, load_registry
from llmops.settings import load_all_stacks
from tests.unit.test_local_serving import Replicas, fake_replica, table

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = "llmops-staging-tiny-chat"
SLO = Slo(p95_latency_ms=1000, error_rate=0.01)


def tiny_chat(*variants: tuple[str, int]) -> Deployment:
    registry = load_registry(ROOT / "models", load_all_stacks(ROOT / "stacks"))
    dep = registry.models["tiny-chat"].deployment("local")
    return dataclasses.replace(dep, variants=[Variant(version=v, weight=w) for v, w in variants])


def runtime() -> Any:
    return boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def answer(text: str = "hi") -> dict[str, Any]:
    raw = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
    return {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json"}


def expected(variant: str, prompt: str) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 16}
    return {
        "EndpointName": ENDPOINT,
        "TargetVariant": variant,
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps(body).encode(),
    }


def test_sagemaker_variants_are_invoked_directly_with_the_example_prompts() -> None:
    dep = tiny_chat(("v1", 90), ("v2", 10), ("v3", 0))
    client = runtime()
    endpoint = {"url": f"https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/{ENDPOINT}/invocations",
                "endpointName": ENDPOINT}  # fmt: skip
    with Stubber(client) as stub:
        for version in ("v1", "v2"):  # the staged v3 (weight 0) serves nobody: not sent
            for prompt in prompts_for(dep, 1):
                stub.add_response("invoke_endpoint", answer(), expected(version, prompt))
        invoke, where = invoker_for(dep, endpoint, None, lambda: client)  # type: ignore[arg-type]
        probes = probe(dep, invoke, where, per_prompt=1)
        stub.assert_no_pending_responses()
    assert [p.version for p in probes] == ["v1", "v2"]
    assert [p.requests for p in probes] == [len(dep.model.examples)] * 2 and len(dep.model.examples) == 2
    results = [judge(dep.name, p, SLO) for p in probes]
    assert [r.failed for r in results] == [False, False]
    assert results[1].where == f"SageMaker {ENDPOINT} variant v2"


def test_a_scale_to_zero_endpoint_is_invoked_through_its_inference_component() -> None:
    """Its stack output names the component; `TargetVariant` would name a variant it does not have."""
    dep = tiny_chat(("v2", 100))
    client = runtime()
    component = f"{ENDPOINT}-ic"
    endpoint = {"url": f"https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/{ENDPOINT}/invocations",
                "endpointName": ENDPOINT, "inferenceComponent": component}  # fmt: skip
    with Stubber(client) as stub:
        for prompt in prompts_for(dep, 1):
            params = expected("v2", prompt)
            del params["TargetVariant"]
            stub.add_response("invoke_endpoint", answer(), {**params, "InferenceComponentName": component})
        invoke, where = invoker_for(dep, endpoint, None, lambda: client)  # type: ignore[arg-type]
        (result,) = [judge(dep.name, p, SLO) for p in probe(dep, invoke, where, per_prompt=1)]
        stub.assert_no_pending_responses()
    assert not result.failed and result.where == f"SageMaker {ENDPOINT} inference component {component}"


def test_a_sagemaker_variant_that_fails_every_call_fails_naming_the_endpoint_and_variant() -> None:
    dep = tiny_chat(("v1", 50), ("v2", 50))
    client = runtime()
    with Stubber(client) as stub:
        for prompt in prompts_for(dep, 2):
            stub.add_response("invoke_endpoint", answer(), expected("v1", prompt))
        for prompt in prompts_for(dep, 2):
            stub.add_client_error(
                "invoke_endpoint",
                service_error_code="ValidationError",
                service_message=f"Variant v2 not found for endpoint {ENDPOINT}",
                http_status_code=400,
                expected_params=expected("v2", prompt),
            )
        invoke, where = invoker_for(dep, {"url": "https://runtime.sagemaker.x/", "endpointName": ENDPOINT},
                                    None, lambda: client)  # type: ignore[arg-type]  # fmt: skip
        results = {p.version: judge(dep.name, p, SLO) for p in probe(dep, invoke, where, per_prompt=2)}
    assert not results["v1"].failed and results["v1"].requests == 4
    v2 = results["v2"]
    assert v2.failed and v2.requests == v2.errors == 4
    assert f"every request failed at SageMaker {ENDPOINT} variant v2" in v2.note
    assert "Variant v2 not found" in v2.note and v2.line().startswith("FAIL tiny-chat v2")


def front_client(t: RoutingTable, replicas: dict[str, Any]) -> TestClient:
    app = create_app(table=t, transport=Replicas(replicas), health_interval=60)
    return TestClient(app, base_url="http://127.0.0.1:18999", client=("127.0.0.1", 50000))


def test_the_local_front_is_reached_per_variant_through_the_pin_header() -> None:
    dep = tiny_chat(("v1", 100), ("v2", 0), ("v3", 0))
    t = table(("v1", 100, ["a:1"]), ("v2", 0, ["b:1"]))
    replicas = {"a:1": fake_replica("A"), "b:1": fake_replica("B")}
    with front_client(t, replicas) as http:
        invoke, where = invoker_for(dep, {"url": "http://127.0.0.1:18999"}, http, lambda: None)
        # A staged variant is sent nothing by the smoke check, but the pin reaches it all the same.
        assert invoke("v2", "Hello").ok and len(replicas["b:1"].state.requests) == 1
        [v1] = probe(dep, invoke, where, per_prompt=3)
        assert v1.requests == 6 and v1.errors == 0 and len(replicas["a:1"].state.requests) == 6
        missing = invoke("v3", "Hello")
        assert not missing.ok and "HTTP 404" in missing.error
        assert "no version 'v3' here (serves: v1, v2)" in missing.error
        remote = TestClient(http.app, client=("10.0.0.9", 40000))  # the lifespan runs already
        r = remote.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]},
                        headers={"x-llmops-version": "v1"})  # fmt: skip
        assert r.status_code == 403 and "loopback only" in r.text


def test_a_variant_whose_replica_fails_every_request_fails_alone() -> None:
    dep = tiny_chat(("v1", 80), ("v2", 20))
    t = table(("v1", 80, ["a:1"]), ("v2", 20, ["b:1"]))
    with front_client(t, {"a:1": fake_replica("A"), "b:1": fake_replica("B", status=500)}) as http:
        invoke, where = invoker_for(dep, {"url": "http://127.0.0.1:18999/v1"}, http, lambda: None)
        results = {p.version: judge(dep.name, p, SLO) for p in probe(dep, invoke, where, per_prompt=2)}
    assert not results["v1"].failed
    assert results["v2"].failed and results["v2"].errors == 4
    assert "every request failed at http://127.0.0.1:18999/v1 (x-llmops-version: v2)" in results["v2"].note
    assert "HTTP 503" in results["v2"].note and "answered 500" in results["v2"].note


def outcomes(ok_ms: list[float], errors: int = 0) -> tuple[Outcome, ...]:
    return (*(Outcome(True, ms / 1000) for ms in ok_ms), *(Outcome(False, 0.01, "HTTP 500") for _ in range(errors)))


def test_the_judgement_needs_evidence_of_an_excess() -> None:
    fast = [100.0] * 19
    one_error = judge("m", Probe("v1", "here", outcomes(fast, errors=1)), SLO)
    assert not one_error.failed and one_error.error_p is not None and one_error.error_p > 0.01
    three = judge("m", Probe("v1", "here", outcomes(fast[:17], errors=3)), SLO)
    assert three.failed and three.error_p is not None and three.error_p < 0.01
    assert "above the SLO 1.00%" in three.note and "first error at here: HTTP 500" in three.note
    one_slow = judge("m", Probe("v1", "here", outcomes([*fast, 5000.0])), SLO)
    assert not one_slow.failed and one_slow.slow == 1
    four = judge("m", Probe("v1", "here", outcomes([*fast[:16], 1500.0, 1600.0, 1700.0, 1800.0])), SLO)
    assert not four.failed and four.latency_p is not None and 0.01 < four.latency_p < 0.02  # 4/20: not yet proven
    slow = judge("m", Probe("v1", "here", outcomes([*fast[:15], 1500.0, 1600.0, 1700.0, 1800.0, 1900.0])), SLO)
    assert slow.failed and slow.slow == 5 and slow.errors == 0 and slow.p95_ms is not None and slow.p95_ms > 1000
    assert "5/20 slower than 1000 ms (above the p95 SLO" in slow.note
    nothing = judge("m", Probe("v1", "here", ()), SLO)
    assert nothing.failed and "no request was sent" in nothing.note


def test_the_requests_are_bounded() -> None:
    dep = tiny_chat(("v1", 100))
    many = dataclasses.replace(dep, model=dep.model.model_copy(update={"examples": [f"p{i}" for i in range(10)]}))
    assert len(prompts_for(many, 10)) == MAX_REQUESTS
    assert prompts_for(dep, 2) == ["Once upon a time", "Once upon a time", "The model said", "The model said"]
    bare = dataclasses.replace(dep, model=dep.model.model_copy(update={"examples": []}))
    assert prompts_for(bare, 2) == ["Hello", "Hello"]


def test_http_invoker_accepts_the_url_with_or_without_v1() -> None:
    t = table(("v1", 100, ["a:1"]))
    replica = fake_replica("A")
    with front_client(t, {"a:1": replica}) as http:
        for url in ("http://127.0.0.1:18999", "http://127.0.0.1:18999/v1/"):
            assert http_invoker(http, url, "tiny-chat")("v1", "Hi").ok
    assert len(replica.state.requests) == 2
