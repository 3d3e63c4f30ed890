"""The local GPU pool: machine inventory and the fit check that preview runs.

Proves: nvidia-smi output is parsed (and a missing or failing nvidia-smi is
"no answer", not a crash); this machine's inventory matches psutil; a workload
is placed on the smallest GPUs that hold its share, on CPU only where CPU
fallback is allowed and RAM holds it, and otherwise fails with a message that
names the need and the capacity; the dynamic provider's `check` turns each
misfit into a check failure of the resource.
Cannot prove: what a real GPU driver reports (no GPU here; fake nvidia-smi
binaries and fake inventories stand in), or how the engine prints the failure
(tests/engine/test_local_training.py does).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psutil
import pytest

from components.local import gpu_pool
from llmops.local.inventory import (
    Demand,
    DoesNotFitError,
    Gpu,
    Inventory,
    nvidia_smi_gpus,
    parse_nvidia_smi,
    place,
    place_all,
    take_inventory,
)

pytestmark = pytest.mark.unit

CPU_ONLY = Inventory(gpus=(), cpus=2, memory_gib=23.4)
TWO_SIZES = Inventory(
    gpus=(Gpu("NVIDIA A100-SXM4-80GB", 79.2), Gpu("NVIDIA L4", 22.0), Gpu("NVIDIA L4", 22.0)),
    cpus=16,
    memory_gib=125.8,
    source="nvidia-smi",
)


def _fake_binary(tmp_path: Path, body: str) -> str:
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_parse_nvidia_smi_rows_in_mib() -> None:
    text = "NVIDIA H100 80GB HBM3, 81559\nNVIDIA L4, 23034\n\n"
    assert parse_nvidia_smi(text) == [Gpu("NVIDIA H100 80GB HBM3", 79.6), Gpu("NVIDIA L4", 22.5)]


def test_parse_nvidia_smi_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_nvidia_smi("No devices were found")


def test_nvidia_smi_is_queried_with_csv_format(tmp_path: Path) -> None:
    # The fake echoes its arguments back as the GPU name, so the query flags are checked too.
    binary = _fake_binary(tmp_path, 'echo "$*, 40960"')
    (gpu,) = nvidia_smi_gpus(binary) or []
    assert "--query-gpu=name,memory.total" in gpu.name and "--format=csv,noheader,nounits" in gpu.name
    assert gpu.memory_gib == 40.0


def test_failing_or_missing_nvidia_smi_means_no_answer(tmp_path: Path) -> None:
    assert nvidia_smi_gpus(_fake_binary(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; exit 9")) is None
    assert nvidia_smi_gpus(str(tmp_path / "absent")) is None


def test_this_machine() -> None:
    inventory = take_inventory()
    assert inventory.cpus == len(os.sched_getaffinity(0))
    assert inventory.memory_gib == pytest.approx(psutil.virtual_memory().total / 1024**3, abs=0.1)
    assert (inventory.source == "none") == (not inventory.gpus)
    assert inventory.to_dict()["memoryGib"] == inventory.memory_gib


def test_describe() -> None:
    assert CPU_ONLY.describe() == "0 GPUs (2 CPUs, 23.4 GiB RAM)"
    assert TWO_SIZES.describe() == (
        "3 GPUs (NVIDIA A100-SXM4-80GB 79.2 GiB, 2x NVIDIA L4 22.0 GiB; 16 CPUs, 125.8 GiB RAM)"
    )


def test_gpu_workload_takes_the_smallest_gpu_that_holds_it() -> None:
    assert place("small", Demand(gpus=1, gpu_memory_gib=15.0), TWO_SIZES).gpu_indices == [1]
    assert place("large", Demand(gpus=1, gpu_memory_gib=30.0), TWO_SIZES).gpu_indices == [0]
    # Two GPUs with half the memory each: the two L4s, not the A100.
    assert place("sharded", Demand(gpus=2, gpu_memory_gib=40.0), TWO_SIZES).gpu_indices == [1, 2]


def test_no_gpu_and_no_cpu_fallback_names_need_and_capacity() -> None:
    with pytest.raises(DoesNotFitError) as err:
        place("llama-3-1-8b-instruct", Demand(gpus=1, gpu_memory_gib=17.3, cpu_fallback=False), CPU_ONLY)
    assert str(err.value) == (
        "llama-3-1-8b-instruct needs 1 GPU with 17.3 GiB; this machine has 0 GPUs (2 CPUs, 23.4 GiB RAM) "
        "and the model does not allow CPU fallback"
    )


def test_multi_gpu_need_that_does_not_fit() -> None:
    expected = r"needs 4 GPUs with 40\.0 GiB each \(160\.0 GiB in all\); this machine has 3 GPUs"
    with pytest.raises(DoesNotFitError, match=expected):
        place("llama-70b", Demand(gpus=4, gpu_memory_gib=160.0), TWO_SIZES)


def test_cpu_fallback_runs_on_cpu_when_ram_holds_it() -> None:
    placement = place("tiny-chat", Demand(gpus=1, gpu_memory_gib=1.0, cpu_fallback=True), CPU_ONLY)
    assert placement.device == "cpu" and placement.gpu_indices == []
    # A GPU that fits still wins over the CPU.
    assert place("tiny-chat", Demand(gpus=1, gpu_memory_gib=1.0, cpu_fallback=True), TWO_SIZES).device == "gpu"


def test_cpu_fallback_still_needs_the_ram() -> None:
    expected = r"needs 1 GPU with 156\.6 GiB; .* and CPU fallback needs 156\.6 GiB of RAM"
    with pytest.raises(DoesNotFitError, match=expected):
        place("llama-70b", Demand(gpus=1, gpu_memory_gib=156.6, cpu_fallback=True), CPU_ONLY)


def test_place_all_reports_every_misfit() -> None:
    demands = {
        "b-big": {"gpus": 1, "gpu_memory_gib": 40.0, "cpu_fallback": False},
        "a-tiny": {"gpus": 1, "gpu_memory_gib": 1.0, "cpu_fallback": True},
        "c-big": {"gpus": 2, "gpu_memory_gib": 90.0, "cpu_fallback": False},
    }
    placements, problems = place_all(demands, CPU_ONLY)
    assert list(placements) == ["a-tiny"]
    assert [p.split(" ")[0] for p in problems] == ["b-big", "c-big"]


def test_provider_check_fails_preview_on_misfit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_pool, "take_inventory", lambda: CPU_ONLY)
    provider = gpu_pool.GpuPoolProvider()
    news = {"demands": {"big": {"gpus": 1, "gpu_memory_gib": 40.0, "cpu_fallback": False}}}
    result = provider.check({}, news)
    failures = [(f.property, f.reason.split(";")[0]) for f in result.failures]
    assert failures == [("", "big needs 1 GPU with 40.0 GiB")]

    fitting = {"demands": {"tiny": {"gpus": 1, "gpu_memory_gib": 1.0, "cpu_fallback": True}}}
    assert provider.check({}, fitting).failures == []
    outs = provider.create(fitting).outs or {}
    assert outs["placements"] == {"tiny": {"device": "cpu", "gpuIndices": []}}
    assert outs["inventory"]["cpus"] == 2


def test_provider_diff_follows_demands_only(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = gpu_pool.GpuPoolProvider()
    demands = {"tiny": {"gpus": 1, "gpu_memory_gib": 1.0, "cpu_fallback": True}}
    olds = {"demands": demands, "inventory": CPU_ONLY.to_dict(), "placements": {}}
    assert provider.diff("id", olds, {"demands": demands, "inventory": None}).changes is False
    bigger = {"tiny": {"gpus": 1, "gpu_memory_gib": 2.0, "cpu_fallback": True}}
    assert provider.diff("id", olds, {"demands": bigger}).changes is True
    # refresh takes the inventory again
    monkeypatch.setattr(gpu_pool, "take_inventory", lambda: TWO_SIZES)
    read = provider.read("id", olds)
    assert read.outs is not None and read.outs["inventory"]["gpus"][0]["name"] == "NVIDIA A100-SXM4-80GB"
    assert read.outs["placements"]["tiny"]["device"] == "gpu"
