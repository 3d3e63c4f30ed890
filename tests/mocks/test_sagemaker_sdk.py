"""The sagemaker SDK, used offline: pinned image URIs and a pipeline definition built without AWS.

Proves the image URIs come from the SDK's bundled tables at the pinned
versions (TGI, LMI, Hugging Face training), per region; that a pipeline
definition is built with every socket connection refused (nothing reaches AWS,
the Hub or the telemetry endpoint); that it trains on spot with a checkpoint
URI, a max runtime, KMS keys, script-mode code from S3; and registers the
result into the model package group; that the training code archive is
byte-for-byte reproducible; and that importing the SDK leaves the program's
logging as it was.

Cannot prove: that SageMaker accepts the definition (the service validates it
on CreatePipeline) or that the images still exist in ECR.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import tarfile
from typing import Any

import pytest

from components.aws import sagemaker_sdk
from components.aws.training import ENTRY_SCRIPT, code_archive

from .harness import REPO

pytestmark = pytest.mark.unit


def test_image_uris_come_from_the_sdk_at_pinned_versions() -> None:
    tgi = sagemaker_sdk.serving_image("tgi", "us-east-1", "ml.g5.2xlarge")
    lmi = sagemaker_sdk.serving_image("vllm", "eu-west-1", "ml.g5.12xlarge")
    training = sagemaker_sdk.training_image("us-west-2", "ml.g5.2xlarge")
    assert tgi.startswith("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:")
    assert f"tgi{sagemaker_sdk.TGI_VERSION}" in tgi
    assert ".dkr.ecr.eu-west-1.amazonaws.com/djl-inference:" in lmi
    assert lmi.split(":")[-1].startswith(sagemaker_sdk.LMI_VERSION)
    assert ".dkr.ecr.us-west-2.amazonaws.com/huggingface-pytorch-training:" in training
    assert f"transformers{sagemaker_sdk.HF_TRAINING['version']}" in training


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("the SDK tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _definition(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "pipeline_name": "llmops-dev-chat-finetune",
        "region": "us-east-1",
        "bucket": "artifacts-bucket",
        "role_arn": "arn:aws:iam::123456789012:role/train",
        "image": sagemaker_sdk.training_image("us-east-1", "ml.g6e.xlarge"),
        "instance_type": "ml.g6e.xlarge",
        "instance_count": 2,
        "spot": True,
        "max_runtime": 7200,
        "checkpoint_uri": "s3://artifacts-bucket/chat/checkpoints/",
        "output_uri": "s3://artifacts-bucket/chat/output/",
        "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/abc",
        "volume_kms_key_arn": None,
        "dataset_uri": "s3://data/chat/",
        "code_uri": "s3://artifacts-bucket/chat/code/1234/sourcedir.tar.gz",
        "entry_script": ENTRY_SCRIPT,
        "hyperparameters": {"base_model": "Qwen/Qwen2.5-7B", "epochs": 2},
        "package_group": "llmops-dev-chat",
        "serving_image": sagemaker_sdk.serving_image("tgi", "us-east-1", "ml.g5.2xlarge"),
        "serving_instance": "ml.g5.2xlarge",
        "serving_environment": {"HF_MODEL_ID": "/opt/ml/model"},
    }
    args.update(overrides)
    definition: dict[str, Any] = json.loads(sagemaker_sdk.training_pipeline_definition(**args))
    return definition


def test_the_pipeline_definition_is_built_offline(no_network: None) -> None:
    definition = _definition()
    train, register = definition["Steps"]
    assert (train["Type"], register["Type"]) == ("Training", "RegisterModel")
    a = train["Arguments"]
    assert a["EnableManagedSpotTraining"] is True
    assert a["StoppingCondition"]["MaxRuntimeInSeconds"] == 7200
    assert a["StoppingCondition"]["MaxWaitTimeInSeconds"] >= 7200
    assert a["CheckpointConfig"]["S3Uri"] == "s3://artifacts-bucket/chat/checkpoints/"
    assert a["OutputDataConfig"] == {
        "S3OutputPath": "s3://artifacts-bucket/chat/output/",
        "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/abc",
        "CompressionType": "GZIP",
    }
    assert a["ResourceConfig"]["InstanceType"] == "ml.g6e.xlarge" and a["ResourceConfig"]["InstanceCount"] == 2
    assert a["RoleArn"] == "arn:aws:iam::123456789012:role/train"
    assert a["HyperParameters"]["sagemaker_program"] == ENTRY_SCRIPT
    assert a["HyperParameters"]["sagemaker_submit_directory"].endswith("sourcedir.tar.gz")
    assert a["HyperParameters"]["base_model"] == "Qwen/Qwen2.5-7B"
    assert a["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://data/chat/"
    r = register["Arguments"]
    assert r["ModelPackageGroupName"] == "llmops-dev-chat"
    assert r["ModelApprovalStatus"] == "PendingManualApproval"
    (container,) = r["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == {"Get": "Steps.FineTune.ModelArtifacts.S3ModelArtifacts"}
    assert "tgi-inference" in container["Image"]


def test_on_demand_training_waits_for_nothing_and_volume_keys_pass_through() -> None:
    a = _definition(spot=False, volume_kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/vol")["Steps"][0][
        "Arguments"
    ]
    assert a["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in a["StoppingCondition"]
    assert a["ResourceConfig"]["VolumeKmsKeyId"] == "arn:aws:kms:us-east-1:123456789012:key/vol"


def test_importing_the_sdk_leaves_logging_alone() -> None:
    # A fresh interpreter: in this one the SDK may already be imported.
    probe = (
        "import logging; from components.aws import sagemaker_sdk as s; "
        "s._image_uris(); s._workflow(); r = logging.getLogger(); "
        "print(r.level, len(r.handlers), logging.getLogger('sagemaker.core.utils.utils').getEffectiveLevel())"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(logging.WARNING), "0", str(logging.ERROR)]
    assert "INFO" not in out.stderr and "DEBUG" not in out.stderr


def test_the_training_code_archive_is_reproducible() -> None:
    first, digest = code_archive()
    again, digest_again = code_archive()
    assert first == again and digest == digest_again
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        names = tar.getnames()
        assert ENTRY_SCRIPT in names
        assert all(m.mtime == 0 for m in tar.getmembers())
