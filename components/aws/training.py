"""TrainingJob on AWS: a SageMaker pipeline, or a Kubernetes Job on a GPU pool.

Both run `train/finetune.py` in the pinned Hugging Face training container, read
the dataset the registry pins, checkpoint to S3 and stop at `max_runtime`. The
pipeline trains on spot capacity (if the registry says so) and registers the
result in the model's package group, pending approval. `artifact_uri` is the S3
prefix every run writes its model under (SageMaker: `<job>/output/model.tar.gz`;
Kubernetes: `<job>/`). `llmops ci deploy` starts the pipeline when the training spec
changes (llmops.training_runs); an approved package becomes a registry version by a
commit of `llmops train adopt` (llmops.training_adopt), never by the stack itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws.account import account_id, partition
from components.aws.archive import reproducible_targz, upload_archive
from components.aws.evaluation import ARCHIVE, EvaluationSpec, evaluation_archive
from components.aws.hub_token import SECRET_ENV, token_secret, token_statement
from components.aws.iam import (
    ecr_pull,
    irsa_trust,
    log_statement,
    metrics_statement,
    policy_document,
    s3_read,
    s3_read_write,
    service_trust,
    statement,
)
from components.aws.kubernetes import SERVING_NAMESPACE, k8s_labels
from components.aws.naming import child
from components.aws.placement import GPU_TOLERATION, pool_for
from components.aws.sagemaker_sdk import runtime_framework, serving_image, training_image
from components.aws.storage import encrypted_bucket, kms_key
from components.context import StackContext, short_name
from components.contracts import TrainingJobArgs, TrainingJobOutputs
from llmops.catalog import has_instance_storage, load_catalog
from llmops.datasets.lineage import DatasetLineage, resolve
from llmops.registry import ModelEntry, Training

CODE_DIR = Path(__file__).resolve().parent / "train"
ENTRY_SCRIPT = "finetune.py"
JOB_SA = "training"


def code_archive() -> tuple[bytes, str]:
    """The training code as a reproducible tar.gz and its sha256."""
    return reproducible_targz((path.name, path.read_bytes()) for path in sorted(CODE_DIR.glob("*.py")))


def _hub_environment(ctx: StackContext, model: ModelEntry) -> dict[str, str]:
    """A gated base model: the secret the training script reads the hub token from (its name, not the token)."""
    return {SECRET_ENV: token_secret(ctx)} if model.gated_training_base() else {}


def registry_dataset(root: Path, training: Training) -> DatasetLineage | None:
    """A registry dataset's resolved splits (hashing each file), or None for a dataset given by URI."""
    return resolve(root, training.dataset) if training.dataset.name else None


def hyperparameters(training: Training, lineage: DatasetLineage | None) -> dict[str, Any]:
    """The run's hyperparameters, with a registry dataset's train-split pin: the job checks the
    object it reads against the md5 the registry pins and refuses different content (finetune.py)."""
    pins: dict[str, Any] = {}
    if lineage is not None:
        pins = {"dataset_file": lineage.train_file.rsplit("/", 1)[-1], "dataset_md5": lineage.md5["train"]}
    return {"base_model": training.base_model, **training.hyperparameters, **pins}


def build_training(component: TrainingJobOutputs, name: str, args: TrainingJobArgs) -> None:
    ctx, model = args.context, args.model
    training = model.training
    assert training is not None
    if training.base_model == "scratch":
        raise ValueError(
            f"models/{model.name}.yaml: training from scratch runs on the local target; on AWS set "
            "training.base_model to the Hugging Face repository to fine-tune"
        )
    # Lineage on the resources themselves: which dataset version the artifacts come from.
    tags = {**ctx.tags(model=model.name, team=model.owner), "dataset": training.dataset.ref}
    region = ctx.settings.region

    key = kms_key(child(name, "key"), f"{model.name} training data and artifacts ({ctx.stack})", tags, component)
    artifacts = encrypted_bucket(
        child(name, "artifacts"), kms_key_arn=key.arn, tags=tags, parent=component, region=region
    )
    # Resolved once: the upload's key and the job's md5 pin both come from it.
    lineage = registry_dataset(ctx.root, training)
    dataset_uri = _dataset(component, name, ctx, training, lineage, key, tags)
    params = hyperparameters(training, lineage)
    output_prefix = f"{model.name}/output/"
    artifact_uri = pulumi.Output.concat("s3://", artifacts.bucket, f"/{output_prefix}")
    checkpoint_uri = (
        pulumi.Output.from_input(training.checkpoint)
        if training.checkpoint and training.checkpoint.startswith("s3://")
        else pulumi.Output.concat("s3://", artifacts.bucket, f"/{model.name}/checkpoints/")
    )
    component.artifact_uri = artifact_uri
    if training.platform == "eks":
        uris = (dataset_uri, checkpoint_uri, artifact_uri)
        _kubernetes_job(component, name, args, params, key, artifacts, uris)
    else:
        _sagemaker_pipeline(component, name, args, params, key, artifacts, dataset_uri, artifact_uri, checkpoint_uri)


def _dataset(
    component: TrainingJobOutputs,
    name: str,
    ctx: StackContext,
    training: Training,
    lineage: DatasetLineage | None,
    key: aws.kms.Key,
    tags: dict[str, str],
) -> pulumi.Output[str]:
    """The dataset's S3 URI: as registered, or the repository file uploaded under its pinned hash."""
    if lineage is not None:  # a registry dataset: its train split, uploaded under name/version
        uri, pin = lineage.train_file, f"{lineage.name}/{lineage.version}"
    else:
        uri = training.dataset.uri or ""
        pin = training.dataset.sha256 or training.dataset.version or "unpinned"
    if uri.startswith("s3://"):
        return pulumi.Output.from_input(uri)
    path = (ctx.root / uri).resolve()
    data = encrypted_bucket(
        child(name, "data"), kms_key_arn=key.arn, tags=tags, parent=component, region=ctx.settings.region
    )
    obj = aws.s3.BucketObjectv2(
        f"{name}-dataset",
        bucket=data.id,
        key=f"datasets/{pin}/{path.name}",
        source=pulumi.FileAsset(str(path)),
        server_side_encryption="aws:kms",
        kms_key_id=key.arn,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=component),
    )
    return pulumi.Output.concat("s3://", data.bucket, "/", obj.key.apply(lambda k: k.rsplit("/", 1)[0]), "/")


def _sagemaker_pipeline(
    component: TrainingJobOutputs,
    name: str,
    args: TrainingJobArgs,
    params: dict[str, Any],
    key: aws.kms.Key,
    artifacts: aws.s3.Bucket,
    dataset_uri: pulumi.Output[str],
    artifact_uri: pulumi.Output[str],
    checkpoint_uri: pulumi.Output[str],
) -> None:
    ctx, model = args.context, args.model
    training = model.training
    assert training is not None
    region = ctx.settings.region
    arn = partition(region)
    tags = ctx.tags(model=model.name, team=model.owner)
    opts = pulumi.ResourceOptions(parent=component)
    pipeline_name = short_name("llmops", ctx.physical_scope, model.name, "finetune", max_len=256)
    image = training_image(region, training.instance)
    # A SageMaker serving type to register the model for (a sized or EKS-only model leaves it open).
    serving_instance = model.serving.instance if model.serving.instance.startswith("ml.") else None
    serve_image = serving_image(model.serving.runtime, region, serving_instance or "ml.g5.2xlarge")
    account = account_id(component, args.cluster.data_key_arn if args.cluster is not None else None)

    group = aws.sagemaker.ModelPackageGroup(
        f"{name}-packages",
        model_package_group_name=short_name("llmops", ctx.physical_scope, model.name, max_len=63),
        model_package_group_description=f"Fine-tuned versions of {model.name} ({ctx.stack})",
        tags=tags,
        opts=opts,
    )
    archive, digest = code_archive()
    code = upload_archive(
        f"{name}-code", artifacts.id, key.arn, f"{model.name}/code/{digest[:16]}/sourcedir.tar.gz", archive, tags, opts
    )
    code_uri = pulumi.Output.concat("s3://", artifacts.bucket, "/", code.key)
    evaluation = _evaluation_code(name, ctx, model, artifacts, key, tags, opts)

    log_group = pulumi.Output.concat(f"arn:{arn}:logs:{region}:", account, ":log-group:/aws/sagemaker/TrainingJobs")
    sm = pulumi.Output.concat(f"arn:{arn}:sagemaker:{region}:", account)
    where = _Where(name, region, sm, tags, opts)
    uris = _Uris(dataset_uri, code_uri, artifact_uri, checkpoint_uri)
    hub = _hub_environment(ctx, model)
    known = args.cluster.data_key_arn if args.cluster is not None else None
    reads = [token_statement(ctx, component, known)] if hub else []
    training_role = _training_role(where, ctx, model, image, uris, artifacts, key, group, log_group, reads)
    pipeline_role = _pipeline_role(where, ctx, model, group, training_role)
    roles = (training_role, pipeline_role)
    spec = _PipelineSpec(pipeline_name, image, serve_image, serving_instance, hub, params)
    component.package_group = group.model_package_group_name
    component.pipeline_arn = _pipeline(where, spec, model, training, roles, uris, artifacts, key, group, evaluation)


@dataclass(frozen=True)
class _Where:
    """Where a training pipeline's resources go: logical name prefix, region, SageMaker ARN prefix, tags, parent."""

    name: str
    region: str
    sm: pulumi.Output[str]
    tags: dict[str, str]
    opts: pulumi.ResourceOptions


@dataclass(frozen=True)
class _Uris:
    dataset: pulumi.Output[str]
    code: pulumi.Output[str]
    artifacts: pulumi.Output[str]
    checkpoints: pulumi.Output[str]


def _training_role(
    where: _Where,
    ctx: StackContext,
    model: ModelEntry,
    image: str,
    uris: _Uris,
    artifacts: aws.s3.Bucket,
    key: aws.kms.Key,
    group: aws.sagemaker.ModelPackageGroup,
    log_group: pulumi.Output[str],
    extra: list[dict[str, Any]],
) -> aws.iam.Role:
    """The role the training and evaluation jobs run as: the data, code, checkpoints and champion they
    read; `extra`: the hub token secret for a gated base model."""
    training_role = aws.iam.Role(
        child(where.name, "train-role", limit=64),
        assume_role_policy=service_trust("sagemaker.amazonaws.com"),
        description=f"SageMaker training jobs of {model.name} ({ctx.stack})",
        tags=where.tags,
        opts=where.opts,
    )
    region = where.region
    aws.iam.RolePolicy(
        f"{where.name}-train-policy",
        role=training_role.id,
        policy=policy_document(
            [
                *ecr_pull(region, [image]),
                *s3_read("Dataset", uris.dataset, region),
                *s3_read("Code", uris.code, region),
                *s3_read_write("Checkpoints", uris.checkpoints, region),
                statement(
                    "Artifacts",
                    ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    [pulumi.Output.concat(artifacts.arn, f"/{model.name}/*")],
                ),
                statement("ArtifactsList", ["s3:ListBucket", "s3:GetBucketLocation"], [artifacts.arn]),
                statement("Key", ["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:CreateGrant"], [key.arn]),
                # The evaluation step reads the approved champion's report (its package's statistics).
                statement("ChampionList", ["sagemaker:ListModelPackages"], ["*"]),
                statement(
                    "ChampionDescribe",
                    ["sagemaker:DescribeModelPackage"],
                    [pulumi.Output.concat(where.sm, ":model-package/", group.model_package_group_name, "/*")],
                ),
                log_statement(log_group),
                metrics_statement("/aws/sagemaker/TrainingJobs"),
                *extra,
            ]
        ),
        opts=where.opts,
    )
    return training_role


def _pipeline_role(
    where: _Where, ctx: StackContext, model: ModelEntry, group: aws.sagemaker.ModelPackageGroup, role: aws.iam.Role
) -> aws.iam.Role:
    """The role the pipeline runs as: it starts the jobs, registers the model and passes the training role."""
    sm = where.sm
    pipeline_role = aws.iam.Role(
        child(where.name, "pipeline-role", limit=64),
        assume_role_policy=service_trust("sagemaker.amazonaws.com"),
        description=f"SageMaker pipeline of {model.name} ({ctx.stack})",
        tags=where.tags,
        opts=where.opts,
    )
    job = ["sagemaker:AddTags"]
    aws.iam.RolePolicy(
        f"{where.name}-pipeline-policy",
        role=pipeline_role.id,
        policy=policy_document(
            [
                statement(
                    "TrainingJobs",
                    ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob", *job],
                    [pulumi.Output.concat(sm, ":training-job/pipelines-*")],
                ),
                statement(
                    "Register",
                    ["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", *job],
                    [group.arn, pulumi.Output.concat(sm, ":model-package/", group.model_package_group_name, "/*")],
                ),
                statement(
                    "EvaluationJobs",
                    [
                        "sagemaker:CreateProcessingJob",
                        "sagemaker:DescribeProcessingJob",
                        "sagemaker:StopProcessingJob",
                        *job,
                    ],
                    [pulumi.Output.concat(sm, ":processing-job/pipelines-*")],
                ),
                statement(
                    "PassTrainingRole",
                    ["iam:PassRole"],
                    [role.arn],
                    {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
            ]
        ),
        opts=where.opts,
    )
    return pipeline_role


@dataclass(frozen=True)
class _PipelineSpec:
    name: str  # the pipeline's physical name
    image: str  # the training image
    serve_image: str  # the image the registered model is served with
    serving_instance: str | None  # the SageMaker type it is registered for (None: left open)
    environment: dict[str, str]  # the training job's: HF_TOKEN_SECRET for a gated base model
    hyperparameters: dict[str, Any]  # the run's, with the dataset's pin (hyperparameters())


def _pipeline(
    where: _Where,
    spec: _PipelineSpec,
    model: ModelEntry,
    training: Training,
    roles: tuple[aws.iam.Role, aws.iam.Role],
    uris: _Uris,
    artifacts: aws.s3.Bucket,
    key: aws.kms.Key,
    group: aws.sagemaker.ModelPackageGroup,
    evaluation: tuple[pulumi.Output[str], pulumi.Output[str]] | None,
) -> pulumi.Output[str]:
    """The SageMaker pipeline (train, evaluate, gate, register) and its ARN."""
    training_role, pipeline_role = roles
    framework, _ = runtime_framework(model.serving.runtime)
    serving_env = (
        {"HF_MODEL_ID": "/opt/ml/model"} if framework == "huggingface-llm" else {"OPTION_MODEL_ID": "/opt/ml/model"}
    )
    volume_key = None if has_instance_storage(training.instance) else key.arn
    definition = pulumi.Output.all(
        bucket=artifacts.bucket,
        role=training_role.arn,
        key=key.arn,
        volume_key=volume_key,
        dataset=uris.dataset,
        code=uris.code,
        output=uris.artifacts,
        checkpoint=uris.checkpoints,
        group=group.model_package_group_name,
        evaluation_code=evaluation[0] if evaluation else None,
        evaluation_output=evaluation[1] if evaluation else None,
    ).apply(
        lambda o: _definition(
            o,
            spec.name,
            where.region,
            spec.image,
            training,
            model,
            spec.serve_image,
            spec.serving_instance,
            serving_env,
            spec.environment,
            spec.hyperparameters,
        )
    )
    pipeline = aws.sagemaker.Pipeline(
        f"{where.name}-pipeline",
        pipeline_name=spec.name,
        pipeline_display_name=spec.name,
        pipeline_description=f"Fine-tune {model.name} on {training.dataset.ref} and register it",
        role_arn=pipeline_role.arn,
        pipeline_definition=definition,
        parallelism_configuration={"max_parallel_execution_steps": 1},
        tags=where.tags,
        opts=where.opts,
    )
    return pipeline.arn


def _definition(
    o: dict[str, Any],
    pipeline_name: str,
    region: str,
    image: str,
    training: Training,
    model: ModelEntry,
    serve_image: str,
    serving_instance: str | None,
    serving_env: dict[str, str],
    environment: dict[str, str],
    hyperparameters: dict[str, Any],
) -> str:
    from components.aws.sagemaker_sdk import training_pipeline_definition

    return training_pipeline_definition(
        pipeline_name=pipeline_name,
        region=region,
        bucket=o["bucket"],
        role_arn=o["role"],
        image=image,
        instance_type=training.instance,
        instance_count=training.instance_count,
        spot=training.spot,
        max_runtime=training.max_runtime,
        checkpoint_uri=o["checkpoint"],
        output_uri=o["output"],
        kms_key_arn=o["key"],
        volume_kms_key_arn=o["volume_key"],
        dataset_uri=o["dataset"],
        code_uri=o["code"],
        entry_script=ENTRY_SCRIPT,
        hyperparameters=hyperparameters,
        package_group=o["group"],
        serving_image=serve_image,
        serving_instance=serving_instance,
        serving_environment=serving_env,
        evaluation=None
        if o.get("evaluation_code") is None
        else EvaluationSpec(
            gates=list(model.compliance.evaluation),
            code_uri=o["evaluation_code"],
            output_uri=o["evaluation_output"],
            image=image,
            instance_type=training.instance,
            lm_eval_version=version("lm_eval"),
            package_group=o["group"],
        ),
        environment=environment,
    )


def _evaluation_code(
    name: str,
    ctx: StackContext,
    model: ModelEntry,
    artifacts: aws.s3.Bucket,
    key: aws.kms.Key,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> tuple[pulumi.Output[str], pulumi.Output[str]] | None:
    """The evaluation step's code archive (entry script + the gated suites), uploaded; and its report prefix."""
    suites = [g.suite for g in model.compliance.evaluation]
    if not suites:
        return None
    archive, digest = evaluation_archive(ctx.models_dir, suites)
    prefix = f"{model.name}/evaluation-code/{digest[:16]}/"
    upload_archive(f"{name}-evaluation-code", artifacts.id, key.arn, f"{prefix}{ARCHIVE}", archive, tags, opts)
    return (
        pulumi.Output.concat("s3://", artifacts.bucket, "/", prefix),
        pulumi.Output.concat("s3://", artifacts.bucket, f"/{model.name}/evaluation/"),
    )


def _kubernetes_job(
    component: TrainingJobOutputs,
    name: str,
    args: TrainingJobArgs,
    params: dict[str, Any],
    key: aws.kms.Key,
    artifacts: aws.s3.Bucket,
    uris: tuple[pulumi.Output[str], pulumi.Output[str], pulumi.Output[str]],
) -> None:
    """EKS: the Job's IAM role (IRSA) over the stack's data, then the Job's Kubernetes objects.
    `uris`: dataset, checkpoints, artifacts."""
    ctx, model, cluster = args.context, args.model, args.cluster
    if cluster is None or cluster.kube_provider is None or cluster.oidc_provider_arn is None:
        raise ValueError(f"{model.name}: a training Job on EKS needs the stack's GpuCluster")
    assert cluster.oidc_provider_url is not None
    tags = ctx.tags(model=model.name, team=model.owner)
    data = (uris[0], uris[1])
    trust = irsa_trust(cluster.oidc_provider_arn, cluster.oidc_provider_url, SERVING_NAMESPACE, job_account(model))
    hub = _hub_environment(ctx, model)
    reads = [token_statement(ctx, component, cluster.data_key_arn)] if hub else []
    role = _job_role(component, name, trust, model, data, artifacts, key, tags, ctx.settings.region, reads)
    annotations = {"eks.amazonaws.com/role-arn": role.arn}
    kubernetes_job(component, name, args, params, uris, annotations, hub)


def job_account(model: ModelEntry) -> str:
    """The training Job's service account (the name an IRSA trust names)."""
    return short_name(model.name, JOB_SA)


def kubernetes_job(
    component: TrainingJobOutputs,
    name: str,
    args: TrainingJobArgs,
    params: dict[str, Any],
    uris: tuple[pulumi.Input[str], pulumi.Input[str], pulumi.Input[str]],
    annotations: dict[str, pulumi.Input[str]],
    environment: dict[str, str],
) -> k8s.batch.v1.Job:
    """The training Job's Kubernetes objects, on EKS and on the kube target alike: its service
    account, the training code as a ConfigMap, and the Job on the training pool's nodes.
    `params`: the run's hyperparameters (hyperparameters()); `uris`: dataset, checkpoints,
    artifacts; `annotations`: the service account's (EKS: its role)."""
    ctx, model, cluster = args.context, args.model, args.cluster
    training = model.training
    assert training is not None and cluster is not None and cluster.kube_provider is not None
    instance = load_catalog().get(training.instance)
    gpus = max(1, instance.gpus)
    pool = (
        ctx.settings.pool(training.pool)
        if training.pool
        else pool_for(ctx, training.instance.removeprefix("ml."), gpus, instance.gpu_memory_gib, what=model.name)
    )
    namespace: pulumi.Input[str] = cluster.serving_namespace or SERVING_NAMESPACE
    k8s_opts = pulumi.ResourceOptions(parent=component, provider=cluster.kube_provider)
    labels = k8s_labels(
        ctx, model=model.name, team=model.owner, extra={"app.kubernetes.io/name": f"{model.name}-training"}
    )
    metadata = {"name": job_account(model), "namespace": namespace, "labels": labels, "annotations": annotations}
    sa = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=metadata, opts=k8s_opts)
    code = k8s.core.v1.ConfigMap(
        f"{name}-code",
        metadata={"namespace": namespace, "labels": labels},
        data={p.name: p.read_text() for p in sorted(CODE_DIR.glob("*.py"))},
        opts=k8s_opts,
    )
    memory = max(8, int(instance.memory_gib * 0.8))
    container = _train_container(ctx.settings.region, training, params, gpus, memory, uris, environment)
    return k8s.batch.v1.Job(
        f"{name}-job",
        metadata={"namespace": namespace, "labels": labels},
        spec={
            "backoffLimit": 2,
            "activeDeadlineSeconds": training.max_runtime,
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": _job_template(labels, sa.metadata.name, pool.selector, container, code.metadata.name),
        },
        opts=k8s_opts,
    )


def _job_template(
    labels: dict[str, str],
    service_account: pulumi.Output[str],
    node_selector: dict[str, str],
    container: dict[str, Any],
    code_config_map: pulumi.Output[str],
) -> dict[str, Any]:
    """The Job's pod: on the GPU pool, with the training code mounted and a shared-memory volume."""
    return {
        "metadata": {"labels": labels},
        "spec": {
            "serviceAccountName": service_account,
            "restartPolicy": "Never",
            "nodeSelector": node_selector,
            "tolerations": [GPU_TOLERATION],
            "containers": [container],
            "volumes": [
                {"name": "code", "configMap": {"name": code_config_map}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
            ],
        },
    }


def _job_role(
    component: TrainingJobOutputs,
    name: str,
    trust: pulumi.Output[str],
    model: ModelEntry,
    data: tuple[pulumi.Output[str], pulumi.Output[str]],
    artifacts: aws.s3.Bucket,
    key: aws.kms.Key,
    tags: dict[str, str],
    region: str,
    extra: list[dict[str, Any]],
) -> aws.iam.Role:
    """The IAM role the Job's service account assumes (IRSA): dataset, checkpoints, artifacts, the key;
    `extra`: the hub token secret for a gated base model."""
    role = aws.iam.Role(
        child(name, "job-role", limit=64),
        assume_role_policy=trust,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=component),
    )
    aws.iam.RolePolicy(
        f"{name}-job-policy",
        role=role.id,
        policy=policy_document(
            [
                *s3_read("Dataset", data[0], region),
                *s3_read_write("Checkpoints", data[1], region),
                statement(
                    "Artifacts",
                    ["s3:GetObject", "s3:PutObject"],
                    [pulumi.Output.concat(artifacts.arn, f"/{model.name}/*")],
                ),
                statement("ArtifactsList", ["s3:ListBucket"], [artifacts.arn]),
                statement("Key", ["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"], [key.arn]),
                *extra,
            ]
        ),
        opts=pulumi.ResourceOptions(parent=component),
    )
    return role


def _train_container(
    region: str,
    training: Training,
    hyperparameters: dict[str, Any],
    gpus: int,
    memory_gib: int,
    uris: tuple[pulumi.Input[str], pulumi.Input[str], pulumi.Input[str]],
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Job's training container: the SageMaker training image, run as SageMaker would run it.
    `uris`: dataset, checkpoints, artifacts; `environment`: HF_TOKEN_SECRET for a gated base."""
    dataset_uri, checkpoint_uri, artifact_uri = uris
    hp_args = [item for k, v in sorted(hyperparameters.items()) for item in (f"--{k}", str(v))]
    run_output = pulumi.Output.concat(artifact_uri, "$(JOB_NAME)/")
    return {
        "name": "train",
        # The same Hugging Face training container as SageMaker runs (looked up by its ml. type).
        "image": training_image(region, "ml." + training.instance.removeprefix("ml.")),
        "command": ["python", f"/opt/ml/code/{ENTRY_SCRIPT}"],
        "args": [*hp_args, "--dataset_uri", dataset_uri, "--output_uri", run_output],
        "env": [
            {
                "name": "JOB_NAME",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
            },
            {"name": "SM_MODEL_DIR", "value": "/opt/ml/model"},
            {"name": "SM_CHANNEL_TRAIN", "value": "/opt/ml/input/data/train"},
            {"name": "CHECKPOINT_URI", "value": checkpoint_uri},
            *[{"name": k, "value": v} for k, v in (environment or {}).items()],
        ],
        "resources": {
            "requests": {"nvidia.com/gpu": str(gpus), "memory": f"{memory_gib}Gi"},
            "limits": {"nvidia.com/gpu": str(gpus), "memory": f"{memory_gib}Gi"},
        },
        "volumeMounts": [
            {"name": "code", "mountPath": "/opt/ml/code"},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }
