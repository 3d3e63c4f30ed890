"""ModelEndpoint: a model served behind one URL, with variants and autoscaling.

aws: a SageMaker endpoint (versioned Model + EndpointConfiguration, blue/green
updates, autoscaling) or an EKS Deployment/Service/HPA/PDB per variant.
local: replica processes behind one front port with an OpenAI-compatible API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.context import StackContext
from components.gpu_cluster import GpuCluster
from components.training_job import TrainingJob
from llmops.registry import Deployment
from llmops.sizing import SizingResult


@dataclass
class ModelEndpointArgs:
    context: StackContext
    deployment: Deployment
    sizing: SizingResult
    cluster: GpuCluster | None = None
    training: TrainingJob | None = None


class ModelEndpoint(pulumi.ComponentResource):
    url: pulumi.Output[str]
    endpoint_name: pulumi.Output[str]
    # Prometheus scrape targets (host:port) for local endpoints and in-cluster services.
    metrics_targets: pulumi.Output[list[str]] | None = None
    details: pulumi.Output[dict[str, Any]] | None = None

    def __init__(self, name: str, args: ModelEndpointArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:model_endpoint:ModelEndpoint", name, None, opts)
        platform = args.deployment.platform or args.context.settings.default_endpoint_platform
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
