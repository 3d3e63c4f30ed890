"""ModelEndpoint: a model served behind one URL, with variants and autoscaling.

aws: a SageMaker endpoint (versioned Model + EndpointConfiguration, blue/green
updates, autoscaling) or an EKS Deployment/Service/HPA/PDB per variant.
kube: the EKS builders, on the kube target's API server, answered by a local replica per Ready pod.
local: replica processes behind one front port with an OpenAI-compatible API.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.aws.eks_endpoint import build_eks_endpoint
from components.aws.sagemaker_endpoint import build_sagemaker_endpoint
from components.contracts import ModelEndpointArgs, ModelEndpointOutputs
from components.kube.rollout import build_pods_scheduled, skip_await
from components.kube.serving import build_kube_serving
from components.local.endpoint import build_endpoint
from llmops.evaluation.records import evaluation_records

__all__ = ["ModelEndpoint", "ModelEndpointArgs", "endpoint_facts"]


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


class ModelEndpoint(ModelEndpointOutputs):
    def __init__(self, name: str, args: ModelEndpointArgs, opts: pulumi.ResourceOptions | None = None):
        platform = args.deployment.platform or args.context.settings.default_endpoint_platform
        kube = args.context.settings.target == "kube"
        if kube:  # the Deployments' readiness is PodsScheduled's to judge, in the registry's terms
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(transforms=[skip_await]))
        super().__init__("llmops:model_endpoint:ModelEndpoint", name, endpoint_facts(args, platform), opts)
        self.sizing = args.sizing
        if args.context.settings.target == "local":
            build_endpoint(self, name, args)
        elif platform == "eks" or kube:
            build_eks_endpoint(self, name, args)
            if kube:
                build_kube_serving(self, name, args, after=build_pods_scheduled(self, name, args))
        else:
            build_sagemaker_endpoint(self, name, args)
        self.register_outputs({"url": self.url, "endpointName": self.endpoint_name})
