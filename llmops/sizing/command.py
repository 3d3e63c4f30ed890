"""`llmops size`: memory, the chosen instance and why, for a registry model or a config.json."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from llmops.registry import Dtype, ModelEntry
from llmops.sizing.architecture import architecture
from llmops.sizing.config import load_config, model_config
from llmops.sizing.errors import SizingError
from llmops.sizing.pick import OVERHEAD_FIXED_GIB, OVERHEAD_FRACTION, SizingResult, size_model
from llmops.sizing.quantization import BYTES_PER_PARAMETER
from llmops.sizing.runtime import SUPPORT

DEFAULT_CONTEXT = 4096
DEFAULT_CONCURRENCY = 4


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "size",
        help="GPU memory and the cheapest fitting instance for a model, and why",
        description="Size a registry model (its serving settings are the defaults) or a transformers config.json.",
    )
    p.add_argument("model", metavar="MODEL_OR_CONFIG", help="registry model name, or path to a config.json")
    p.add_argument(
        "--dtype",
        choices=sorted(BYTES_PER_PARAMETER),
        help="serving dtype; int4/int8/fp8 size quantized weights (default: the model's, or bf16)",
    )
    p.add_argument(
        "--context", type=int, help=f"tokens per sequence (default: the model's max_context, or {DEFAULT_CONTEXT})"
    )
    p.add_argument("--concurrency", type=int, help="concurrent sequences per replica")
    p.add_argument("--platform", choices=["sagemaker", "ec2", "local"], help="default: the model's, or sagemaker")
    p.add_argument("--runtime", choices=sorted(SUPPORT), help="serving runtime (default: the model's, or vllm)")
    p.add_argument("--instance", help="size for this instance type instead of choosing one")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_size)


def _registry_entry(name: str) -> ModelEntry:
    from llmops import paths
    from llmops.errors import UserError
    from llmops.registry import parse_file

    models = paths.models_dir()
    path = models / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"{name!r} is neither a model in {models} nor a config.json file")
    entry, _, problems = parse_file(path, f"models/{path.name}")
    if entry is None:
        raise UserError(f"{problems[0]} (run `llmops registry validate`)")
    return entry


def cmd_size(args: argparse.Namespace) -> int:
    from llmops import paths
    from llmops.errors import UserError

    target = Path(args.model)
    dtype: Dtype | str = args.dtype or "bf16"
    platform: str = args.platform or "sagemaker"
    runtime, instance = args.runtime or "vllm", args.instance or "auto"
    try:
        if target.suffix == ".json" or target.is_file() or os.sep in args.model:
            config = load_config(target)
            name = target.stem
            arch = architecture(config)
            context = args.context or min(DEFAULT_CONTEXT, arch.max_positions or DEFAULT_CONTEXT)
            concurrency = args.concurrency or DEFAULT_CONCURRENCY
        else:
            entry = _registry_entry(args.model)
            serving = entry.serving
            config = model_config(entry.source, paths.models_dir())
            name, runtime = entry.name, args.runtime or serving.runtime
            dtype = args.dtype or serving.dtype
            context = args.context or serving.max_context
            concurrency = args.concurrency or serving.concurrency
            platform = args.platform or ("ec2" if serving.platform == "eks" else "sagemaker")
            instance = args.instance or serving.instance
        result = size_model(
            config,
            name=name,
            dtype=dtype,
            context=context,
            concurrency=concurrency,
            platform=platform,  # type: ignore[arg-type]  # argparse choices
            runtime=runtime,
            instance=instance,
        )
    except SizingError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(format_result(result))
    return 0


def format_result(r: SizingResult) -> str:
    lines = [
        f"{r.model}: {_count(r.parameters)} parameters (counted by {r.parameter_source}), weights {r.weight_format}",
        f"  weights   {r.weights_gib:9.2f} GiB",
        f"  KV cache  {r.kv_cache_gib:9.2f} GiB  ({r.max_context} tokens x {r.concurrency} sequences; {r.kv_layout})",
        f"  overhead  {r.overhead_gib:9.2f} GiB  ({OVERHEAD_FIXED_GIB:g} GiB + {OVERHEAD_FRACTION:.0%} of the above)",
        f"  total     {r.total_gib:9.2f} GiB",
    ]
    if r.platform == "local":
        lines.append("instance: local (this machine; no GPU memory check)")
        return "\n".join(lines)
    lines += [
        f"instance: {r.instance_type}: {r.gpus} x {r.accelerator} {r.gpu_memory_gib:g} GiB, "
        f"tensor parallel {r.tensor_parallel} ({r.usable_gib:.1f} GiB usable at {r.usable_fraction:.0%} "
        f"for {r.runtime}, runs {r.served_dtype})",
        f"cost:     ${r.hourly_usd:.4g}/h, ${r.monthly_usd:,.2f}/month per replica",
    ]
    e = r.explanation
    if e is not None:
        lines.append(f"why:      {e.why}")
        for reason in e.rejected:
            lines.append(f"          passed over: {reason}")
        if e.runner_up:
            lines.append(f"          {e.runner_up.text}")
        if e.would_fit_if:
            lines.append(f"          {e.would_fit_if.text}")
    return "\n".join(lines)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"
