"""Gated hub models get the Hugging Face token from the stack's Secrets Manager secret, and only they do.

Runs the Platform under mocks on a registry with a gated model on SageMaker (fine-tuned by a
SageMaker pipeline from its gated base) and a gated model on EKS (fine-tuned by a Job), beside
models that are not gated. Proves: the SageMaker container of a gated version gets `HF_TOKEN`
as a secret Output read from the secret the stack names, and no other container does; an EKS
gated model gets its own Kubernetes Secret, referenced by `secretKeyRef` (required) from the
gated version's pods only; the training jobs get the secret's name (`HF_TOKEN_SECRET`), never
the token, and their roles may `secretsmanager:GetSecretValue` on that secret alone, no other
role may; the token is in no other resource's inputs. Cannot prove: that AWS lets the roles read
the secret, or that the hub accepts the token (the mocked value is not a real one).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmops.ci.mock_runtime import HUB_TOKEN
from llmops.settings import StackSettings

from .fixtures import models, write_registry
from .harness import ACCOUNT, REGION, Graph, run_platform

pytestmark = pytest.mark.mocks

SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:llmops/hf-token-??????"


def _gated(entry: dict[str, Any], versions: list[str]) -> dict[str, Any]:
    for version in versions:
        entry["versions"][version]["huggingface"]["gated"] = True
    return entry


@pytest.fixture(scope="module")
def graph(stacks: dict[str, StackSettings], tmp_path_factory: pytest.TempPathFactory) -> Graph:
    import asyncio

    root = tmp_path_factory.mktemp("gated")
    fixture = models()
    chat = _gated(fixture["chat-sm"], ["v1"])  # v2 is on S3: it needs no token
    chat["versions"]["v1"]["huggingface"]["repo"] = chat["training"]["base_model"] = "meta-llama/Llama-3.1-8B"
    code = _gated(fixture["code-eks"], ["a"])  # b is on the hub but not gated
    code["versions"]["a"]["huggingface"]["repo"] = code["training"]["base_model"]
    registry = write_registry(root, {"chat-sm": chat, "code-eks": code, "summarize-lmi": fixture["summarize-lmi"]})
    assert stacks["staging"].hf_token_secret == "llmops/hf-token"  # as the shipped stack file names it
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return run_platform("staging", stacks["staging"], registry, root)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def _policies(graph: Graph) -> dict[str, list[dict[str, Any]]]:
    """Role policy name -> its statements."""
    out = {}
    for policy in graph.of_type("aws:iam/rolePolicy:RolePolicy"):
        doc = policy.inputs["policy"]
        out[policy.name] = (json.loads(doc) if isinstance(doc, str) else doc)["Statement"]
    return out


def test_sagemaker_serves_a_gated_version_with_the_token_and_nothing_else_gets_it(graph: Graph) -> None:
    env = {m.name: m.inputs["primaryContainer"]["environment"] for m in graph.of_type("aws:sagemaker/model:Model")}
    gated = [name for name, e in env.items() if "HF_TOKEN" in e]
    assert gated == ["llmops-chat-sm-model-v1"], env.keys()
    assert env["llmops-chat-sm-model-v1"]["HF_TOKEN"] == HUB_TOKEN
    assert env["llmops-chat-sm-model-v1"]["HF_MODEL_ID"] == "meta-llama/Llama-3.1-8B"


def test_the_token_is_a_secret_in_the_state(graph: Graph) -> None:
    (model,) = [m for m in graph.of_type("aws:sagemaker/model:Model") if m.name == "llmops-chat-sm-model-v1"]
    assert "primaryContainer" in model.secret_inputs
    (secret,) = graph.of_type("kubernetes:core/v1:Secret")
    assert "stringData" in secret.secret_inputs


def test_eks_pods_read_their_models_secret_by_reference(graph: Graph) -> None:
    (secret,) = graph.of_type("kubernetes:core/v1:Secret")
    assert secret.inputs["metadata"]["name"] == "code-eks-hf-token"
    assert secret.inputs["stringData"] == {"token": HUB_TOKEN}
    envs = {
        d.inputs["metadata"]["labels"]["llmops.io/version"]: d.inputs["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
        for d in graph.of_type("kubernetes:apps/v1:Deployment")
        if d.inputs["metadata"]["labels"].get("app.kubernetes.io/name") == "code-eks"
    }
    tokens = {v: [e for e in env if e["name"] == "HF_TOKEN"] for v, env in envs.items()}
    assert tokens["a"] == [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "code-eks-hf-token", "key": "token"}}}
    ]
    assert tokens["b"] == [] and tokens["c"] == []  # not gated; on S3


def test_training_reads_the_secret_with_its_own_role(graph: Graph) -> None:
    (pipeline,) = graph.of_type("aws:sagemaker/pipeline:Pipeline")
    definition = json.loads(pipeline.inputs["pipelineDefinition"])
    (train,) = [s for s in definition["Steps"] if s["Type"] == "Training"]
    assert train["Arguments"]["Environment"] == {"HF_TOKEN_SECRET": "llmops/hf-token"}
    (job,) = graph.of_type("kubernetes:batch/v1:Job")
    env = job.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HF_TOKEN_SECRET", "value": "llmops/hf-token"} in env
    readers = {
        name: [s for s in statements if any(a.startswith("secretsmanager:") for a in s["Action"])]
        for name, statements in _policies(graph).items()
    }
    readers = {name: found for name, found in readers.items() if found}
    expected = {"Sid": "HubToken", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"]}
    assert sorted(readers) == ["llmops-chat-sm-training-train-policy", "llmops-code-eks-training-job-policy"], readers
    for found in readers.values():
        assert found == [{**expected, "Resource": [SECRET_ARN]}]


def test_the_token_is_nowhere_else(graph: Graph) -> None:
    holders = {r.name for r in graph.resources if HUB_TOKEN in json.dumps(r.inputs, default=str)}
    assert holders == {"llmops-chat-sm-model-v1", "llmops-code-eks-hf-token"}, holders
