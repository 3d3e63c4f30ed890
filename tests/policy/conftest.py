"""Builders for policy tests: resources as the engine presents them to the pack.

Component inputs come from the project's own code where it exists (the
registry's `ModelEntry`, `components.model_endpoint.endpoint_facts`,
`llmops.settings`, `llmops.cost.CostLine`), so a drift between what the
components declare and what the policies read fails here. Every property map
goes through `policies.evaluate.engine_shape`: the protobuf round trip and
read-only proxies of the real analyzer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_policy import (
    Policy,
    PolicyProviderResource,
    PolicyResource,
    ResourceValidationArgs,
    StackValidationArgs,
)

from components.context import StackContext
from components.model_endpoint import ModelEndpointArgs, endpoint_facts
from llmops.cost import CostLine
from llmops.registry import ModelEntry
from llmops.settings import StackSettings
from llmops.sizing import SizingResult
from policies.evaluate import engine_shape, resource_options
from policies.facts import ENDPOINT, PLATFORM, TRAINING
from policies.policy_set import build_policies

REPO = Path(__file__).resolve().parents[2]
STACK = "teststack"
SHA = "0123456789abcdef0123456789abcdef01234567"


def urn(resource_type: str, name: str, parents: tuple[str, ...] = (PLATFORM,)) -> str:
    chain = "$".join([*parents, resource_type]) if parents else resource_type
    return f"urn:pulumi:{STACK}::llmops::{chain}::{name}"


def resource_args(
    resource_type: str,
    props: Mapping[str, Any],
    name: str = "res",
    *,
    parents: tuple[str, ...] = (PLATFORM,),
    provider_props: Mapping[str, Any] | None = None,
) -> ResourceValidationArgs:
    provider = (
        PolicyProviderResource("pulumi:providers:aws", engine_shape(provider_props), "urn:provider", "default")
        if provider_props is not None
        else None
    )
    return ResourceValidationArgs(
        resource_type, engine_shape(props), urn(resource_type, name, parents), name, resource_options(None), provider
    )


def stack_args(
    *resources: tuple[str, str, Mapping[str, Any]], deps: Mapping[str, list[str]] | None = None
) -> StackValidationArgs:
    """Stack resources (type, name, outputs); `deps` maps a name to the names its `bucket` depends on."""
    built = {
        name: PolicyResource(
            kind, engine_shape(props), urn(kind, name), name, resource_options(None), None, None, [], {}
        )
        for kind, name, props in resources
    }
    for name, targets in (deps or {}).items():
        built[name].property_dependencies["bucket"] = [built[t] for t in targets]
        built[name].dependencies.extend(built[t] for t in targets)
    return StackValidationArgs(list(built.values()))


class Pack:
    """Fresh policies (own stack memory) and a way to run one of them and read its messages."""

    def __init__(self) -> None:
        self.policies: dict[str, Policy] = {p.name: p for p in build_policies()}

    def messages(self, policy: str, *args: ResourceValidationArgs | StackValidationArgs) -> list[str]:
        found: list[str] = []
        for a in args:
            self.policies[policy].validate(a, lambda message, urn=None: found.append(message))
        return found


@pytest.fixture
def pack() -> Pack:
    return Pack()


# --------------------------------------------------------------------------- component inputs


def stack_settings(**config: Any) -> StackSettings:
    values: dict[str, Any] = {"target": "aws", "environment": "prod", "production": True}
    values.update(config)
    return StackSettings.model_validate(values)


def platform_props(
    settings: StackSettings, *, cost: float = 0.0, lines: list[CostLine] | None = None, max_cost: float | None = None
) -> dict[str, Any]:
    """What `components.platform.Platform` declares as its inputs."""
    lines = lines or []
    return {
        "stack": STACK,
        "environment": settings.environment,
        "production": settings.production,
        "target": settings.target,
        "budgetMonthlyUsd": settings.budget_monthly_usd,
        "monthlyCostUsd": round(cost, 2),
        "maxMonthlyCostUsd": round(cost if max_cost is None else max_cost, 2),
        "costTop": [line.to_dict() for line in lines],
        "quotas": settings.quotas.model_dump(by_alias=True),
        "allowedInstanceTypes": settings.policy.allowed_instance_types,
        "licenceAllowlist": settings.policy.licence_allowlist,
    }


def model_entry(edit: Callable[[dict[str, Any]], None] | None = None) -> ModelEntry:
    """A registry entry (tiny-chat's shape, deployable to prod), optionally edited, validated by the registry."""
    data = yaml.safe_load((REPO / "models" / "tiny-chat.yaml").read_text())
    data = copy.deepcopy(data)
    data["source"] = {"config": "configs/tiny-chat.json"}
    data["versions"] = {"v1": {"huggingface": {"repo": "org/model", "revision": SHA}}}
    data["deployments"] = {"prod": {}, "dev": {}, "local": {}}
    data["compliance"]["evaluation"] = [{"suite": "assistant-basics", "metric": "accuracy", "threshold": 0.7}]
    if edit:
        edit(data)
    return ModelEntry.model_validate(data)


def passing_record(suite: str = "assistant-basics", metric: str = "accuracy", value: float = 0.9) -> dict[str, Any]:
    """A staging evaluation record as `llmops ci deploy` writes it (prod's evaluation gate reads these)."""
    return {
        "suite": suite,
        "suiteSha256": "a" * 64,
        "weights": f"hf://org/model@{SHA}",
        "lmEvalVersion": "0.4.13",
        "evaluatedAt": "2026-11-30T12:00:00+00:00",
        "where": "sagemaker-endpoint:llmops-staging-tiny-chat/v1",
        "metrics": {metric: value},
        "passed": True,
    }


def sizing(model: str, instance: str = "ml.g5.2xlarge", gpus: int = 1, tensor_parallel: int = 1) -> SizingResult:
    return SizingResult(
        model=model,
        parameters=1_000_000,
        dtype="bf16",
        weights_gib=1.0,
        kv_cache_gib=1.0,
        overhead_gib=1.0,
        total_gib=3.0,
        instance_type=instance,
        accelerator="A10G",
        gpus=gpus,
        tensor_parallel=tensor_parallel,
        gpu_memory_gib=24.0,
        hourly_usd=1.0,
        monthly_usd=730.0,
    )


def endpoint_props(
    settings: StackSettings,
    entry: ModelEntry | None = None,
    *,
    instance: str = "ml.g5.2xlarge",
    gpus: int = 1,
    tensor_parallel: int = 1,
) -> dict[str, Any]:
    """A ModelEndpoint's inputs, computed by the component's own `endpoint_facts`."""
    entry = entry or model_entry()
    deployment = entry.deployment(settings.environment)
    args = ModelEndpointArgs(
        context=StackContext(STACK, settings, REPO),
        deployment=deployment,
        sizing=sizing(entry.name, instance, gpus, tensor_parallel),
    )
    return endpoint_facts(args, deployment.platform or settings.default_endpoint_platform)


def training_props(settings: StackSettings, **training: Any) -> dict[str, Any]:
    """A TrainingJob's inputs (the facts `components.training_job.TrainingJob` declares)."""
    values = {"spot": True, "checkpoint": "s3://bucket/ckpt", "max_runtime": 3600, "instance": "ml.g5.2xlarge"}
    values.update(training)
    return {
        "model": "tiny-chat",
        "team": "platform-ml",
        "environment": settings.environment,
        "production": settings.production,
        "target": settings.target,
        "spot": values["spot"],
        "checkpoint": values["checkpoint"],
        "maxRuntime": values["max_runtime"],
        "instanceType": values["instance"],
    }


def platform_args(settings: StackSettings, **kw: Any) -> ResourceValidationArgs:
    return resource_args(PLATFORM, platform_props(settings, **kw), "llmops", parents=())


def endpoint_args(settings: StackSettings, entry: ModelEntry | None = None, **kw: Any) -> ResourceValidationArgs:
    props = endpoint_props(settings, entry, **kw)
    return resource_args(ENDPOINT, props, f"llmops-{props['model']}")


def training_args(settings: StackSettings, **training: Any) -> ResourceValidationArgs:
    return resource_args(TRAINING, training_props(settings, **training), "llmops-tiny-chat-training")
