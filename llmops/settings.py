"""Stack settings: what one Pulumi stack (`stacks/Pulumi.<stack>.yaml`) declares.

The same pydantic model reads the settings from the stack file (core tools: the
validator, `llmops cost`, `llmops plan`) and from `pulumi.Config` inside the
program, so a key spelled wrong fails both the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

CONFIG_NAMESPACE = "llmops"
STACK_FILE_PREFIX = "Pulumi."
PROMOTION_ORDER = ("dev", "staging", "prod")


class _Settings(BaseModel):
    # Pulumi config keys are camelCase by convention; Python code uses snake_case.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class NodePool(_Settings):
    """A GPU node pool (an EKS managed node group). Its labels are also the
    node selector of every workload placed on it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    instance_types: list[str] = Field(min_length=1)
    min_size: int = Field(default=0, ge=0)
    max_size: int = Field(default=2, ge=0)
    desired_size: int = Field(default=0, ge=0)
    spot: bool = False
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sizes(self) -> NodePool:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"need minSize <= desiredSize <= maxSize, got {self.min_size}/{self.desired_size}/{self.max_size}"
            )
        return self

    @property
    def selector(self) -> dict[str, str]:
        """The labels a workload must select to land on this pool."""
        return {"llmops.io/pool": self.name, **self.labels}


class ClusterSettings(_Settings):
    vpc_id: str | None = Field(default=None, description="Use an existing VPC instead of creating one.")
    private_subnet_ids: list[str] = Field(default_factory=list)
    vpc_cidr: str = "10.40.0.0/16"
    kubernetes_version: str = "1.33"
    system_instance_type: str = "m6i.large"
    system_nodes: int = Field(default=2, ge=1)
    gpu_pools: list[NodePool] = Field(default_factory=list)


class Quotas(_Settings):
    max_replicas_per_endpoint: int = Field(default=8, ge=1)
    max_gpus_per_endpoint: int = Field(default=8, ge=1)
    max_gpus_per_pool: int = Field(default=32, ge=1)


class PolicySettings(_Settings):
    enforcement: Literal["advisory", "mandatory", "disabled"] = "advisory"
    allowed_instance_types: list[str] = Field(default_factory=list, description="Empty: any catalog type.")
    licence_allowlist: list[str] = Field(
        default_factory=lambda: ["apache-2.0", "mit", "llama3.1", "llama3.2", "gemma", "bsd-3-clause"]
    )


class LocalSettings(_Settings):
    """Settings of the local target (this machine)."""

    base_port: int = Field(default=18400, ge=1024, le=65000)
    state_dir: str = ".state/local"
    health_timeout_seconds: float = Field(default=120.0, gt=0)


class StackSettings(_Settings):
    target: Literal["aws", "local"]
    environment: str = Field(pattern=r"^[a-z][a-z0-9-]{0,15}$")
    production: bool = Field(default=False, description="Marks a prod environment: pinned revisions, eval gates.")
    region: str = "us-east-1"
    default_endpoint_platform: Literal["sagemaker", "eks"] = "sagemaker"
    budget_monthly_usd: float = Field(default=0.0, ge=0, description="0 means no budget.")
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    quotas: Quotas = Field(default_factory=Quotas)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    local: LocalSettings = Field(default_factory=LocalSettings)
    alarm_email: str | None = None
    models: list[str] = Field(
        default_factory=list, description="Only these registry models (a review stack); empty: all it deploys."
    )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StackSettings:
        """Build from a stack's `config:` mapping (keys `llmops:<name>`; `aws:region` too)."""
        values: dict[str, Any] = {}
        for key, value in config.items():
            namespace, _, name = str(key).partition(":")
            if namespace == CONFIG_NAMESPACE:
                values[name] = value
            elif key == "aws:region":
                values.setdefault("region", value)
        return cls.model_validate(values)

    def pool(self, name: str) -> NodePool:
        for pool in self.cluster.gpu_pools:
            if pool.name == name:
                return pool
        raise KeyError(name)


def stack_files(stacks_dir: Path) -> dict[str, Path]:
    """Stack name -> its settings file."""
    out: dict[str, Path] = {}
    for path in sorted(stacks_dir.glob(f"{STACK_FILE_PREFIX}*.yaml")):
        out[path.name[len(STACK_FILE_PREFIX) : -len(".yaml")]] = path
    return out


def load_stack_settings(path: Path) -> StackSettings:
    data = yaml.safe_load(path.read_text()) or {}
    return StackSettings.from_config(data.get("config") or {})


def load_all_stacks(stacks_dir: Path) -> dict[str, StackSettings]:
    return {name: load_stack_settings(path) for name, path in stack_files(stacks_dir).items()}


def environments(stacks: dict[str, StackSettings]) -> dict[str, list[str]]:
    """Environment -> the stacks that deploy it."""
    out: dict[str, list[str]] = {}
    for name, settings in stacks.items():
        out.setdefault(settings.environment, []).append(name)
    return out
