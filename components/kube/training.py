"""The kube children of a TrainingJob: the EKS training Job, built by the EKS builder, on kwok's nodes.

The Job's Kubernetes objects (service account, code ConfigMap, Job on the training pool) are
exactly those `components.aws.training.kubernetes_job` makes for EKS; the API server validates
them and kwok "runs" the Job's pod on a node of the pool. What needs an AWS account is left out
and said so: the IAM role (IRSA) and the S3 data, so the container's URIs name the dataset's
registry reference and the stack's state folder, which nothing reads (kwok runs no container).
A SageMaker pipeline (`training.platform: sagemaker`) has no Kubernetes objects: the platform
creates no TrainingJob for it on this target.
"""

from __future__ import annotations

import pulumi

from components.aws.training import hyperparameters, kubernetes_job, registry_dataset
from components.contracts import TrainingJobArgs, TrainingJobOutputs


def build_kube_training(component: TrainingJobOutputs, name: str, args: TrainingJobArgs) -> None:
    ctx, model = args.context, args.model
    training = model.training
    assert training is not None
    assert training.platform == "eks", "the platform creates a kube TrainingJob for an EKS Job only"
    if model.gated_training_base():
        raise ValueError(
            f"models/{model.name}.yaml: training.base_model is gated; its hub token comes from AWS Secrets "
            "Manager, which the kube target has not: train it on an aws stack"
        )
    runs = f"file://{(ctx.root / ctx.settings.local.state_dir).resolve()}/training/{model.name}"
    uris = (f"registry://{training.dataset.ref}", f"{runs}/checkpoints/", f"{runs}/output/")
    params = hyperparameters(training, registry_dataset(ctx.root, training))
    kubernetes_job(component, name, args, params, uris, annotations={}, environment={})
    component.artifact_uri = pulumi.Output.from_input(f"{runs}/output/")
    pulumi.log.info(
        f"kube target: {model.name}'s training Job is the EKS one without its IAM role and S3 data "
        "(no AWS account); kwok runs no container",
        component,
    )
