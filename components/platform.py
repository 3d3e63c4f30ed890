"""Platform: the composition root of one stack.

Reads the stack's settings and the registry, sizes every model deployed to the
stack's environment, and creates one GpuCluster, a TrainingJob per model with
a training section, a ModelEndpoint per deployed model and one MonitoringStack.
The same graph serves both targets; only the components' children differ.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import pulumi

from components.context import StackContext
from components.drift_monitor import DriftMonitor, DriftMonitorArgs
from components.gpu_cluster import GpuCluster, GpuClusterArgs
from components.model_endpoint import ModelEndpoint, ModelEndpointArgs
from components.monitoring import MonitoringStack, MonitoringStackArgs
from components.training_job import TrainingJob, TrainingJobArgs
from llmops.cost import stack_cost
from llmops.registry import Registry
from llmops.sizing import SizingResult, size_for_stack

GC_THRESHOLDS = (20_000, 50, 1000)


@dataclass
class PlatformArgs:
    context: StackContext
    registry: Registry


class Platform(pulumi.ComponentResource):
    endpoints: dict[str, ModelEndpoint]
    training_jobs: dict[str, TrainingJob]
    sizing: dict[str, SizingResult]

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None):
        # Every resource is a web of outputs and futures that lives until the program ends. With
        # CPython's default thresholds the collector rescans that growing heap so often that the
        # cost per model grows with the registry (benchmarks/bench_mocks.py): collect young objects
        # in larger batches and the whole heap almost never.
        gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])
        ctx = args.context
        settings = ctx.settings
        deployments = args.registry.deployed_to(settings.environment)

        # EKS endpoints are sized onto the stack's GPU pools, everything within its allowed types.
        self.sizing = {d.name: size_for_stack(d, settings, ctx.models_dir) for d in deployments}
        cost = stack_cost(ctx.stack, settings, args.registry, ctx.models_dir)
        # The stack-level facts policies judge (budget, quotas), as the component's inputs.
        facts = {
            "stack": ctx.stack,
            "environment": settings.environment,
            "production": settings.production,
            "target": settings.target,
            "budgetMonthlyUsd": settings.budget_monthly_usd,
            "monthlyCostUsd": round(cost.total_monthly_usd, 2),
            "costTop": [line.to_dict() for line in cost.top(5)],
            "quotas": settings.quotas.model_dump(by_alias=True),
            "allowedInstanceTypes": settings.policy.allowed_instance_types,
            "licenceAllowlist": settings.policy.licence_allowlist,
        }
        super().__init__("llmops:platform:Platform", name, facts, opts)
        child = pulumi.ResourceOptions(parent=self)
        demands = {
            dep.name: {
                "gpus": self.sizing[dep.name].tensor_parallel,
                "gpu_memory_gib": self.sizing[dep.name].total_gib,
                "cpu_fallback": dep.model.serving.cpu_fallback,
            }
            for dep in deployments
        }
        self.cluster = GpuCluster(f"{name}-cluster", GpuClusterArgs(context=ctx, demands=demands), child)

        self.training_jobs = {}
        for dep in deployments:
            if dep.model.training is not None:
                self.training_jobs[dep.name] = TrainingJob(
                    f"{name}-{dep.name}-training",
                    TrainingJobArgs(context=ctx, model=dep.model, cluster=self.cluster),
                    child,
                )

        self.endpoints = {
            dep.name: ModelEndpoint(
                f"{name}-{dep.name}",
                ModelEndpointArgs(
                    context=ctx,
                    deployment=dep,
                    sizing=self.sizing[dep.name],
                    cluster=self.cluster,
                    training=self.training_jobs.get(dep.name),
                ),
                child,
            )
            for dep in deployments
        }
        self.monitoring = MonitoringStack(
            f"{name}-monitoring",
            MonitoringStackArgs(
                context=ctx,
                endpoints=self.endpoints,
                deployments={d.name: d for d in deployments},
                cluster=self.cluster,
            ),
            child,
        )

        # A scheduled drift monitor per model whose registry entry asks for one.
        self.drift_monitors = {
            dep.name: DriftMonitor(
                f"{name}-{dep.name}-drift",
                DriftMonitorArgs(
                    context=ctx,
                    deployment=dep,
                    dataset=dataset,
                    cluster=self.cluster,
                    alarm_topic_arn=self.monitoring.alarm_topic_arn,
                ),
                pulumi.ResourceOptions(parent=self, depends_on=[self.endpoints[dep.name]]),
            )
            for dep in deployments
            if (dataset := dep.model.monitoring.drift_dataset(dep.model)) is not None
        }

        endpoint_outputs: dict[str, Any] = {
            model: pulumi.Output.all(url=ep.url, name=ep.endpoint_name).apply(
                lambda o, s=self.sizing[model]: {
                    "url": o["url"],
                    "endpointName": o["name"],
                    "instanceType": s.instance_type,
                    "tensorParallel": s.tensor_parallel,
                }
            )
            for model, ep in self.endpoints.items()
        }
        self.outputs: dict[str, Any] = {
            "environment": settings.environment,
            "endpoints": endpoint_outputs,
            "artifacts": {
                m: {"uri": job.artifact_uri, "sha256": job.artifact_sha256} for m, job in self.training_jobs.items()
            },
        }
        # dataset -> artifact -> endpoint versions, per trained model (`llmops lineage MODEL --stack S`).
        variants = {
            d.name: [{"name": d.name, "version": v.version, "weight": v.weight} for v in d.variants]
            for d in deployments
        }
        self.outputs["lineage"] = {
            m: pulumi.Output.all(made=job.lineage, sha=job.artifact_sha256, uri=job.artifact_uri).apply(
                lambda o, m=m: {
                    **(o["made"] or {}),
                    "artifactSha256": o["sha"],
                    "artifactUri": o["uri"],
                    "endpoint": variants[m],
                }
            )
            for m, job in self.training_jobs.items()
            if job.lineage is not None
        }
        if self.monitoring.prometheus_url is not None:
            self.outputs["prometheusUrl"] = self.monitoring.prometheus_url
        self.register_outputs(self.outputs)
