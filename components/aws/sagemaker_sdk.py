"""The sagemaker SDK (v3), used offline: container image URIs and pipeline definitions.

Image URIs come from `sagemaker.core.image_uris.retrieve`, which reads the JSON
bundled with the SDK; pipeline definitions come from a `PipelineSession`, which
records requests instead of sending them. Neither needs AWS, but the SDK creates
a boto3 client at import time (needs a region), validates execution roles
through IAM (switched off: the role is created by this program) and emits
telemetry (opted out). This module sets those up once, before the first import.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.aws.evaluation import EvaluationSpec

# Pinned serving and training containers: a bump here is a reviewed change.
TGI_VERSION = "3.3.6"  # Hugging Face TGI ("huggingface-llm")
LMI_VERSION = "0.36.0"  # Large Model Inference ("djl-lmi"), vLLM engine
HF_TRAINING = {"version": "4.56.2", "base_framework_version": "pytorch2.8.0", "py_version": "py312"}
# The drift job's container: SageMaker's SKLearn processing image on Python 3.12 (CPU, small).
SKLEARN_PROCESSING = "1.4-2-py312"


def _offline_environment() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"


@contextmanager
def _sdk_import() -> Iterator[None]:
    """Import SDK modules without letting them reconfigure the program's logging: some call
    `logging.basicConfig` at import, and some set their own loggers' levels."""
    _offline_environment()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    # Some modules create boto3 clients at import, which look for credentials; without any in
    # the environment botocore would ask the EC2 instance metadata service over the network.
    imds = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        yield
    finally:
        if imds is None:
            os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
        else:
            os.environ["AWS_EC2_METADATA_DISABLED"] = imds
        root.setLevel(level)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        for logger_name in list(logging.root.manager.loggerDict):
            if logger_name.startswith("sagemaker"):
                logging.getLogger(logger_name).setLevel(logging.ERROR)


@cache
def _image_uris() -> Any:
    with _sdk_import():
        from sagemaker.core import image_uris
    return image_uris


def runtime_framework(runtime: str) -> tuple[str, str]:
    """The SageMaker container family and pinned version serving a registry runtime."""
    if runtime in ("lmi", "vllm"):
        return "djl-lmi", LMI_VERSION
    # tgi, and transformers models: TGI serves any transformers causal LM.
    return "huggingface-llm", TGI_VERSION


@cache
def serving_image(runtime: str, region: str, instance_type: str) -> str:
    framework, version = runtime_framework(runtime)
    uri: str = _image_uris().retrieve(framework, region=region, version=version, instance_type=instance_type)
    return uri


@cache
def training_image(region: str, instance_type: str) -> str:
    uri: str = _image_uris().retrieve(
        "huggingface", region=region, instance_type=instance_type, image_scope="training", **HF_TRAINING
    )
    return uri


@cache
def processing_image(region: str, instance_type: str) -> str:
    """The SKLearn image SageMaker's SKLearnProcessor runs (its tables' "training" scope)."""
    uri: str = _image_uris().retrieve(
        "sklearn", region=region, version=SKLEARN_PROCESSING, instance_type=instance_type, image_scope="training"
    )
    return uri


SDK_DEFAULTS: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


@cache
def _validate_defaults_once() -> None:
    """The SDK re-validates its defaults dict against its JSON schema on every lookup
    (about 0.3 s each, a dozen per pipeline). Ours is one constant dict: validate it
    once, then let the SDK's later checks of that same dict pass without redoing it."""
    from sagemaker.core.config.config_manager import SageMakerConfig

    original = SageMakerConfig.validate_sagemaker_config
    original(SDK_DEFAULTS)

    def validate(sagemaker_config: dict[str, Any] | None = None) -> None:
        if sagemaker_config != SDK_DEFAULTS:
            original(sagemaker_config)

    SageMakerConfig.validate_sagemaker_config = staticmethod(validate)  # type: ignore[method-assign]


def pipeline_session(region: str, bucket: str) -> Any:
    """A PipelineSession that never calls AWS: static credentials, a named default bucket, no telemetry.

    One session per region serves every pipeline (building one costs a second of
    boto3 client setup); definitions are built one after another, never interleaved."""
    session = _region_session(region)
    # A named bucket is still checked for existence on first use; this one is created by the program.
    session._default_bucket = bucket
    return session


@cache
def _region_session(region: str) -> Any:
    with _sdk_import():
        import boto3
        from sagemaker.core.workflow.pipeline_context import PipelineSession

    boto = boto3.Session(region_name=region, aws_access_key_id="offline", aws_secret_access_key="offline")
    _validate_defaults_once()
    session = PipelineSession(boto_session=boto, sagemaker_config=SDK_DEFAULTS)
    return session


# Where each SDK class the pipeline definitions use lives.
_WORKFLOW_CLASSES = {
    "sagemaker.core.processing": ("Processor",),
    "sagemaker.core.shapes": (
        "MetricsSource",
        "ModelMetrics",
        "ModelQuality",
        "ProcessingInput",
        "ProcessingOutput",
        "ProcessingS3Input",
        "ProcessingS3Output",
    ),
    "sagemaker.core.training.configs": (
        "CheckpointConfig",
        "Compute",
        "InputData",
        "OutputDataConfig",
        "StoppingCondition",
    ),
    "sagemaker.core.workflow.conditions": ("ConditionGreaterThanOrEqualTo", "ConditionLessThanOrEqualTo"),
    "sagemaker.core.workflow.execution_variables": ("ExecutionVariables",),
    "sagemaker.core.workflow.functions": ("Join", "JsonGet"),
    "sagemaker.core.workflow.properties": ("PropertyFile",),
    "sagemaker.mlops.workflow.condition_step": ("ConditionStep",),
    "sagemaker.mlops.workflow.fail_step": ("FailStep",),
    "sagemaker.mlops.workflow.model_step": ("ModelStep",),
    "sagemaker.mlops.workflow.pipeline": ("Pipeline",),
    "sagemaker.mlops.workflow.steps": ("ProcessingStep", "TrainingStep"),
    "sagemaker.serve.model_builder": ("ModelBuilder",),
    "sagemaker.train.model_trainer": ("ModelTrainer",),
}


@cache
def _workflow() -> SimpleNamespace:
    """The SDK's pipeline classes, imported once (the import takes seconds)."""
    import importlib

    with _sdk_import():
        return SimpleNamespace(
            **{
                name: getattr(importlib.import_module(module), name)
                for module, names in _WORKFLOW_CLASSES.items()
                for name in names
            }
        )


def training_pipeline_definition(
    *,
    pipeline_name: str,
    region: str,
    bucket: str,
    role_arn: str,
    image: str,
    instance_type: str,
    instance_count: int,
    spot: bool,
    max_runtime: int,
    checkpoint_uri: str,
    output_uri: str,
    kms_key_arn: str,
    volume_kms_key_arn: str | None,
    dataset_uri: str,
    code_uri: str,
    entry_script: str,
    hyperparameters: dict[str, Any],
    package_group: str,
    serving_image: str,
    serving_instance: str | None,
    serving_environment: dict[str, str],
    evaluation: EvaluationSpec | None = None,
    environment: dict[str, str] | None = None,
) -> str:
    """A SageMaker pipeline: a (spot) training step, then registration into a model package group
    (with `evaluation`: only when the evaluation step's report passes every gate).

    The training step runs `entry_script` from the `code_uri` archive in script mode
    (the `sagemaker_program`/`sagemaker_submit_directory` hyperparameters of the
    training toolkit in the Hugging Face containers). The archive is uploaded by
    the program, not the SDK: ModelTrainer's own source-code mode uploads from the
    deploying machine when the definition is built, which a preview must not do.
    """
    with warnings.catch_warnings():
        # "Running within a PipelineSession ... no job being started": that is the point here.
        warnings.simplefilter("ignore", UserWarning)
        session = pipeline_session(region, bucket)
        sdk = _workflow()
        trainer = sdk.ModelTrainer(
            sagemaker_session=session,
            role=role_arn,
            training_image=image,
            base_job_name=pipeline_name[:50],
            environment=environment or None,  # HF_TOKEN_SECRET for a gated base: the secret's name, not the token
            compute=sdk.Compute(
                instance_type=instance_type,
                instance_count=instance_count,
                enable_managed_spot_training=spot,
                volume_kms_key_id=volume_kms_key_arn,
            ),
            # Spot capacity may take a while: wait up to as long again as the run itself (28 days at most).
            stopping_condition=sdk.StoppingCondition(
                max_runtime_in_seconds=max_runtime,
                max_wait_time_in_seconds=min(2 * max_runtime, 28 * 24 * 3600) if spot else None,
            ),
            output_data_config=sdk.OutputDataConfig(s3_output_path=output_uri, kms_key_id=kms_key_arn),
            checkpoint_config=sdk.CheckpointConfig(s3_uri=checkpoint_uri, local_path="/opt/ml/checkpoints"),
            hyperparameters={
                **hyperparameters,
                "sagemaker_program": entry_script,
                "sagemaker_submit_directory": code_uri,
                "sagemaker_region": region,
            },
        )
        train = sdk.TrainingStep(
            name="FineTune",
            step_args=trainer.train(input_data_config=[sdk.InputData(channel_name="train", data_source=dataset_uri)]),
        )
        builder = sdk.ModelBuilder(
            image_uri=serving_image,
            s3_model_data_url=train.properties.ModelArtifacts.S3ModelArtifacts,
            role_arn=role_arn,
            sagemaker_session=session,
            env_vars=serving_environment,
            dependencies={},  # nothing to package: the model is the training step's artifact
            instance_type=serving_instance,
            log_level=logging.ERROR,  # it sets the SDK's shared logger to this level
        )
        gated = evaluation is not None and bool(evaluation.gates)
        if gated:
            from components.aws.evaluation import evaluation_steps, package_metrics
        register = sdk.ModelStep(
            name="Register",
            step_args=builder.register(
                model_package_group_name=package_group,
                content_types=["application/json"],
                response_types=["application/json"],
                inference_instances=[serving_instance] if serving_instance else None,
                approval_status="PendingManualApproval",
                model_metrics=package_metrics(sdk, evaluation) if gated and evaluation else None,
            ),
        )
        steps = [train, register]
        if gated and evaluation is not None:
            model_data = train.properties.ModelArtifacts.S3ModelArtifacts
            steps = [train, *evaluation_steps(sdk, session, role_arn, evaluation, model_data, register)]
        pipeline = sdk.Pipeline(name=pipeline_name, steps=steps, sagemaker_session=session)
        definition: str = pipeline.definition()
        return definition
