"""How the AWS program's cost grows with the registry: the Platform under Pulumi mocks.

Generates registries of 1, 10, 100 and 500 models (SageMaker TGI and LMI
endpoints, EKS vLLM endpoints with A/B variants, one model in ten fine-tuned
by a SageMaker pipeline, one in twenty by a Kubernetes Job), loads each with
the real validator, and runs the whole Platform for the prod stack under the
recording mocks of `tests/mocks`. Prints, per size: seconds for the Platform,
resources registered, resources per model, and milliseconds per model, plus
the marginal cost of a model over the one-model run. Imports and the first
run's caches (sizing configs, the sagemaker SDK) are paid once, before timing.
Goal: the cost per model stays flat, under 50 ms per model at 500.

    .venv/bin/python benchmarks/bench_mocks.py [--quick] [sizes...]   (quick: 1 and 5 models)
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.quick import quick  # noqa: E402
from llmops.registry import SCHEMA_HEADER, load_registry  # noqa: E402
from llmops.settings import load_all_stacks  # noqa: E402
from tests.mocks.harness import run_platform  # noqa: E402

STACK = "prod"
QUICK = quick()
SIZES = (1, 5) if QUICK else (1, 10, 100, 500)
GOAL_MS = 50.0
SHA = "0123456789abcdef0123456789abcdef01234567"
CONFIGS = ("qwen2.5-7b.json", "mistral-7b-v0.3.json", "llama-3.1-8b.json", "tinyllama-1.1b.json")


def _model(i: int) -> str:
    name = f"bench-model-{i:04d}"
    kind = i % 10
    runtime, platform = ("vllm", "eks") if kind in (2, 5) else (("lmi" if kind % 3 else "tgi"), "sagemaker")
    variants = (
        f"    - {{version: v{i % 7}, weight: 80}}\n    - {{version: v{i % 7 + 1}, weight: 20}}\n"
        if kind % 2
        else f"    - {{version: v{i % 5}, weight: 100}}\n"
    )
    training = ""
    if kind == 0:
        training = (
            "training:\n  base_model: org/base\n  dataset: {uri: 's3://bench-data/d/', version: '1'}\n"
            "  instance: ml.g5.2xlarge\n  max_runtime: 3600\n  checkpoint: s3://bench-checkpoints/c/\n"
        )
    elif i % 20 == 5:
        training = (
            "training:\n  base_model: org/base\n  platform: eks\n  dataset: {uri: 's3://bench-data/d/', version: '1'}\n"
            "  instance: g5.2xlarge\n  max_runtime: 3600\n  checkpoint: s3://bench-checkpoints/c/\n"
        )
    return f"""{SCHEMA_HEADER}
name: {name}
owner: team-{i % 13}
description: Benchmark model {i}.
task: text-generation
source:
  config: configs/{CONFIGS[i % len(CONFIGS)]}
versions:
{"".join(f'  v{v}: {{huggingface: {{repo: org/{name}, revision: "{SHA}"}}}}' + chr(10) for v in range(8))}serving:
  runtime: {runtime}
  platform: {platform}
  dtype: bf16
  max_context: 2048
  concurrency: 2
  min_replicas: 1
  max_replicas: 3
  variants:
{variants}deployments:
  prod: {{}}
{training}monitoring:
  slo: {{p95_latency_ms: 2000, error_rate: 0.01}}
compliance:
  licence: apache-2.0
  model_card: docs/model-cards/{name}.md
  evaluation:
    - {{suite: assistant-basics, metric: accuracy, threshold: 0.5}}
"""


def _registry_root(count: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"bench-mocks-{count}-"))
    (root / "models" / "configs").mkdir(parents=True)
    for config in CONFIGS:
        shutil.copy(ROOT / "models" / "configs" / config, root / "models" / "configs" / config)
    shutil.copytree(ROOT / "models" / "evals", root / "models" / "evals")  # the gates' suites
    for i in range(count):
        (root / "models" / f"bench-model-{i:04d}.yaml").write_text(_model(i))
    return root


def _run(count: int, stacks: dict) -> tuple[float, float, float, int]:
    root = _registry_root(count)
    try:
        started = time.perf_counter()
        registry = load_registry(root / "models", stacks)
        load_s = time.perf_counter() - started
        asyncio.set_event_loop(asyncio.new_event_loop())
        gc.collect()
        loaded, cpu = time.perf_counter(), time.process_time()
        graph = run_platform(STACK, stacks[STACK], registry, root)
        done = time.perf_counter()
        return load_s, done - loaded, time.process_time() - cpu, len(graph.resources)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(sizes: tuple[int, ...]) -> None:
    stacks = load_all_stacks(ROOT / "stacks")
    warm = time.perf_counter()
    _run(2 if QUICK else 20, stacks)  # imports, SDK tables and sizing configs: paid once per process
    print(f"warm-up (imports, caches): {time.perf_counter() - warm:.1f} s")
    # Wall time on a shared machine includes other processes' load; CPU time of this process does not.
    print(
        f"{'models':>7} {'load s':>7} {'platform s':>10} {'cpu s':>7} {'resources':>9} {'res/model':>9}"
        f" {'ms/model':>8} {'marginal res/model':>18} {'marginal ms/model':>17}"
    )
    base: tuple[int, float, int] | None = None
    for count in sizes:
        load_s, platform_s, cpu_s, resources = _run(count, stacks)
        row = (
            f"{count:>7} {load_s:>7.2f} {platform_s:>10.2f} {cpu_s:>7.2f} {resources:>9} {resources / count:>9.1f}"
            f" {platform_s / count * 1000:>8.1f}"
        )
        if base is not None and count > base[0]:
            extra = count - base[0]
            row += f" {(resources - base[2]) / extra:>18.1f} {(platform_s - base[1]) / extra * 1000:>17.1f}"
        print(row, flush=True)
        if base is None:
            base = (count, platform_s, resources)
    largest = max(sizes)
    print(f"goal: ms/model flat, under {GOAL_MS:.0f} ms per model at 500 (largest run here: {largest} models)")


if __name__ == "__main__":
    main(tuple(int(a) for a in sys.argv[1:]) or SIZES)
