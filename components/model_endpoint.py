"""ModelEndpoint: a model served behind one URL, with variants and autoscaling.

aws: a SageMaker endpoint (versioned Model + EndpointConfiguration, blue/green
updates, autoscaling) or an EKS Deployment/Service/HPA/PDB per variant.
local: replica processes behind one front port with an OpenAI-compatible API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.context import StackContext
from components.gpu_cluster import GpuCluster
from components.training_job import TrainingJob
from llmops.evaluation.records import evaluation_records
from llmops.registry import Deployment
from llmops.sizing import SizingResult


@dataclass
class ModelEndpointArgs:
    context: StackContext
    deployment: Deployment
    sizing: SizingResult
    cluster: GpuCluster | None = None
    training: TrainingJob | None = None
    # Evaluations that must pass before the endpoint's new replicas start (local target).
    evaluations: list[Any] = field(default_factory=list)


def endpoint_facts(args: ModelEndpointArgs, platform: str) -> dict[str, Any]:
    """The component's inputs as the engine (and so every policy) sees them.

    Policies judge the registry's intent here (pinning, evaluation gate, licence,
    GPUs, replicas) on both targets, beside the cloud resources' own properties.
    """
    dep, model, sizing = args.deployment, args.deployment.model, args.sizing
    return {
        "model": model.name,
        "team": model.owner,
        "environment": dep.environment,
        "production": args.context.settings.production,
        "target": args.context.settings.target,
        "platform": platform,
        "instanceType": sizing.instance_type,
        "gpusPerReplica": sizing.tensor_parallel,
        "gpusPerInstance": sizing.gpus,
        "minReplicas": dep.min_replicas,
        "maxReplicas": dep.max_replicas,
        "variants": [
            {
                "version": v.version,
                "weight": v.weight,
                "pinned": dep.variant_source(v).pinned,
                "source": dep.variant_source(v).uri,
            }
            for v in dep.variants
        ],
        "revisionPinned": all(dep.variant_source(v).pinned for v in dep.variants),
        "licence": model.compliance.licence,
        "evaluationGates": [g.model_dump() for g in model.compliance.evaluation],
        # Traceable records of the evaluations each served version passed (llmops.evaluation.records).
        "evaluationRecords": evaluation_records(model.name, args.context.root, [v.version for v in dep.variants]),
    }


class ModelEndpoint(pulumi.ComponentResource):
    url: pulumi.Output[str]
    endpoint_name: pulumi.Output[str]
    # Prometheus scrape targets (host:port) for local endpoints and in-cluster services.
    metrics_targets: pulumi.Output[list[str]] | None = None
    details: pulumi.Output[dict[str, Any]] | None = None
    # What the endpoint was sized to (GPUs per instance scale its GPU memory alarm).
    sizing: SizingResult | None = None

    def __init__(self, name: str, args: ModelEndpointArgs, opts: pulumi.ResourceOptions | None = None):
        platform = args.deployment.platform or args.context.settings.default_endpoint_platform
        super().__init__("llmops:model_endpoint:ModelEndpoint", name, endpoint_facts(args, platform), opts)
        self.sizing = args.sizing
        if args.context.settings.target == "local":
            from components.local.endpoint import build_endpoint

            build_endpoint(self, name, args)
        elif platform == "eks":
            from components.aws.eks_endpoint import build_eks_endpoint

            build_eks_endpoint(self, name, args)
        else:
            from components.aws.sagemaker_endpoint import build_sagemaker_endpoint

            build_sagemaker_endpoint(self, name, args)
        self.register_outputs({"url": self.url, "endpointName": self.endpoint_name})
