"""How long registry validation and sizing take.

1. Validation: writes 1,000 valid, varied registry files (every shipped config,
   dev/staging/prod deployments, canaries, training sections) to a temporary
   `models/` and times `validate` (parse + schema + cross-file checks) and
   `check_registry` (the same plus sizing each deployment for each stack, as
   `llmops registry validate` does). Goal: under 2 s for the 1,000 files.
2. Sizing: for every shipped `models/configs/*.json`, the time to load it with
   transformers (uncached) and size it for SageMaker. Goal: under 50 ms each.
   The first load of a model family also imports its transformers module once
   per process; that is printed apart ("first").

The one-time import of transformers (and torch, which its config module imports)
is printed too: a fresh `llmops registry validate` pays it once, and only when the sizing
results it keeps (.state/sizing/results.json) do not already answer.

    .venv/bin/python benchmarks/bench_registry.py [--quick]   (quick: 20 files, 3 configs)
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# An empty sizing cache of its own: the first run sizes for real, later ones hit the kept results.
os.environ["LLMOPS_SIZING_CACHE"] = str(Path(tempfile.mkdtemp()) / "parameters.json")

t0 = time.perf_counter()
from transformers import PretrainedConfig  # noqa: E402, F401  # timed: config support imports torch, once per process

IMPORT_S = time.perf_counter() - t0

from benchmarks.quick import quick  # noqa: E402
from llmops import sizing  # noqa: E402
from llmops.commands import check_registry  # noqa: E402
from llmops.registry import SCHEMA_HEADER, validate  # noqa: E402
from llmops.settings import load_all_stacks  # noqa: E402
from llmops.sizing import config as sizing_config  # noqa: E402

QUICK = quick()
FILES = 20 if QUICK else 1000
REPEATS = 1 if QUICK else 3
SIZING_REPEATS = 2 if QUICK else 20
# Configs and context lengths that fit the stacks' allowed instance types.
CONFIGS = {
    "gpt2.json": 1024,
    "tinyllama-1.1b.json": 2048,
    "phi-3-mini-4k.json": 4096,
    "mistral-7b-v0.3.json": 4096,
    "qwen2.5-7b.json": 8192,
    "llama-3.1-8b.json": 4096,
    "gemma-2-9b.json": 4096,
}


def registry_entry(i: int) -> dict[str, Any]:
    config, context = list(CONFIGS.items())[i % len(CONFIGS)]
    name = f"model-{i:04d}"
    deployments: dict[str, Any] = {"dev": {}}
    if i % 2 == 0:
        canary = [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 10}]
        deployments["staging"] = {"variants": canary} if i % 4 == 0 else {"max_replicas": 3}
    if i % 3 == 0:
        deployments["prod"] = {"min_replicas": 2, "max_replicas": 4}
    out: dict[str, Any] = {
        "name": name,
        "owner": f"team-{i % 17}",
        "description": f"Generated model {i} for the registry benchmark.",
        "task": "text-generation",
        "source": {"config": f"configs/{config}"},
        "versions": {v: {"huggingface": {"repo": f"org/{name}", "revision": f"{i:040x}"}} for v in ("v1", "v2")},
        "serving": {
            "runtime": ("vllm", "tgi", "lmi")[i % 3],
            "platform": "eks" if i % 5 == 0 and "prod" not in deployments else None,
            # EKS pools here are single 24 GiB GPUs: quantise what runs there.
            "dtype": "int8" if i % 5 == 0 else ("bf16", "fp16", "int8")[i % 3],
            "max_context": context,
            "concurrency": 2,
            "min_replicas": 1,
            "max_replicas": 2,
            "variants": [{"version": "v2", "weight": 100}],
        },
        "deployments": deployments,
        "monitoring": {"slo": {"p95_latency_ms": 2000 + i, "error_rate": 0.01}},
        "compliance": {
            "licence": "apache-2.0",
            "model_card": f"https://example.com/{name}",
            "evaluation": [{"suite": "assistant-basics", "metric": "accuracy", "threshold": 0.5}],
        },
        "tags": {"cost-center": f"cc-{i % 7}"},
    }
    if out["serving"]["platform"] is None:
        del out["serving"]["platform"]
    if i % 7 == 0:
        out["training"] = {
            "base_model": f"org/{name}",
            "dataset": {"uri": f"s3://datasets/{name}/", "version": "2025-07-01"},
            "hyperparameters": {"epochs": 2, "learning_rate": 0.0002, "method": "lora"},
            "spot": True,
            "max_runtime": 7200,
            "checkpoint": f"s3://checkpoints/{name}/",
        }
    return out


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    """Median wall time of `repeats` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def cpu_timed(fn: Any, repeats: int) -> tuple[float, float, Any]:
    """Median wall and CPU time: on a shared machine the CPU time is the steadier number."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def bench_validation(stacks: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        shutil.copytree(ROOT / "models" / "configs", models / "configs")
        shutil.copytree(ROOT / "models" / "evals", models / "evals")
        for i in range(FILES):
            text = yaml.safe_dump(registry_entry(i), sort_keys=False)
            (models / f"model-{i:04d}.yaml").write_text(f"{SCHEMA_HEADER}\n{text}")

        seconds, cpu, (registry, problems) = cpu_timed(lambda: validate(models, stacks), REPEATS)
        assert not problems, "\n".join(map(str, problems[:5]))
        assert len(registry.models) == FILES
        print(
            f"validate           {FILES} files: {seconds:.3f} s wall, {cpu:.3f} s CPU "
            f"({seconds / FILES * 1e3:.2f} ms/file, goal < 2 s)"
        )

        first = time.perf_counter()
        check_registry(models, stacks)  # loads each config once (cached after)
        first_s = time.perf_counter() - first
        seconds, cpu, (_, problems) = cpu_timed(lambda: check_registry(models, stacks), REPEATS)
        assert not problems, "\n".join(map(str, problems[:5]))
        deployments = sum(len(m.deployments) for m in registry.models.values())
        print(
            f"validate + sizing  {FILES} files, {deployments} deployments: {seconds:.3f} s wall, {cpu:.3f} s CPU "
            f"warm; {first_s:.3f} s first run (goal < 2 s)"
        )


def bench_sizing() -> None:
    print("sizing per shipped config (load with AutoConfig uncached + size for SageMaker), goal < 50 ms:")
    load = sizing_config._load_file.__wrapped__  # bypass the per-file cache: time the real load
    configs = sorted((ROOT / "models" / "configs").glob("*.json"))
    for path in configs[:3] if QUICK else configs:
        arch_context = None

        def once(path: Path = path) -> sizing.SizingResult:
            nonlocal arch_context
            config = load(str(path), 0)
            if arch_context is None:
                arch_context = min(2048, sizing.architecture(config).max_positions or 2048)
            return sizing.size_model(
                config, name=path.stem, dtype="bf16", context=arch_context, concurrency=4, platform="sagemaker"
            )

        start = time.perf_counter()
        once()
        first = time.perf_counter() - start
        seconds, result = timed(once, SIZING_REPEATS)
        print(
            f"  {path.stem:<16} {seconds * 1e3:6.1f} ms  (first {first * 1e3:7.1f} ms)  "
            f"{result.parameters / 1e9:6.2f} B params -> {result.instance_type} x tp{result.tensor_parallel}"
        )


def main() -> None:
    print(f"import transformers config support (and torch): {IMPORT_S:.2f} s, once per process")
    stacks = load_all_stacks(ROOT / "stacks")
    bench_sizing()
    bench_validation(stacks)


if __name__ == "__main__":
    main()
