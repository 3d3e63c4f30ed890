"""The instance catalog: accelerators, memory and on-demand prices per instance type.

One data file (``llmops/data/catalog.yaml``) feeds sizing, cost and the budget
policy, so the three can never disagree about what an instance is or costs.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

HOURS_PER_MONTH = 730.0  # AWS's own convention for monthly estimates (24 * 365 / 12).

Platform = Literal["sagemaker", "ec2", "local"]
# The accelerator's architecture: what a serving runtime can run there (bf16 from ampere, FP8 from ada).
Generation = Literal["volta", "turing", "ampere", "ada", "hopper", "neuron", "none"]

# Instance families whose volumes are NVMe instance storage, encrypted in hardware: SageMaker
# rejects a KMS key for their endpoint and training volumes (CreateEndpointConfig `KmsKeyId`,
# CreateTrainingJob `VolumeKmsKeyId`), so for them "encrypted at rest" needs no key. The AWS
# components and the encryption policy both read this one list.
NVME_FAMILIES = frozenset({"g4dn", "g5", "g6", "g6e", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "trn1", "trn1n"})


def has_instance_storage(instance_type: str) -> bool:
    """True for SageMaker (ml.*) and EC2 types of an NVMe instance-storage family."""
    return instance_type.removeprefix("ml.").split(".", 1)[0] in NVME_FAMILIES


class InstanceType(BaseModel):
    """One purchasable instance type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    platform: Platform
    accelerator: str
    generation: Generation
    gpus: int = Field(ge=0)
    gpu_memory_gib: float = Field(ge=0, description="Memory per accelerator.")
    vcpus: int = Field(ge=0)
    memory_gib: float = Field(ge=0)
    hourly_usd: float = Field(ge=0)

    @model_validator(mode="after")
    def _generation_matches_accelerators(self) -> InstanceType:
        if (self.gpus > 0) == (self.generation == "none"):
            raise ValueError(f"{self.name}: generation {self.generation!r} with {self.gpus} accelerators")
        return self

    @property
    def total_gpu_memory_gib(self) -> float:
        return self.gpus * self.gpu_memory_gib

    @property
    def monthly_usd(self) -> float:
        return self.hourly_usd * HOURS_PER_MONTH


class ServicePrices(BaseModel):
    """Unit prices of what a stack runs besides instances (same region and date as the instances)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eks_control_plane_hourly_usd: float = Field(ge=0, description="One EKS cluster, standard support.")
    nat_gateway_hourly_usd: float = Field(ge=0, description="One NAT gateway, before data processed.")
    nat_gateway_per_gb_usd: float = Field(ge=0, description="Data processed (not estimated: usage).")
    ebs_gp3_gb_month_usd: float = Field(ge=0, description="gp3 volume storage (node root volumes).")
    s3_standard_gb_month_usd: float = Field(ge=0, description="S3 Standard storage (trained weights).")
    cloudwatch_alarm_metric_month_usd: float = Field(ge=0, description="Per metric in a standard alarm.")
    cloudwatch_dashboard_month_usd: float = Field(ge=0, description="Per dashboard beyond the free three.")


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str
    recorded: str
    sources: list[str]
    services: ServicePrices
    instances: list[InstanceType]

    def get(self, name: str) -> InstanceType:
        for instance in self.instances:
            if instance.name == name:
                return instance
        raise KeyError(name)

    def names(self) -> list[str]:
        return [i.name for i in self.instances]

    def for_platform(self, platform: Platform) -> list[InstanceType]:
        return [i for i in self.instances if i.platform == platform]


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The shipped catalog, parsed once per process."""
    text = resources.files("llmops").joinpath("data/catalog.yaml").read_text()
    return Catalog.model_validate(yaml.safe_load(text))
