"""GPU sizing from a transformers config: parameters, memory, instance choice.

(Interface fixed here; implementation in progress.)
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from llmops.registry import Deployment

SizingPlatform = Literal["sagemaker", "ec2", "local"]


class SizingError(ValueError):
    """Nothing in the catalog fits, or an explicit instance is too small."""


@dataclass(frozen=True)
class SizingResult:
    model: str
    parameters: int
    dtype: str
    weights_gib: float
    kv_cache_gib: float
    overhead_gib: float
    total_gib: float
    instance_type: str
    accelerator: str
    gpus: int  # accelerators on the instance
    tensor_parallel: int  # accelerators one replica shards the model over
    gpu_memory_gib: float  # per accelerator
    hourly_usd: float
    monthly_usd: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def size_deployment(deployment: Deployment, models_dir: Path, platform: SizingPlatform) -> SizingResult:
    raise NotImplementedError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pass
