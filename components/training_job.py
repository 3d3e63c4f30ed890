"""TrainingJob: a fine-tuning (or from-scratch) run defined in the registry.

aws: a SageMaker Pipeline (spot training step with checkpoints and a max
runtime, then registration into a model package group), or a Kubernetes Job on
a GPU pool. local: a real training run on this machine whose artifact lands in
a content-addressed store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.context import StackContext
from components.gpu_cluster import GpuCluster
from llmops.registry import ModelEntry


@dataclass
class TrainingJobArgs:
    context: StackContext
    model: ModelEntry
    cluster: GpuCluster | None = None


class TrainingJob(pulumi.ComponentResource):
    artifact_uri: pulumi.Output[str]
    artifact_sha256: pulumi.Output[str] | None = None
    metrics: pulumi.Output[dict[str, Any]] | None = None
    pipeline_arn: pulumi.Output[str] | None = None
    # Dataset, commit and hyperparameters that made the artifact (llmops.datasets.lineage.record).
    lineage: pulumi.Output[dict[str, Any]] | None = None

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
        if args.context.settings.target == "aws":
            from components.aws.training import build_training

            build_training(self, name, args)
        else:
            from components.local.training import build_training

            build_training(self, name, args)
        self.register_outputs(
            {
                "artifactUri": self.artifact_uri,
                **({"artifactSha256": self.artifact_sha256} if self.artifact_sha256 else {}),
            }
        )
