"""Inputs for the local endpoint's providers, for benchmarks and tests that drive them directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def one_replica(common: dict[str, Any], model_dir: Path, concurrency: int) -> dict[str, Any]:
    """`ReplicaSetProvider` props: one float32 replica of `model_dir` as version v1, no standby.
    `common` carries what the front shares (model, state_dir, base_port, port_span, health_timeout)."""
    return {
        **common,
        "version": "v1",
        "model_source": str(model_dir),
        "count": 1,
        "max_count": 1,
        "device": "auto",
        "dtype": "float32",
        "concurrency": concurrency,
        "max_context": 256,
    }
