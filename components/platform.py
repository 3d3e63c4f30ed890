"""Platform: the composition root of one stack.

Reads the stack's settings and the registry, sizes every model deployed to the
stack's environment, and creates one GpuCluster, a TrainingJob per model with
a training section, a ModelEndpoint per deployed model, one MonitoringStack and
a DriftMonitor per model whose registry entry asks for one.
The same graph serves every target; only the components' children differ.

Split over stacks (`llmops.layout`), the environment's platform stack builds the
GpuCluster and the shared monitoring, and each model stack the rest for its model,
reading the cluster through a `ClusterReference`. Every stack's root is this component,
named `llmops`, so a resource's URN differs between the layouts only in its stack.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import pulumi

from components.aws.placement import check_node_selectors
from components.cluster_reference import PLATFORM_OUTPUT, ClusterReference, platform_outputs
from components.context import StackContext
from components.contracts import GpuClusterOutputs
from components.drift_monitor import DriftMonitor, DriftMonitorArgs
from components.evaluation import Evaluation, EvaluationArgs
from components.gpu_cluster import GpuCluster, GpuClusterArgs
from components.kube.serving import STAND_IN_MODEL, StandInWeights
from components.model_endpoint import ModelEndpoint, ModelEndpointArgs
from components.monitoring import MonitoringStack, MonitoringStackArgs
from components.training_job import TrainingJob, TrainingJobArgs
from llmops.cost import stack_cost
from llmops.footprint import Footprint, stack_footprint
from llmops.local.packages import OUTPUT as TRAINING_PACKAGES
from llmops.registry import Deployment, Registry, Training
from llmops.settings import StackSettings
from llmops.sizing import SizingResult, size_for_stack, stack_deployments
from llmops.training_runs import OUTPUT as TRAINING_RUNS
from llmops.training_runs import spec_digest

GC_THRESHOLDS = (20_000, 50, 1000)


@dataclass
class PlatformArgs:
    context: StackContext
    registry: Registry


class Platform(pulumi.ComponentResource):
    endpoints: dict[str, ModelEndpoint]
    training_jobs: dict[str, TrainingJob]
    drift_monitors: dict[str, DriftMonitor]
    sizing: dict[str, SizingResult]
    training_specs: dict[str, str]  # model -> its training spec's digest (llmops.training_runs)

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None):
        # Every resource is a web of outputs and futures that lives until the program ends. With
        # CPython's default thresholds the collector rescans that growing heap so often that the
        # cost per model grows with the registry (benchmarks/bench_mocks.py): collect young objects
        # in larger batches and the whole heap almost never.
        gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])
        ctx = args.context
        environment, deployments = _deployments(ctx, args.registry)
        # EKS endpoints are sized onto the stack's GPU pools, everything within its allowed types.
        self.sizing = {d.name: size_for_stack(d, ctx.settings, ctx.models_dir) for d in environment}
        super().__init__("llmops:platform:Platform", name, _facts(ctx, args.registry), _placement_checked(ctx, opts))
        child = pulumi.ResourceOptions(parent=self)
        # A model's top-level resources: in a model stack, also where a state move left them.
        moved = pulumi.ResourceOptions(parent=self, aliases=ctx.moved_aliases)
        self.footprint = stack_footprint(ctx.settings, environment)
        self.cluster = self._cluster(name, ctx, self._demands(environment), deployments, child)
        self.training_jobs = {
            dep.name: TrainingJob(
                f"{name}-{dep.name}-training",
                TrainingJobArgs(context=ctx, model=dep.model, cluster=self.cluster),
                moved,
            )
            for dep in deployments
            if dep.model.training is not None and _trains_here(ctx, dep.model.training)
        }
        self.training_specs = {m: spec_digest(args.registry.models[m]) for m in self.training_jobs}
        stand_in = self._stand_in(name, ctx, args.registry, child)
        self.evaluations = self._evaluations(name, ctx, deployments, moved)
        self.endpoints = {
            dep.name: ModelEndpoint(
                f"{name}-{dep.name}",
                ModelEndpointArgs(
                    ctx,
                    dep,
                    self.sizing[dep.name],
                    self.cluster,
                    # kube: the stand-in's weights answer, whatever the model trains (kwok runs no Job).
                    stand_in or self.training_jobs.get(dep.name),
                    [self.evaluations[dep.name]] if dep.name in self.evaluations else [],
                ),
                moved,
            )
            for dep in deployments
        }
        lineage = self._lineage(deployments)
        self.monitoring = self._monitoring(name, ctx, deployments, lineage, child)
        self.drift_monitors = self._drift_monitors(name, ctx, deployments)
        self.outputs = self._stack_outputs(ctx)
        self.outputs["lineage"] = lineage
        if ctx.builds_platform:
            self.outputs[PLATFORM_OUTPUT] = platform_outputs(self.cluster, self.monitoring)
        self.register_outputs(self.outputs)

    def _demands(self, environment: list[Deployment]) -> dict[str, dict[str, Any]]:
        """GPU memory and count each deployment of the environment needs (the cluster is built for all)."""
        return {
            dep.name: {
                "gpus": self.sizing[dep.name].tensor_parallel,
                "gpu_memory_gib": self.sizing[dep.name].total_gib,
                "cpu_fallback": dep.model.serving.cpu_fallback,
            }
            for dep in environment
        }

    def _cluster(
        self,
        name: str,
        ctx: StackContext,
        demands: dict[str, dict[str, Any]],
        deployments: list[Deployment],
        child: pulumi.ResourceOptions,
    ) -> GpuClusterOutputs:
        """The stack's GpuCluster; a model stack's reference to its platform stack's."""
        if ctx.part != "model":
            return GpuCluster(
                f"{name}-cluster", GpuClusterArgs(context=ctx, demands=demands, footprint=self.footprint), child
            )
        own: Footprint = stack_footprint(ctx.settings, deployments)
        return ClusterReference(f"{name}-cluster", ctx, kubernetes=bool(own.eks_users), opts=child)

    def _stand_in(
        self, name: str, ctx: StackContext, registry: Registry, child: pulumi.ResourceOptions
    ) -> StandInWeights | None:
        """kube: the weights the local replicas of kwok's pods serve (components/kube/serving.py)."""
        if ctx.settings.target != "kube":
            return None
        skipped = "drift monitors and Helm add-ons are skipped"
        pulumi.log.info(f"kube target: endpoints, EKS training Jobs and monitoring rules; {skipped}", self)
        return StandInWeights(f"{name}-stand-in", ctx, registry.models[STAND_IN_MODEL], child)

    def _evaluations(
        self, name: str, ctx: StackContext, deployments: list[Any], child: pulumi.ResourceOptions
    ) -> dict[str, Evaluation]:
        """Local: one Evaluation per gated model; the candidate's replicas wait for it."""
        if ctx.settings.target != "local":
            return {}
        return {
            dep.name: Evaluation(
                f"{name}-{dep.name}-eval",
                EvaluationArgs(ctx, dep, list(dep.model.compliance.evaluation), self.training_jobs.get(dep.name)),
                child,
            )
            for dep in deployments
            if dep.model.compliance.evaluation
        }

    def _monitoring(
        self, name: str, ctx: StackContext, deployments: list[Deployment], lineage: dict[str, Any], child: Any
    ) -> MonitoringStack:
        """Alerts, Prometheus and (local) the dashboard, which shows evaluation results and lineage too."""
        args = MonitoringStackArgs(
            ctx,
            self.endpoints,
            {d.name: d for d in deployments},
            self.cluster,
            evaluations={m: e.results for m, e in self.evaluations.items()},
            lineage=lineage,
            alarm_topic_arn=self.cluster.alarm_topic_arn if isinstance(self.cluster, ClusterReference) else None,
        )
        return MonitoringStack(f"{name}-monitoring", args, child)

    def _drift_monitors(self, name: str, ctx: StackContext, deployments: list[Deployment]) -> dict[str, DriftMonitor]:
        """A scheduled drift monitor per model whose registry entry asks for one."""
        return {
            dep.name: DriftMonitor(
                f"{name}-{dep.name}-drift",
                DriftMonitorArgs(
                    context=ctx,
                    deployment=dep,
                    dataset=dataset,
                    cluster=self.cluster,
                    alarm_topic_arn=self.monitoring.alarm_topic_arn,
                ),
                pulumi.ResourceOptions(parent=self, depends_on=[self.endpoints[dep.name]], aliases=ctx.moved_aliases),
            )
            for dep in deployments
            if (dataset := dep.model.monitoring.drift_dataset(dep.model)) is not None and ctx.settings.target != "kube"
        }

    def _lineage(self, deployments: list[Deployment]) -> dict[str, Any]:
        """dataset -> artifact -> endpoint versions, per trained model (`llmops lineage MODEL --stack S`)."""
        variants = {
            d.name: [{"name": d.name, "version": v.version, "weight": v.weight} for v in d.variants]
            for d in deployments
        }
        return {
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

    def _stack_outputs(self, ctx: StackContext) -> dict[str, Any]:
        """What `pulumi stack output` shows: each endpoint's URL and sizing, each training artifact."""
        endpoint_outputs: dict[str, Any] = {
            model: pulumi.Output.all(url=ep.url, name=ep.endpoint_name, details=ep.details or {}).apply(
                lambda o, s=self.sizing[model]: {
                    "url": o["url"],
                    "endpointName": o["name"],
                    "instanceType": s.instance_type,
                    "tensorParallel": s.tensor_parallel,
                    # A scale-to-zero SageMaker endpoint is invoked through its inference component.
                    # kube: the in-cluster Service's URL and the stand-in weights that answer at `url`.
                    **{
                        k: v
                        for k, v in (o["details"] or {}).items()
                        if k in ("inferenceComponent", "serviceUrl", "standIn")
                    },
                }
            )
            for model, ep in self.endpoints.items()
        }
        outputs: dict[str, Any] = {
            "environment": ctx.settings.environment,
            "endpoints": endpoint_outputs,
            "artifacts": {
                m: {"uri": job.artifact_uri, "sha256": job.artifact_sha256} for m, job in self.training_jobs.items()
            },
        }
        if self.evaluations:
            outputs["evaluations"] = {model: e.results for model, e in self.evaluations.items()}
        # SageMaker pipelines and the spec each was defined with: `ci deploy` starts a spec with no run yet.
        runs = {
            m: {"pipelineArn": job.pipeline_arn, "packageGroup": job.package_group, "spec": self.training_specs[m]}
            for m, job in self.training_jobs.items()
            if job.pipeline_arn is not None
        }
        if runs:
            outputs[TRAINING_RUNS] = runs
        # Local: each run's package, measured and recorded; `llmops train adopt` pins one by digest.
        packages = {m: job.package for m, job in self.training_jobs.items() if job.package is not None}
        if packages:
            outputs[TRAINING_PACKAGES] = packages
        if self.monitoring.prometheus_url is not None:
            outputs["prometheusUrl"] = self.monitoring.prometheus_url
        c = self.cluster
        if c.cluster_name is not None and c.cluster_endpoint is not None and c.cluster_ca is not None:
            # Where `llmops cost --measured` and `rightsize` reach the cluster's Prometheus (its API server's proxy).
            outputs["cluster"] = {
                "name": c.cluster_name,
                "endpoint": c.cluster_endpoint,
                "certificateAuthority": c.cluster_ca,
                "servingNamespace": c.serving_namespace,
            }
        if self.monitoring.dashboard_url is not None:
            outputs["dashboardUrl"] = self.monitoring.dashboard_url
        return outputs


def _placement_checked(ctx: StackContext, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """Every Kubernetes workload of the stack must select labels some node group carries."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(transformations=[check_node_selectors(ctx)]))


def _deployments(ctx: StackContext, registry: Registry) -> tuple[list[Deployment], list[Deployment]]:
    """(the environment's deployments, those this stack builds): the cluster is sized and built for
    the former in every layout; a platform stack builds no model, a model stack its own."""
    environment = stack_deployments(registry, _environment_settings(ctx))
    if ctx.part == "model":
        mine = stack_deployments(registry, ctx.settings)
        if not mine:  # a retired model's stack empties; a mistyped name says so
            pulumi.log.warn(
                f"{ctx.deployed_stack}: {ctx.settings.models[0]} is not deployed to {ctx.environment}: "
                "this stack holds nothing (`pulumi stack rm` it once empty)"
            )
        return environment, mine
    return environment, environment if ctx.builds_models else []


def _environment_settings(ctx: StackContext) -> StackSettings:
    """The settings of the stack's whole environment: a model stack's without its narrowing to one model."""
    return ctx.settings.model_copy(update={"models": []}) if ctx.part == "model" else ctx.settings


def _facts(ctx: StackContext, registry: Registry) -> dict[str, Any]:
    """The stack-level facts policies judge (budget, quotas), as the Platform's inputs. A model
    stack carries its environment's: a change that breaks the environment's budget fails the
    preview of whichever stack it is made in."""
    settings = _environment_settings(ctx)
    cost = stack_cost(ctx.stack, settings, registry, ctx.models_dir)
    return {
        "stack": ctx.deployed_stack,
        "environment": settings.environment,
        "part": ctx.part,
        "production": settings.production,
        "target": settings.target,
        "budgetMonthlyUsd": settings.budget_monthly_usd,
        "monthlyCostUsd": round(cost.total_monthly_usd, 2),
        "maxMonthlyCostUsd": round(cost.max_total_monthly_usd, 2),
        # The biggest lines expected and at full scale, for the budget policy to name.
        "costTop": [line.to_dict() for line in dict.fromkeys([*cost.top(5), *cost.top(5, at_max=True)])],
        "quotas": settings.quotas.model_dump(by_alias=True),
        "allowedInstanceTypes": settings.policy.allowed_instance_types,
        "licenceAllowlist": settings.policy.licence_allowlist,
    }


def _trains_here(ctx: StackContext, training: Training) -> bool:
    """kube: an EKS Job only (a SageMaker pipeline has no Kubernetes objects); every other target: all."""
    return ctx.settings.target != "kube" or training.platform == "eks"
