"""The AWS drift monitor: an EventBridge-scheduled SageMaker Processing job over the capture bucket.

EventBridge cannot start a Processing job directly; it starts a one-step SageMaker
Pipeline whose step is the Processing job (the same pattern as the training
pipeline). The job mounts the model's capture prefix (SageMaker data capture
writes `s3://<capture bucket>/<model>/<variant>/yyyy/mm/dd/hh/*.jsonl`) and runs
`python -m llmops.datasets.drift run --cloudwatch NAMESPACE`, the module the local
monitor runs, which publishes `DriftScore` and `DriftDetected` per model. A
CloudWatch alarm on `DriftDetected` notifies the monitoring stack's SNS topic.

The job runs in the SageMaker SKLearn image the sagemaker SDK's tables name, so nothing is
built or pushed; the code archive lives, KMS-encrypted under a content-addressed key, in the
monitor's own bucket (the capture bucket expires everything it holds). The job's role reads
that archive and the model's capture prefix (and decrypts them), pulls that one image, and
writes metrics to one namespace and its own logs: nothing more.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.aws.account import account_id, partition
from components.aws.archive import upload_archive
from components.aws.drift_code import ARCHIVE, CODE_DIR, DriftCodeError, drift_archive, entrypoint
from components.aws.iam import ecr_pull, policy_document, s3_read, service_trust, statement
from components.aws.naming import child
from components.aws.sagemaker_sdk import processing_image
from components.aws.storage import encrypted_bucket
from components.contracts import DriftMonitorArgs, DriftMonitorOutputs
from llmops.datasets.registry import load_datasets

NAMESPACE = "LLMOps/Drift"
PROCESSING_INSTANCE = "ml.t3.medium"
CAPTURE_MOUNT = "/opt/ml/processing/capture"


def build_drift_monitor(component: DriftMonitorOutputs, name: str, args: DriftMonitorArgs) -> None:
    ctx, dep = args.context, args.deployment
    drift = dep.model.monitoring.drift
    assert drift is not None
    cluster = args.cluster
    if cluster is None or cluster.capture_bucket is None or cluster.capture_bucket_arn is None:
        raise pulumi.RunError(f"{dep.name}: the AWS drift monitor reads the stack's capture bucket (a GpuCluster's)")
    if cluster.data_key_arn is None:
        raise pulumi.RunError(f"{dep.name}: the AWS drift monitor decrypts with the stack's data key (a GpuCluster's)")
    tags = ctx.tags(model=dep.name, team=dep.model.owner)
    opts = pulumi.ResourceOptions(parent=component)
    region = ctx.settings.region
    prefix = f"{dep.name}/"
    account = account_id(component)
    image = processing_image(region, PROCESSING_INSTANCE)
    code = _code_object(name, ctx.root, dep.name, args.dataset, cluster.data_key_arn, tags, opts, region)
    # The archive's folder: a processing input is a prefix, its objects land under LocalPath.
    code_uri = pulumi.Output.concat("s3://", code.bucket, "/", code.key.apply(lambda k: k.rsplit("/", 1)[0] + "/"))
    role = _job_role(
        name, region, account, cluster.capture_bucket_arn, cluster.data_key_arn, prefix, image, code_uri, tags, opts
    )
    capture_uri = cluster.capture_bucket.apply(lambda b: f"s3://{b}/{prefix}")
    command = entrypoint(
        [
            "--model", dep.name, "--dataset", args.dataset, "--capture", CAPTURE_MOUNT,
            "--threshold", str(drift.threshold), "--drift-share", str(drift.drift_share),
            "--min-records", str(drift.min_records), "--cloudwatch", NAMESPACE,
        ]
    )  # fmt: skip
    definition = pulumi.Output.all(role=role.arn, code=code_uri, capture=capture_uri).apply(
        lambda o: _pipeline_definition(o["role"], image, o["code"], o["capture"], command, dep.name, region)
    )
    pipeline = aws.sagemaker.Pipeline(
        child(name, "pipeline", limit=256),
        pipeline_name=f"{ctx.stack}-{dep.name}-drift"[:256],
        pipeline_display_name=f"{ctx.stack}-{dep.name}-drift"[:82],
        pipeline_description=f"Drift of {dep.name}'s captured traffic against {args.dataset}'s eval split",
        pipeline_definition=definition,
        role_arn=role.arn,
        tags=tags,
        opts=opts,
    )
    minutes = max(1, math.ceil(drift.interval_seconds / 60))
    rule = _schedule(name, dep.name, pipeline, minutes, tags, opts)
    alarm = _alarm(name, args, minutes, tags, opts)
    component.schedule_arn = rule.arn
    component.alarm_name = alarm.name


def _code_object(
    name: str,
    root: Path,
    model: str,
    dataset: str,
    key_arn: pulumi.Output[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    region: str,
) -> aws.s3.BucketObjectv2:
    """The code archive, KMS-encrypted under a content-addressed key in the monitor's own bucket."""
    registry, _ = load_datasets(root)
    try:
        archive, digest = drift_archive(root, registry.get(dataset))
    except (KeyError, DriftCodeError) as exc:
        raise pulumi.RunError(f"models/{model}.yaml: monitoring.drift.dataset: {exc}") from None
    bucket = encrypted_bucket(child(name, "code"), kms_key_arn=key_arn, tags=tags, opts=opts, region=region)
    object_key = f"{model}/drift-code/{digest[:16]}/{ARCHIVE}"
    return upload_archive(f"{name}-code-archive", bucket.id, key_arn, object_key, archive, tags, opts)


def _job_role(
    name: str,
    region: str,
    account: pulumi.Output[str],
    bucket_arn: pulumi.Output[str],
    key_arn: pulumi.Output[str],
    prefix: str,
    image: str,
    code_uri: pulumi.Output[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """The Processing job's role: pull its image, read its code archive and the model's capture
    prefix, put metrics in one namespace, write its logs."""
    role = aws.iam.Role(
        child(name, "role", limit=64), assume_role_policy=service_trust("sagemaker.amazonaws.com"), tags=tags, opts=opts
    )
    log_group = pulumi.Output.concat(
        "arn:", partition(region), ":logs:", region, ":", account, ":log-group:/aws/sagemaker/ProcessingJobs"
    )  # fmt: skip
    aws.iam.RolePolicy(
        f"{name}-policy",
        role=role.id,
        policy=policy_document(
            [
                statement("ReadCapture", ["s3:GetObject"], [pulumi.Output.concat(bucket_arn, "/", prefix, "*")]),
                statement(
                    "ListCapture", ["s3:ListBucket"], [bucket_arn], {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
                ),
                *s3_read("Code", code_uri, region),
                # The capture bucket and the code bucket are both encrypted with the stack's data key.
                statement("Decrypt", ["kms:Decrypt"], [key_arn]),
                *ecr_pull(region, [image]),
                # PutMetricData has no resource scope; the namespace condition narrows it.
                statement(
                    "Metrics",
                    ["cloudwatch:PutMetricData"],
                    ["*"],
                    {"StringEquals": {"cloudwatch:namespace": NAMESPACE}},
                ),
                statement(
                    "Logs",
                    ["logs:CreateLogStream", "logs:PutLogEvents"],
                    [pulumi.Output.concat(log_group, ":log-stream:*")],
                ),
            ]
        ),
        opts=opts,
    )
    return role


def _pipeline_definition(
    role: str, image: str, code: str, capture: str, command: list[str], model: str, region: str
) -> str:
    """A one-step SageMaker pipeline: the Processing job over the model's capture prefix."""
    step = {
        "Name": "drift",
        "Type": "Processing",
        "Arguments": {
            "RoleArn": role,
            "AppSpecification": {"ImageUri": image, "ContainerEntrypoint": command},
            # The drift module finds the dataset registry and splits under LLMOPS_ROOT (the unpacked archive);
            # boto3 publishes to the job's region.
            "Environment": {"LLMOPS_ROOT": CODE_DIR, "AWS_DEFAULT_REGION": region},
            "ProcessingInputs": [
                {
                    "InputName": "code",
                    "S3Input": {
                        "S3Uri": code,
                        "LocalPath": CODE_DIR,
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                    },
                },
                {
                    "InputName": "capture",
                    "S3Input": {
                        "S3Uri": capture,
                        "LocalPath": f"{CAPTURE_MOUNT}/{model}",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                    },
                },
            ],
            "ProcessingResources": {
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": PROCESSING_INSTANCE, "VolumeSizeInGB": 10}
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
        },
    }
    return json.dumps({"Version": "2020-12-01", "Steps": [step]}, sort_keys=True)


def _schedule(
    name: str,
    model: str,
    pipeline: aws.sagemaker.Pipeline,
    minutes: int,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.cloudwatch.EventRule:
    """An EventBridge rule that starts the pipeline every `minutes`, through a role that may do only that."""
    events_role = aws.iam.Role(
        child(name, "events-role", limit=64),
        assume_role_policy=service_trust("events.amazonaws.com"),
        tags=tags,
        opts=opts,
    )
    aws.iam.RolePolicy(
        f"{name}-events-policy",
        role=events_role.id,
        policy=policy_document([statement("StartDrift", ["sagemaker:StartPipelineExecution"], [pipeline.arn])]),
        opts=opts,
    )
    rule = aws.cloudwatch.EventRule(
        child(name, "schedule", limit=64),
        schedule_expression=f"rate({minutes} minute{'s' if minutes > 1 else ''})",
        description=f"Run {model}'s drift monitor",
        tags=tags,
        opts=opts,
    )
    aws.cloudwatch.EventTarget(
        f"{name}-target",
        rule=rule.name,
        arn=pipeline.arn,
        role_arn=events_role.arn,
        sagemaker_pipeline_target={"pipeline_parameter_lists": []},
        opts=opts,
    )
    return rule


def _alarm(
    name: str, args: DriftMonitorArgs, minutes: int, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> aws.cloudwatch.MetricAlarm:
    """Notifies the monitoring stack's topic when the last run found drift."""
    dep, drift = args.deployment, args.deployment.model.monitoring.drift
    assert drift is not None
    return aws.cloudwatch.MetricAlarm(
        child(name, "alarm", limit=255),
        alarm_description=f"{dep.name}: captured traffic drifted from {args.dataset} "
        f"(at least {drift.drift_share} of descriptors)",
        namespace=NAMESPACE,
        metric_name="DriftDetected",
        dimensions={"Model": dep.name},
        statistic="Maximum",
        period=max(60, minutes * 60),
        evaluation_periods=1,
        threshold=0.5,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="notBreaching",
        alarm_actions=[args.alarm_topic_arn] if args.alarm_topic_arn is not None else [],
        tags=tags,
        opts=opts,
    )
