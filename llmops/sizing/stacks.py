"""Sizing a registry deployment as a stack runs it, and the validator's sizing problems."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.registry import Deployment, ModelEntry, Registry, ScaleToZero
from llmops.sizing.config import config_path, load_config
from llmops.sizing.errors import SizingError
from llmops.sizing.pick import SizingPlatform, SizingResult, size_model
from llmops.sizing.result_cache import cached_size

if TYPE_CHECKING:
    from llmops.settings import StackSettings


def stack_deployments(registry: Registry, settings: StackSettings) -> list[Deployment]:
    """The deployments a stack serves, as it serves them.

    A review stack serves only its `models`; an AWS review stack (`reviewStack`) serves each
    with auto sizing (the cheapest, so smallest, catalog instance that fits within the stack's
    allowed types), exactly one replica, and no rollout or shadow. A stack with a default idle
    time (`scaleToZero.defaultIdleSeconds`) scales to zero what it may.
    """
    only = set(settings.models)
    deployments = [d for d in registry.deployed_to(settings.environment) if not only or d.name in only]
    if settings.review_stack is not None:
        deployments = [
            dataclasses.replace(d, instance="auto", min_replicas=1, max_replicas=1, rollout=None, shadow=None)
            for d in deployments
        ]
    return [_default_scale_to_zero(d, settings) for d in deployments]


def _default_scale_to_zero(deployment: Deployment, settings: StackSettings) -> Deployment:
    """A stack's `scaleToZero.defaultIdleSeconds` (dev, review stacks) for a deployment that sets
    none, where the stack allows scale to zero and the deployment's platform supports it."""
    idle = settings.scale_to_zero.default_idle_seconds
    if idle is None or deployment.scale_to_zero is not None or not settings.allows_scale_to_zero:
        return deployment
    versions, shadow = len(deployment.variants), deployment.shadow is not None
    if settings.scale_to_zero_unsupported(deployment.platform, versions, shadow) is not None:
        return deployment
    return dataclasses.replace(deployment, scale_to_zero=ScaleToZero(idle_seconds=idle))


def size_deployment(
    deployment: Deployment, models_dir: Path, platform: SizingPlatform, allowed: Collection[str] | None = None
) -> SizingResult:
    """Size a model as one environment deploys it (its instance override included).

    Kept by its inputs (`result_cache`): a repeat imports neither transformers nor torch.
    """
    model = deployment.model
    serving = model.serving
    config_file = config_path(model.source, models_dir)
    chosen = sorted(allowed) if allowed is not None else None
    inputs = {
        "name": model.name,
        "dtype": serving.dtype,
        "context": serving.max_context,
        "concurrency": serving.concurrency,
        "platform": platform,
        "runtime": serving.runtime,
        "instance": deployment.instance,
        "allowed": chosen,
    }
    return cached_size(
        config_file,
        inputs,
        lambda: size_model(
            load_config(config_file),
            name=model.name,
            dtype=serving.dtype,
            context=serving.max_context,
            concurrency=serving.concurrency,
            platform=platform,
            runtime=serving.runtime,
            instance=deployment.instance,
            allowed=chosen,
        ),
    )


def stack_platform(deployment: Deployment, settings: StackSettings) -> SizingPlatform:
    """Where a stack runs a deployment: SageMaker ml.* types, EKS nodes (EC2 types) or this machine."""
    if settings.target == "local":
        return "local"
    eks = settings.target == "kube" or (deployment.platform or settings.default_endpoint_platform) == "eks"
    return "ec2" if eks else "sagemaker"  # the kube target serves every model as EKS does


def stack_allowed(deployment: Deployment, settings: StackSettings) -> list[str] | None:
    """Instance types a stack lets auto sizing choose for a deployment (None: any).

    EKS endpoints land on the stack's GPU pools, so only the pools' types qualify;
    the stack policy's allowlist narrows both platforms.
    """
    policy = settings.policy.allowed_instance_types
    if stack_platform(deployment, settings) == "ec2":
        pooled = [t for pool in settings.cluster.gpu_pools for t in pool.instance_types]
        return [t for t in dict.fromkeys(pooled) if not policy or t in policy]
    return list(policy) if policy else None


def size_for_stack(deployment: Deployment, settings: StackSettings, models_dir: Path) -> SizingResult:
    """`size_deployment` with the stack's platform and allowed instance types."""
    return size_deployment(
        deployment, models_dir, stack_platform(deployment, settings), stack_allowed(deployment, settings)
    )


def sizing_problems(
    registry: Any, stacks: dict[str, StackSettings], models_dir: Path, only: Collection[str] | None = None
) -> list[Any]:
    """Every deployment that would fail sizing in some stack, located in its registry file.

    `registry` is a `llmops.registry.Registry`; `only` limits the check to those model names.
    """
    problems = []
    for name, entry in sorted(registry.models.items()):
        if only is not None and name not in only:
            continue
        seen: set[str] = set()
        for env in entry.deployments:
            for stack, settings in sorted(stacks.items()):
                if settings.environment != env:
                    continue
                deployment = entry.deployment(env)
                try:
                    size_for_stack(deployment, settings, models_dir)
                except SizingError as exc:
                    message = f"stack {stack}: {exc}"
                    if str(exc) in seen:
                        continue
                    seen.add(str(exc))
                    problems.append(registry.problem(name, _culprit(entry, env, exc), message))
    return problems


def _culprit(entry: ModelEntry, env: str, error: SizingError) -> tuple[int | str, ...]:
    """The registry key a sizing failure is best reported at."""
    if error.key == "config":
        return ("source", "config")
    if error.key == "dtype":
        return ("serving", "dtype")
    override = entry.deployments.get(env)
    if error.key == "instance" and override is not None and override.instance:
        return ("deployments", env, "instance")
    if error.key == "instance" and entry.serving.instance != "auto":
        return ("serving", "instance")
    return ("serving", "max_context")  # auto sizing found nothing: context and concurrency drive the need
