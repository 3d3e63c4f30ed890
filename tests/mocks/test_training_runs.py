"""The stack exports each SageMaker training pipeline with the digest of the spec it was defined with.

Runs the Platform under mocks on the fixture registry. Proves: `trainingRuns` names each model
trained by a SageMaker pipeline (not the EKS Job's) with its pipeline's ARN and its spec's
digest, and a hyperparameter change changes the digest `ci deploy` compares runs against
(llmops.training_runs; its SageMaker calls are tests/unit/test_training_runs.py's); a version
whose weights are a training run's `model.tar.gz` (`llmops train adopt`) is served by SageMaker
as one gzipped object, and on EKS is fetched at its object version and unpacked by init
containers, with a role that reads exactly that object.
Cannot prove: that SageMaker starts the pipeline, nor that the images run the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.context import StackContext
from components.platform import Platform, PlatformArgs
from llmops.registry import Registry
from llmops.settings import StackSettings
from llmops.training_runs import OUTPUT, spec_digest

from .fixtures import models, write_registry
from .harness import mocked, run_platform

pytestmark = pytest.mark.mocks


def runs(stack: str, settings: StackSettings, registry: Registry, root: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    with mocked(stack):

        @pulumi.runtime.test
        def program() -> pulumi.Output[Any]:
            platform = Platform("llmops", PlatformArgs(StackContext(stack, settings, root), registry))
            return pulumi.Output.from_input(platform.outputs.get(OUTPUT, {})).apply(found.update)

        program()
    return found


def test_each_sagemaker_pipeline_is_exported_with_its_spec(stacks: dict[str, StackSettings], tmp_path: Path) -> None:
    entries = models()
    registry = write_registry(tmp_path, {m: entries[m] for m in ("chat-sm", "code-eks")})
    before = runs("dev", stacks["dev"], registry, tmp_path)
    assert sorted(before) == ["chat-sm"]  # code-eks trains in a Kubernetes Job
    assert before["chat-sm"]["pipelineArn"].endswith(":pipeline/llmops-dev-chat-sm-finetune")
    assert before["chat-sm"]["spec"] == spec_digest(registry.models["chat-sm"])

    entries["chat-sm"]["training"]["hyperparameters"]["epochs"] = 3
    changed = write_registry(tmp_path, {m: entries[m] for m in ("chat-sm", "code-eks")})
    after = runs("dev", stacks["dev"], changed, tmp_path)
    assert after["chat-sm"]["spec"] != before["chat-sm"]["spec"]


def test_a_sagemaker_endpoint_unpacks_a_training_archive(stacks: dict[str, StackSettings], tmp_path: Path) -> None:
    entries = models()
    archive = "s3://example-artifacts/chat-sm/output/pipelines-x1-FineTune/output/model.tar.gz"
    entries["chat-sm"]["versions"]["v3"] = {"s3": {"uri": archive, "version_id": "3HL4kq"}}
    entries["chat-sm"]["serving"]["variants"] = [{"version": "v1", "weight": 90}, {"version": "v3", "weight": 10}]
    registry = write_registry(tmp_path, {"chat-sm": entries["chat-sm"]})
    graph = run_platform("dev", stacks["dev"], registry, tmp_path)
    sources = {
        m.name: m.inputs["primaryContainer"].get("modelDataSource") for m in graph.of_type("aws:sagemaker/model:Model")
    }
    assert sources["llmops-chat-sm-model-v3"] == {
        "s3_data_source": {"s3_uri": archive, "s3_data_type": "S3Object", "compression_type": "Gzip"}
    }
    assert sources["llmops-chat-sm-model-v1"] is None  # the hub


def test_an_eks_variant_fetches_a_training_archive_at_its_version_and_unpacks_it(
    stacks: dict[str, StackSettings], tmp_path: Path
) -> None:
    """An adopted package served on EKS: the archive is fetched pinned, unpacked by the serving
    image, and the pod's role may read exactly that object's versions and decrypt only through S3."""
    entries = models()
    archive = "s3://example-artifacts/code-eks/output/pipelines-x1-FineTune/output/model.tar.gz"
    entries["code-eks"]["versions"]["c"] = {"s3": {"uri": archive, "version_id": "3HL4kq"}}
    registry = write_registry(tmp_path, {"code-eks": entries["code-eks"]})
    graph = run_platform("dev", stacks["dev"], registry, tmp_path)
    [variant] = [
        d
        for d in graph.of_type("kubernetes:apps/v1:Deployment")
        if d.inputs["metadata"]["labels"].get("llmops.io/version") == "c"
    ]
    pod = variant.inputs["spec"]["template"]["spec"]
    fetch, unpack = pod["initContainers"]
    assert fetch["args"] == [
        "s3api", "get-object", "--bucket", "example-artifacts",
        "--key", "code-eks/output/pipelines-x1-FineTune/output/model.tar.gz",
        "--version-id", "3HL4kq", "/models/model.tar.gz",
    ]  # fmt: skip
    serving = pod["containers"][0]
    assert unpack["image"] == serving["image"] and unpack["command"][:2] == ["python3", "-c"]
    assert "filter='data'" in unpack["command"][2] and "os.remove('/models/model.tar.gz')" in unpack["command"][2]
    assert "/models" in serving["args"]  # vLLM loads the unpacked folder, not the Hub
    policy = json.loads(graph.one("aws:iam/rolePolicy:RolePolicy", "llmops-code-eks-role-policy").inputs["policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["ArchiveVersions"]["Resource"] == [f"arn:aws:s3:::{archive.removeprefix('s3://')}"]
    key = by_sid["ArchiveKey"]
    assert key["Action"] == ["kms:Decrypt"] and key["Condition"]["StringEquals"] == {
        "kms:ViaService": "s3.us-east-1.amazonaws.com"
    }
    assert key["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"] == [
        "arn:aws:s3:::example-artifacts",
        "arn:aws:s3:::example-artifacts/*",
    ]
