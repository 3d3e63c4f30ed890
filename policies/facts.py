"""The facts components put in their inputs, parsed once, and the stack facts every
rule about a stack limit needs.

Each component carries the registry's intent (`components/model_endpoint.py:
endpoint_facts`, the TrainingJob and Platform inputs). The stack's limits
(quotas, instance allowlist, licence allowlist, budget) are inputs of the one
Platform per stack. The engine analyzes a parent before any child can be
registered, so remembering the Platform's facts as it is analyzed gives every
later resource of the same stack its limits, on both targets, without any
component repeating them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from llmops.catalog import load_catalog
from llmops.cost import CostLine
from llmops.settings import PolicySettings, Quotas
from policies.props import plain, stack_key

PLATFORM = "llmops:platform:Platform"
ENDPOINT = "llmops:model_endpoint:ModelEndpoint"
TRAINING = "llmops:training_job:TrainingJob"

_COST_LINES = TypeAdapter(list[CostLine])


def registry_file(model: str) -> str:
    """Where a model's intent lives: the registry file is named after the model."""
    return f"models/{model}.yaml"


def catalog_gpus(instance_type: str) -> int | None:
    """Accelerators of a catalog instance type; None for a type the catalog does not know."""
    try:
        return load_catalog().get(instance_type).gpus
    except KeyError:
        return None


def needs_allowlist(instance_type: str) -> bool:
    """Whether the GPU allowlist governs a type: CPU-only types (system nodes, the local host)
    are outside it; a type the catalog does not know counts as a GPU type, so it fails closed."""
    gpus = catalog_gpus(instance_type)
    return gpus is None or gpus > 0


@dataclass(frozen=True)
class PlatformFacts:
    """One stack's limits and cost, as its Platform component declares them."""

    stack: str
    environment: str
    production: bool
    target: str
    budget_monthly_usd: float
    monthly_cost_usd: float
    max_monthly_cost_usd: float  # every endpoint at max_replicas, every pool at maxSize
    cost_top: list[CostLine]
    quotas: Quotas
    allowed_instance_types: list[str]
    licence_allowlist: list[str]

    @classmethod
    def from_props(cls, props: Any) -> PlatformFacts:
        data = plain(props)
        return cls(
            stack=str(data.get("stack", "")),
            environment=str(data.get("environment", "")),
            production=bool(data.get("production", False)),
            target=str(data.get("target", "")),
            budget_monthly_usd=float(data.get("budgetMonthlyUsd", 0.0)),
            monthly_cost_usd=float(data.get("monthlyCostUsd", 0.0)),
            max_monthly_cost_usd=float(data.get("maxMonthlyCostUsd", data.get("monthlyCostUsd", 0.0))),
            cost_top=_COST_LINES.validate_python(data.get("costTop") or []),
            quotas=Quotas.model_validate(data.get("quotas") or {}),
            allowed_instance_types=[str(t) for t in data.get("allowedInstanceTypes") or []],
            licence_allowlist=[str(x) for x in data.get("licenceAllowlist") or PolicySettings().licence_allowlist],
        )

    @property
    def stack_file(self) -> str:
        return f"stacks/Pulumi.{self.stack}.yaml"


@dataclass(frozen=True)
class EndpointFacts:
    """A ModelEndpoint's inputs (see `components.model_endpoint.endpoint_facts`)."""

    model: str
    environment: str
    production: bool
    target: str
    platform: str
    instance_type: str
    gpus_per_replica: int
    gpus_per_instance: int
    min_replicas: int
    max_replicas: int
    variants: list[dict[str, Any]]
    licence: str
    evaluation_gates: list[dict[str, Any]]
    evaluation_records: dict[str, list[dict[str, Any]]]

    @classmethod
    def from_props(cls, props: Any) -> EndpointFacts:
        data = plain(props)
        return cls(
            model=str(data.get("model", "")),
            environment=str(data.get("environment", "")),
            production=bool(data.get("production", False)),
            target=str(data.get("target", "")),
            platform=str(data.get("platform", "")),
            instance_type=str(data.get("instanceType", "")),
            gpus_per_replica=int(data.get("gpusPerReplica", 0)),
            gpus_per_instance=int(data.get("gpusPerInstance", 0)),
            min_replicas=int(data.get("minReplicas", 1)),
            max_replicas=int(data.get("maxReplicas", 1)),
            variants=list(data.get("variants") or []),
            licence=str(data.get("licence", "")),
            evaluation_gates=list(data.get("evaluationGates") or []),
            evaluation_records=dict(data.get("evaluationRecords") or {}),
        )

    @property
    def file(self) -> str:
        return registry_file(self.model)

    @property
    def gated(self) -> bool:
        """Whether the production gates (pinned revision, evaluation, licence) apply.

        Production stacks, and the local target: it serves the model for real on
        this machine, so it is where the whole path to production, gates
        included, runs end to end before any cloud stack sees the change.
        """
        return self.production or self.target == "local"

    @property
    def gpus_per_serving_replica(self) -> int:
        # A SageMaker replica is a whole instance; an EKS or local replica claims its shard count.
        if self.target == "aws" and self.platform == "sagemaker":
            return self.gpus_per_instance
        return self.gpus_per_replica


@dataclass(frozen=True)
class TrainingFacts:
    """A TrainingJob's inputs (see `components.training_job`)."""

    model: str
    environment: str
    production: bool
    target: str
    spot: bool
    checkpoint: str | None
    max_runtime: float | None
    instance_type: str

    @classmethod
    def from_props(cls, props: Any) -> TrainingFacts:
        data = plain(props)
        runtime = data.get("maxRuntime")
        return cls(
            model=str(data.get("model", "")),
            environment=str(data.get("environment", "")),
            production=bool(data.get("production", False)),
            target=str(data.get("target", "")),
            spot=bool(data.get("spot", False)),
            checkpoint=data.get("checkpoint") or None,
            max_runtime=None if runtime is None else float(runtime),
            instance_type=str(data.get("instanceType", "")),
        )

    @property
    def file(self) -> str:
        return registry_file(self.model)


@dataclass
class StackFacts:
    """Platform facts by stack, filled as the engine analyzes each stack's Platform.

    The analyzer serves requests on a thread pool, hence the lock.
    """

    _by_stack: dict[str, PlatformFacts] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, resource_type: str, urn: str, props: Any) -> None:
        if resource_type != PLATFORM:
            return
        facts = PlatformFacts.from_props(props)
        with self._lock:
            self._by_stack[stack_key(urn)] = facts

    def for_urn(self, urn: str) -> PlatformFacts | None:
        with self._lock:
            return self._by_stack.get(stack_key(urn))
