"""Sizing: exactness over every causal-LM architecture, its speed, and its picks beside a publisher's.

1. Every causal-LM config class in transformers (MODEL_FOR_CAUSAL_LM_MAPPING) at its
   defaults: constructed, built on the meta device (the truth), and counted by the sizer
   with an empty cache. Prints how many architectures there are, how many transformers
   can construct and build, and the share the sizer counts within 0.1 % (goal: 100 %).
   Classes transformers itself cannot construct or build at defaults are listed by name.
2. Per model (the shipped configs and the published ones under models/configs/): sizing
   p50 warm (in-process caches hot), the cold meta path (empty cache: import paid, build
   paid) and a cache hit (a fresh process's view: only the JSON file).
3. Per model: the instance picked (bf16, 4096 tokens x 4 sequences, vLLM, SageMaker) and
   its $/h beside the AWS LMI guide's recommended instance for the model's size class, and
   whether our sizing finds that recommendation holds the replica. Reference:
   https://docs.djl.ai/docs/serving/serving/docs/lmi/deployment_guide/instance-type-selection.html
   ("~7B: ml.g5.2xlarge, ~13B/~20B: ml.g5.12xlarge, ~35B/~70B: ml.g5.48xlarge", half
   precision). Per-model SageMaker JumpStart defaults were not findable offline: unknown.
   Models outside the guide's classes (under 5B) have no reference.

    .venv/bin/python benchmarks/bench_sizing.py [--quick]
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["LLMOPS_SIZING_CACHE"] = str(Path(tempfile.mkdtemp()) / "parameters.json")

from transformers import CONFIG_MAPPING  # noqa: E402
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from benchmarks.quick import quick  # noqa: E402
from llmops.catalog import load_catalog  # noqa: E402
from llmops.sizing import SizingError, load_config, parameter_count, params, size_model  # noqa: E402
from llmops.sizing.params import build_on_meta  # noqa: E402

hf_logging.set_verbosity(40)
QUICK = quick()  # quick mode: 3 architectures and 3 configs, to prove the script runs
CONFIGS = ROOT / "models" / "configs"
# The published configs added for this benchmark (values from the models' config.json as the
# transformers docs and model cards give them), beside the registry's shipped ones.
PUBLISHED = {
    "qwen3-8b": "Qwen/Qwen3-8B",
    "qwen3-30b-a3b": "Qwen/Qwen3-30B-A3B",
    "phi-4": "microsoft/phi-4",
    "mistral-nemo-12b": "mistralai/Mistral-Nemo-Instruct-2407",
    "falcon-7b": "tiiuae/falcon-7b",
    "deepseek-v2-lite": "deepseek-ai/DeepSeek-V2-Lite",
    "mamba-2.8b": "state-spaces/mamba-2.8b-hf",
    "olmo-2-7b": "allenai/OLMo-2-1124-7B",
    "gemma-3-1b": "google/gemma-3-1b-it",
    "gemma-2-27b": "google/gemma-2-27b",
    "llama-3.2-3b": "meta-llama/Llama-3.2-3B",
    "jamba-mini-1.5": "ai21labs/AI21-Jamba-Mini-1.5",
}
# The LMI guide's size classes: (upper bound in billions, recommended SageMaker instance).
LMI_GUIDE = ((5.0, None), (10.0, "ml.g5.2xlarge"), (27.0, "ml.g5.12xlarge"), (100.0, "ml.g5.48xlarge"))


def truth(config: Any) -> int:
    model = build_on_meta(config)
    return sum({id(p): p.numel() for p in model.parameters()}.values())


def sweep() -> None:
    types = sorted(t for t in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES if t in CONFIG_MAPPING)
    types = ["gpt2", "llama", "mamba"] if QUICK else types
    no_config, no_build, exact, off = [], [], [], []
    cold: list[float] = []
    started = time.perf_counter()
    for model_type in types:
        try:
            config = CONFIG_MAPPING[model_type]()
        except Exception:
            no_config.append(model_type)
            continue
        try:
            expected = truth(config)
        except Exception:
            no_build.append(model_type)
            with contextlib.suppress(SizingError):  # the sizer says so, located at the config
                parameter_count(config)
            continue
        params._memory.clear()
        t0 = time.perf_counter()
        counted = parameter_count(config).total
        cold.append(time.perf_counter() - t0)
        (exact if abs(counted - expected) <= 0.001 * expected else off).append(model_type)
    built = len(exact) + len(off)
    print("== every causal-LM config class in transformers, at its defaults")
    print(f"  architectures (MODEL_FOR_CAUSAL_LM_MAPPING)   {len(types)}")
    print(f"  default config constructs                     {len(types) - len(no_config)}")
    print(f"  builds on the meta device                     {built}")
    share = f"{len(exact)} / {built} = {len(exact) / built:.1%}"
    print(f"  sized within 0.1 % of the meta build          {share}  (goal 100 %)")
    print(f"  off by more than 0.1 %                        {off or 'none'}")
    print(f"  config class needs arguments (transformers)   {no_config or 'none'}")
    print(f"  transformers cannot build at its defaults     {no_build or 'none'}")
    print(f"  cold count per architecture p50 / max         {statistics.median(cold) * 1e3:.0f} ms / {max(cold):.2f} s")
    print(f"  sweep wall time                               {time.perf_counter() - started:.1f} s")


def p50(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def reference(billions: float) -> str | None:
    return next((instance for bound, instance in LMI_GUIDE if billions < bound), None)


def models() -> None:
    names = sorted(p.stem for p in CONFIGS.glob("*.json"))
    names = ["gpt2", "llama-3.1-8b", "mamba-2.8b"] if QUICK else names
    catalog = load_catalog()
    args: dict[str, Any] = {"dtype": "bf16", "context": 4096, "concurrency": 4, "platform": "sagemaker"}
    print("\n== per model: timing (ms, p50) and the pick (bf16, 4096 x 4, vllm, sagemaker)")
    header = (
        f"  {'model':18} {'params':>8} {'src':>7} {'warm':>6} {'cold':>7} {'hit':>6}  "
        f"{'picked':16} {'$/h':>7}  {'LMI guide':16} {'$/h':>7} {'fits?':>5} {'saving':>7}  would fit if"
    )
    print(header)
    for name in names:
        config = load_config(CONFIGS / f"{name}.json")
        context = min(4096, getattr(config, "max_position_embeddings", 4096) or 4096)
        run = {**args, "context": context}

        params._memory.clear()
        Path(os.environ["LLMOPS_SIZING_CACHE"]).unlink(missing_ok=True)
        t0 = time.perf_counter()
        count = parameter_count(config)
        cold = time.perf_counter() - t0
        source = count.source
        params._memory.clear()  # a new process: only the JSON file
        t0 = time.perf_counter()
        parameter_count(config)
        hit = time.perf_counter() - t0
        try:
            warm = p50(lambda c=config, r=run, n=name: size_model(c, name=n, **r), 20)
            result = size_model(config, name=name, **run)
        except SizingError as exc:
            print(f"  {name:18} {count.total / 1e9:7.2f}B {source:>7}  {exc}")
            continue
        ref = reference(count.total / 1e9)
        ref_cell, ref_price, fits, saving = "unknown", "", "", ""
        if ref is not None:
            ref_price = f"{catalog.get(ref).hourly_usd:.3f}"
            try:
                size_model(config, name=name, instance=ref, **run)
                fits = "yes"
            except SizingError:
                fits = "NO"
            saving = f"{1 - result.hourly_usd / catalog.get(ref).hourly_usd:+.0%}"
            ref_cell = ref
        alt = result.explanation.would_fit_if if result.explanation else None
        alt_text = f"{alt.dtype} on {alt.instance_type} ${alt.hourly_usd:.3f}" if alt else "-"
        print(
            f"  {name:18} {count.total / 1e9:7.2f}B {source:>7} {warm * 1e3:6.2f} {cold * 1e3:7.1f} {hit * 1e3:6.2f}  "
            f"{result.instance_type:16} {result.hourly_usd:7.3f}  {ref_cell:16} {ref_price:>7} {fits:>5} {saving:>7}  "
            f"{alt_text}"
        )
    print("  published configs:", ", ".join(f"{k} = {v}" for k, v in PUBLISHED.items()))
    print("  cold: first count with an empty cache (formula types never build); hit: JSON cache, fresh process view")
    print("  saving: 1 - picked $/h / the guide's $/h (positive: cheaper than the recommendation)")


if __name__ == "__main__":
    sweep()
    models()
