"""What this machine can run: its accelerators, CPUs and memory, and where each workload fits.

The local "GPU cluster" is this inventory. Every workload (a model endpoint)
states a demand: GPUs, GPU memory in all, and whether the registry allows it
to run on CPU. A workload fits on the GPUs if enough of them each hold its
share of memory; otherwise on CPU if CPU fallback is allowed and host RAM holds
it; otherwise it does not fit and the message names the need and the capacity.
Each workload is judged on its own (they may share GPUs, as processes can).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import psutil

GIB = 1024**3
NVIDIA_SMI_QUERY = ["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gib: float


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[Gpu, ...]
    cpus: int
    memory_gib: float
    source: Literal["nvidia-smi", "torch", "none"] = "none"  # where the GPU list came from

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpus": [asdict(g) for g in self.gpus],
            "cpus": self.cpus,
            "memoryGib": self.memory_gib,
            "gpuSource": self.source,
        }

    def describe(self) -> str:
        """`0 GPUs (2 CPUs, 23.4 GiB RAM)`, `1 GPU (NVIDIA H100, 79.6 GiB; 16 CPUs, 125.8 GiB RAM)`."""
        host = f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}, {self.memory_gib:.1f} GiB RAM"
        count = f"{len(self.gpus)} GPU{'s' if len(self.gpus) != 1 else ''}"
        if not self.gpus:
            return f"{count} ({host})"
        kinds = Counter((gpu.name, gpu.memory_gib) for gpu in self.gpus)
        listed = ", ".join(f"{f'{n}x ' if n > 1 else ''}{name} {mem:.1f} GiB" for (name, mem), n in kinds.items())
        return f"{count} ({listed}; {host})"


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Rows of `name, memory.total` (MiB), as `nvidia-smi --format=csv,noheader,nounits` prints them."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, _, memory = line.rpartition(",")
        try:
            mib = float(memory.strip())
        except ValueError:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}") from None
        gpus.append(Gpu(name=name.strip(), memory_gib=round(mib / 1024, 1)))
    return gpus


def nvidia_smi_gpus(binary: str | None = None, timeout: float = 20.0) -> list[Gpu] | None:
    """The GPUs nvidia-smi reports, or None when there is no working nvidia-smi."""
    binary = binary or shutil.which("nvidia-smi")
    if not binary:
        return None
    try:
        result = subprocess.run([binary, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return parse_nvidia_smi(result.stdout)


# Device nodes a CUDA (NVIDIA) or ROCm (AMD) driver creates; with none of them torch sees no GPU,
# and skipping the torch import saves seconds on every preview of a CPU-only machine.
GPU_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd")


def torch_gpus() -> list[Gpu]:
    """CUDA devices as torch sees them (empty when torch, a GPU driver or CUDA is missing)."""
    if not any(os.path.exists(p) for p in GPU_DRIVER_PATHS):
        return []
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [
        Gpu(name=str(p.name), memory_gib=round(p.total_memory / GIB, 1))
        for p in (torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count()))
    ]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def take_inventory() -> Inventory:
    """This machine now. Total (not free) memory, so the answer is stable between runs."""
    gpus = nvidia_smi_gpus()
    source: Literal["nvidia-smi", "torch", "none"] = "nvidia-smi"
    if gpus is None:
        gpus = torch_gpus()
        source = "torch" if gpus else "none"
    return Inventory(
        gpus=tuple(gpus), cpus=_cpus(), memory_gib=round(psutil.virtual_memory().total / GIB, 1), source=source
    )


# --------------------------------------------------------------------------- fit


@dataclass(frozen=True)
class Demand:
    gpus: int = 1
    gpu_memory_gib: float = 0.0  # for all of the workload's GPUs together
    cpu_fallback: bool = False

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any]) -> Demand:
        return cls(
            gpus=int(value.get("gpus", 1)),
            gpu_memory_gib=float(value.get("gpu_memory_gib", 0.0)),
            cpu_fallback=bool(value.get("cpu_fallback", False)),
        )


@dataclass(frozen=True)
class Placement:
    device: Literal["gpu", "cpu"]
    gpu_indices: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "gpuIndices": list(self.gpu_indices)}


class DoesNotFitError(ValueError):
    """A workload this machine cannot run."""


def _gib(value: float) -> str:
    return f"{value:.1f} GiB"


def place(name: str, demand: Demand, inventory: Inventory) -> Placement:
    """Where `name` runs on this machine, or DoesNotFitError naming the need and the capacity."""
    need = max(1, demand.gpus)
    per_gpu = demand.gpu_memory_gib / need
    fitting = [i for i, gpu in enumerate(inventory.gpus) if gpu.memory_gib >= per_gpu]
    if len(fitting) >= need:
        # The smallest GPUs that hold it, leaving the large ones for larger workloads.
        chosen = sorted(fitting, key=lambda i: (inventory.gpus[i].memory_gib, i))[:need]
        return Placement("gpu", sorted(chosen))
    if demand.cpu_fallback and inventory.memory_gib >= demand.gpu_memory_gib:
        return Placement("cpu")
    if need == 1:
        wants = f"{name} needs 1 GPU with {_gib(demand.gpu_memory_gib)}"
    else:
        wants = f"{name} needs {need} GPUs with {_gib(per_gpu)} each ({_gib(demand.gpu_memory_gib)} in all)"
    if demand.cpu_fallback:
        why = f"and CPU fallback needs {_gib(demand.gpu_memory_gib)} of RAM"
    else:
        why = "and the model does not allow CPU fallback"
    raise DoesNotFitError(f"{wants}; this machine has {inventory.describe()} {why}")


def place_all(demands: Mapping[str, Mapping[str, Any]], inventory: Inventory) -> tuple[dict[str, Placement], list[str]]:
    """Placements of the workloads that fit, and one message per workload that does not."""
    placements: dict[str, Placement] = {}
    problems: list[str] = []
    for name in sorted(demands):
        try:
            placements[name] = place(name, Demand.from_mapping(demands[name]), inventory)
        except DoesNotFitError as exc:
            problems.append(str(exc))
    return placements, problems
