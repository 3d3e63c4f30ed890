"""TrainingJob: a fine-tuning (or from-scratch) run defined in the registry.

aws: a SageMaker Pipeline (spot training step with checkpoints and a max
runtime, then registration into a model package group), or a Kubernetes Job on
a GPU pool. kube: that Kubernetes Job, by the same builder, on kwok's nodes.
local: a real training run on this machine whose artifact lands in a
content-addressed store.
"""

from __future__ import annotations

import pulumi

from components.aws.training import build_training as build_aws_training
from components.contracts import TrainingJobArgs, TrainingJobOutputs
from components.kube.training import build_kube_training
from components.local.training import build_training as build_local_training

__all__ = ["TrainingJob", "TrainingJobArgs"]


class TrainingJob(TrainingJobOutputs):
    def __init__(self, name: str, args: TrainingJobArgs, opts: pulumi.ResourceOptions | None = None):
        training = args.model.training
        assert training is not None, "TrainingJob needs a model with a training section"
        facts = {
            "model": args.model.name,
            "team": args.model.owner,
            "environment": args.context.environment,
            "production": args.context.settings.production,
            "target": args.context.settings.target,
            "spot": training.spot,
            "checkpoint": training.checkpoint,
            "maxRuntime": training.max_runtime,
            "instanceType": training.instance,
        }
        super().__init__("llmops:training_job:TrainingJob", name, facts, opts)
        builders = {"aws": build_aws_training, "kube": build_kube_training, "local": build_local_training}
        builders[args.context.settings.target](self, name, args)
        self.register_outputs(
            {
                "artifactUri": self.artifact_uri,
                **({"artifactSha256": self.artifact_sha256} if self.artifact_sha256 else {}),
            }
        )
