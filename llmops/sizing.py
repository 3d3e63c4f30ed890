"""GPU sizing from a transformers config: parameters, memory, instance choice.

The config is loaded with transformers (`AutoConfig`), from the registry's local
`models/configs/*.json`, or from the hub at the pinned revision when the hub is
reachable (`HF_HUB_OFFLINE` unset). Parameters are counted from the config's
shapes, never by building the model, so sizing stays fast enough for every preview.

Memory model, per replica (GiB = 2**30 bytes):

    weights  = parameters x bytes per parameter of the serving dtype
               (fp32 4, bf16/fp16 2, fp8/int8 1, int4 0.5; every weight at that dtype)
    kv_cache = 2 (K and V) x layers x kv_heads x head_dim x KV bytes x max_context x concurrency
               (KV in the serving dtype; int8/int4 weights keep a 16-bit cache, fp8 an 8-bit one;
               every layer holds the full context, even where a model uses sliding windows)
    overhead = 1 GiB (CUDA context, runtime, communication buffers)
               + 10 % of (weights + kv_cache) (activations, allocator fragmentation)
    total    = weights + kv_cache + overhead

An instance fits at tensor-parallel degree tp when total <= 0.9 x GPU memory x tp,
with tp a power of two no larger than the instance's GPU count that divides both
the attention heads and the KV heads. Among fitting instances the cheapest wins,
then the one with fewer GPUs, then the smaller tp.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llmops.catalog import InstanceType, load_catalog
from llmops.registry import Deployment, Dtype, ModelEntry, Source

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from llmops.settings import StackSettings

SizingPlatform = Literal["sagemaker", "ec2", "local"]

GIB = 2**30
BYTES_PER_PARAMETER: dict[str, float] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
# Weight-only quantisation (int8/int4) still computes attention in 16 bits; fp8 serving quantises the cache too.
KV_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 2, "int4": 2}
USABLE_FRACTION = 0.9
OVERHEAD_FIXED_GIB = 1.0
OVERHEAD_FRACTION = 0.10
# TGI, vLLM and LMI's default images need CUDA; Inferentia needs a Neuron build of the model,
# which only the LMI (neuronx) runtime provides. Auto sizing therefore never picks Inferentia.
NEURON_RUNTIMES = frozenset({"lmi"})
DEFAULT_CONTEXT = 4096
DEFAULT_CONCURRENCY = 4


class SizingError(ValueError):
    """Nothing in the catalog fits, or an explicit instance is too small.

    `key` names the serving setting to change ("config", "max_context" or "instance"),
    so `llmops registry validate` can point at that line.
    """

    def __init__(self, message: str, *, key: str = "instance"):
        super().__init__(message)
        self.key = key


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
    max_context: int = 0
    concurrency: int = 0
    platform: str = ""
    usable_gib: float = 0.0  # USABLE_FRACTION x gpu_memory_gib x tensor_parallel

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON; GiB and dollars rounded for people to read."""
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


# --------------------------------------------------------------------------- the config


def hub_offline() -> bool:
    """huggingface_hub's own reading of HF_HUB_OFFLINE."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@lru_cache(maxsize=128)
def _load_file(path: str, mtime_ns: int) -> PretrainedConfig:
    from transformers import AutoConfig

    config: PretrainedConfig = AutoConfig.from_pretrained(path)
    return config


@lru_cache(maxsize=32)
def _load_hub(repo: str, revision: str) -> PretrainedConfig | None:
    from transformers import AutoConfig

    try:
        config: PretrainedConfig = AutoConfig.from_pretrained(repo, revision=revision)
    except Exception:  # unreachable, gated, unknown, any hub client error: the shipped copy stands in
        return None
    return config


def load_config(path: Path) -> PretrainedConfig:
    """A transformers config from a config.json (or a folder holding one), cached per file version."""
    try:
        resolved = path.resolve()
        return _load_file(str(resolved), resolved.stat().st_mtime_ns)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SizingError(f"cannot load the transformers config {path}: {first}", key="config") from None


def model_config(source: Source, models_dir: Path) -> PretrainedConfig:
    """The hub config at the pinned revision when online, else the registry's local copy."""
    hf = source.huggingface
    if hf is not None and hf.pinned and not hub_offline():
        config = _load_hub(hf.repo, hf.revision)
        if config is not None:
            return config
    return load_config(models_dir / source.config)


# --------------------------------------------------------------------------- parameters

# Families whose shapes differ from the Llama pattern (rotary positions, RMSNorm,
# gated MLP, no biases). Unknown causal LMs are counted with the Llama pattern.
_GPT2_LIKE = frozenset({"gpt2"})  # learned positions, LayerNorm with bias, 2-matrix MLP, biases everywhere
_QKV_BIAS = frozenset({"qwen2", "qwen2_moe"})  # q/k/v projections carry a bias, the output one does not
_FOUR_NORMS = frozenset({"gemma2", "gemma3_text"})  # pre- and post-norms around attention and MLP


@dataclass(frozen=True)
class Architecture:
    """The shapes that decide parameter count and KV-cache size."""

    model_type: str
    vocab_size: int
    hidden_size: int
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    experts: int  # MoE experts per layer (1: dense)
    gated_mlp: bool  # gate, up and down matrices (SwiGLU/GeGLU) instead of up and down
    tied_embeddings: bool
    learned_positions: int  # rows of a learned position table (0: rotary)
    norms_per_layer: int
    norm_bias: bool  # LayerNorm (weight and bias) instead of RMSNorm (weight)
    qkv_bias: bool
    out_bias: bool
    mlp_bias: bool
    max_positions: int | None

    @property
    def kv_elements_per_token(self) -> int:
        """K and V elements one token adds to the cache, over all layers."""
        return 2 * self.layers * self.kv_heads * self.head_dim


def _positive_int(config: Any, name: str) -> int | None:
    value = getattr(config, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def architecture(config: Any) -> Architecture:
    """Shapes of a decoder-only transformers config."""
    model_type = str(getattr(config, "model_type", "") or "")
    required = {n: _positive_int(config, n) for n in ("vocab_size", "hidden_size", "num_hidden_layers")}
    heads = _positive_int(config, "num_attention_heads")
    missing = [n for n, v in {**required, "num_attention_heads": heads}.items() if v is None]
    if missing or heads is None:
        raise SizingError(
            f"the {model_type or 'unknown'} config lacks {', '.join(missing)}: not a decoder LM config", key="config"
        )
    hidden = required["hidden_size"] or 0
    gpt2_like = model_type in _GPT2_LIKE
    attention_bias = bool(getattr(config, "attention_bias", False))
    kv_heads = _positive_int(config, "num_key_value_heads") or heads
    if heads % kv_heads:
        raise SizingError(
            f"num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})", key="config"
        )
    return Architecture(
        model_type=model_type,
        vocab_size=required["vocab_size"] or 0,
        hidden_size=hidden,
        layers=required["num_hidden_layers"] or 0,
        attention_heads=heads,
        kv_heads=kv_heads,
        head_dim=_positive_int(config, "head_dim") or hidden // heads,
        intermediate_size=_positive_int(config, "intermediate_size") or _positive_int(config, "n_inner") or 4 * hidden,
        experts=_positive_int(config, "num_local_experts") or 1,
        gated_mlp=not gpt2_like,
        tied_embeddings=bool(getattr(config, "tie_word_embeddings", True)),
        learned_positions=(_positive_int(config, "max_position_embeddings") or 0) if gpt2_like else 0,
        norms_per_layer=4 if model_type in _FOUR_NORMS else 2,
        norm_bias=gpt2_like,
        qkv_bias=gpt2_like or attention_bias or model_type in _QKV_BIAS,
        out_bias=gpt2_like or attention_bias,
        mlp_bias=gpt2_like or bool(getattr(config, "mlp_bias", False)),
        max_positions=_positive_int(config, "max_position_embeddings"),
    )


def count_parameters(arch: Architecture) -> int:
    """Total parameters (every expert of an MoE counts: all of them sit in GPU memory)."""
    h, inter = arch.hidden_size, arch.intermediate_size
    q_dim, kv_dim = arch.attention_heads * arch.head_dim, arch.kv_heads * arch.head_dim
    attention = h * q_dim + 2 * h * kv_dim + q_dim * h
    attention += (q_dim + 2 * kv_dim if arch.qkv_bias else 0) + (h if arch.out_bias else 0)
    matrices = 3 if arch.gated_mlp else 2
    expert = matrices * h * inter + ((matrices - 1) * inter + h if arch.mlp_bias else 0)
    mlp = arch.experts * expert + (h * arch.experts if arch.experts > 1 else 0)  # + the router
    norm = 2 * h if arch.norm_bias else h
    layer = attention + mlp + arch.norms_per_layer * norm
    embeddings = arch.vocab_size * h * (1 if arch.tied_embeddings else 2) + arch.learned_positions * h
    return arch.layers * layer + norm + embeddings


# --------------------------------------------------------------------------- memory and instances


@dataclass(frozen=True)
class MemoryNeed:
    parameters: int
    weights_gib: float
    kv_cache_gib: float
    overhead_gib: float

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_cache_gib + self.overhead_gib


def memory_need(arch: Architecture, dtype: str, context: int, concurrency: int) -> MemoryNeed:
    """Weights, KV cache and overhead of one replica (formulas in the module docstring)."""
    if dtype not in BYTES_PER_PARAMETER:
        raise SizingError(f"unknown dtype {dtype!r} (one of {', '.join(BYTES_PER_PARAMETER)})")
    parameters = count_parameters(arch)
    weights = parameters * BYTES_PER_PARAMETER[dtype] / GIB
    kv_cache = arch.kv_elements_per_token * KV_BYTES[dtype] * context * concurrency / GIB
    overhead = OVERHEAD_FIXED_GIB + OVERHEAD_FRACTION * (weights + kv_cache)
    return MemoryNeed(parameters, weights, kv_cache, overhead)


def tensor_parallel_degrees(instance: InstanceType, arch: Architecture) -> Iterator[int]:
    """Powers of two up to the instance's accelerators that split the heads evenly, smallest first."""
    tp = 1
    while tp <= instance.gpus:
        if arch.attention_heads % tp == 0 and arch.kv_heads % tp == 0:
            yield tp
        tp *= 2


def usable_gib(instance: InstanceType, tp: int) -> float:
    return USABLE_FRACTION * instance.gpu_memory_gib * tp


def _fit(instance: InstanceType, arch: Architecture, total_gib: float) -> int | None:
    """The smallest tensor-parallel degree at which `instance` holds the replica."""
    return next((tp for tp in tensor_parallel_degrees(instance, arch) if total_gib <= usable_gib(instance, tp)), None)


def _capacity(instance: InstanceType, arch: Architecture) -> float:
    return max((usable_gib(instance, tp) for tp in tensor_parallel_degrees(instance, arch)), default=0.0)


def _runs(instance: InstanceType, runtime: str) -> str | None:
    """Why `runtime` cannot serve on `instance`, or None."""
    if instance.gpus == 0:
        return f"{instance.name} has no accelerator"
    if instance.accelerator.startswith("Inferentia") and runtime not in NEURON_RUNTIMES:
        return f"{instance.name} has {instance.accelerator} (Neuron), but runtime {runtime} needs CUDA GPUs"
    return None


def _describe(need: MemoryNeed, name: str, dtype: str, context: int, concurrency: int) -> str:
    return (
        f"{name} needs {need.total_gib:.1f} GiB ({need.weights_gib:.1f} weights at {dtype} + "
        f"{need.kv_cache_gib:.1f} KV cache for {context} x {concurrency} tokens + {need.overhead_gib:.1f} overhead)"
    )


def size_model(
    config: Any,
    *,
    name: str,
    dtype: str,
    context: int,
    concurrency: int,
    platform: SizingPlatform,
    runtime: str = "vllm",
    instance: str = "auto",
    allowed: Collection[str] | None = None,
) -> SizingResult:
    """Size one replica of `config` and choose where it runs.

    `instance` other than auto is used as given (SizingError when it cannot hold the
    replica); `allowed`, when given, restricts the automatic choice.
    """
    arch = architecture(config)
    if context < 1 or concurrency < 1:
        raise SizingError(f"context ({context}) and concurrency ({concurrency}) must be positive", key="max_context")
    if arch.max_positions is not None and context > arch.max_positions:
        raise SizingError(
            f"{name}: max_context {context} exceeds the model's max_position_embeddings ({arch.max_positions})",
            key="max_context",
        )
    need = memory_need(arch, dtype, context, concurrency)
    catalog = load_catalog()

    def result(chosen: InstanceType, tp: int) -> SizingResult:
        return SizingResult(
            model=name,
            parameters=need.parameters,
            dtype=dtype,
            weights_gib=need.weights_gib,
            kv_cache_gib=need.kv_cache_gib,
            overhead_gib=need.overhead_gib,
            total_gib=need.total_gib,
            instance_type=chosen.name,
            accelerator=chosen.accelerator,
            gpus=chosen.gpus,
            tensor_parallel=tp,
            gpu_memory_gib=chosen.gpu_memory_gib,
            hourly_usd=chosen.hourly_usd,
            monthly_usd=round(chosen.monthly_usd, 2),
            max_context=context,
            concurrency=concurrency,
            platform=platform,
            usable_gib=usable_gib(chosen, tp),
        )

    if platform == "local":
        # This machine: no bill, one process per replica; the local pool checks the memory itself.
        return result(catalog.get("local"), 1)

    if instance != "auto":
        try:
            chosen = catalog.get(instance)
        except KeyError:
            raise SizingError(f"{name}: unknown instance type {instance!r}") from None
        if chosen.platform != platform:
            raise SizingError(
                f"{name}: {instance} is a {chosen.platform} instance type, the endpoint runs on {platform}"
            )
        reason = _runs(chosen, runtime)
        if reason:
            raise SizingError(f"{name}: {reason}")
        tp = _fit(chosen, arch, need.total_gib)
        if tp is None:
            raise SizingError(
                f"{_describe(need, name, dtype, context, concurrency)}; {instance} holds "
                f"{_capacity(chosen, arch):.1f} GiB usable ({chosen.gpus} x {chosen.gpu_memory_gib:g} GiB "
                f"{chosen.accelerator} x {USABLE_FRACTION})"
            )
        return result(chosen, tp)

    candidates = [
        i
        for i in catalog.for_platform(platform)
        if _runs(i, runtime) is None and i.gpus and not i.accelerator.startswith("Inferentia")
        if allowed is None or i.name in allowed
    ]
    fits = [(i, tp) for i in candidates for tp in [_fit(i, arch, need.total_gib)] if tp is not None]
    if fits:
        chosen, tp = min(fits, key=lambda f: (f[0].hourly_usd, f[0].gpus, f[1], f[0].name))
        return result(chosen, tp)
    scope = f"{platform} instance" + (" allowed here" if allowed is not None else "")
    if not candidates:
        raise SizingError(f"{_describe(need, name, dtype, context, concurrency)}; no GPU {scope}")
    largest = max(candidates, key=lambda i: (_capacity(i, arch), -i.hourly_usd))
    raise SizingError(
        f"{_describe(need, name, dtype, context, concurrency)}; the largest {scope}, {largest.name}, holds "
        f"{_capacity(largest, arch):.1f} GiB usable ({largest.gpus} x {largest.gpu_memory_gib:g} GiB x "
        f"{USABLE_FRACTION}): lower max_context, concurrency or dtype"
    )


def size_deployment(
    deployment: Deployment, models_dir: Path, platform: SizingPlatform, allowed: Collection[str] | None = None
) -> SizingResult:
    """Size a model as one environment deploys it (its instance override included)."""
    model = deployment.model
    serving = model.serving
    return size_model(
        model_config(model.source, models_dir),
        name=model.name,
        dtype=serving.dtype,
        context=serving.max_context,
        concurrency=serving.concurrency,
        platform=platform,
        runtime=serving.runtime,
        instance=deployment.instance,
        allowed=allowed,
    )


# --------------------------------------------------------------------------- stacks


def stack_platform(deployment: Deployment, settings: StackSettings) -> SizingPlatform:
    """Where a stack runs a deployment: SageMaker ml.* types, EKS nodes (EC2 types) or this machine."""
    if settings.target == "local":
        return "local"
    return "ec2" if (deployment.platform or settings.default_endpoint_platform) == "eks" else "sagemaker"


def stack_allowed(deployment: Deployment, settings: StackSettings) -> list[str] | None:
    """Instance types a stack lets auto sizing choose for a deployment (None: any).

    EKS endpoints land on the stack's GPU pools, so only the pools' types qualify;
    the stack policy's allowlist narrows both platforms.
    """
    policy = settings.policy.allowed_instance_types
    if stack_platform(deployment, settings) == "ec2":
        pooled = [t for pool in settings.cluster.gpu_pools for t in pool.instance_types]
        return [t for t in dict.fromkeys(pooled) if not policy or t in policy]
    return list(policy) if policy else None


def size_for_stack(deployment: Deployment, settings: StackSettings, models_dir: Path) -> SizingResult:
    """`size_deployment` with the stack's platform and allowed instance types."""
    return size_deployment(
        deployment, models_dir, stack_platform(deployment, settings), stack_allowed(deployment, settings)
    )


def sizing_problems(
    registry: Any, stacks: dict[str, StackSettings], models_dir: Path, only: Collection[str] | None = None
) -> list[Any]:
    """Every deployment that would fail sizing in some stack, located in its registry file.

    `registry` is a `llmops.registry.Registry`; `only` limits the check to those model names.
    """
    problems = []
    for name, entry in sorted(registry.models.items()):
        if only is not None and name not in only:
            continue
        seen: set[str] = set()
        for env in entry.deployments:
            for stack, settings in sorted(stacks.items()):
                if settings.environment != env:
                    continue
                deployment = entry.deployment(env)
                try:
                    size_for_stack(deployment, settings, models_dir)
                except SizingError as exc:
                    message = f"stack {stack}: {exc}"
                    if str(exc) in seen:
                        continue
                    seen.add(str(exc))
                    problems.append(registry.problem(name, _culprit(entry, env, exc), message))
    return problems


def _culprit(entry: ModelEntry, env: str, error: SizingError) -> tuple[int | str, ...]:
    """The registry key a sizing failure is best reported at."""
    if error.key == "config":
        return ("source", "config")
    override = entry.deployments.get(env)
    if error.key == "instance" and override is not None and override.instance:
        return ("deployments", env, "instance")
    if error.key == "instance" and entry.serving.instance != "auto":
        return ("serving", "instance")
    return ("serving", "max_context")  # auto sizing found nothing: context and concurrency drive the need


# --------------------------------------------------------------------------- CLI


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "size",
        help="GPU memory and the cheapest fitting instance for a model",
        description="Size a registry model (its serving settings are the defaults) or a transformers config.json.",
    )
    p.add_argument("model", metavar="MODEL_OR_CONFIG", help="registry model name, or path to a config.json")
    p.add_argument("--dtype", choices=sorted(BYTES_PER_PARAMETER), help="serving dtype (default: the model's, or bf16)")
    p.add_argument(
        "--context", type=int, help=f"tokens per sequence (default: the model's max_context, or {DEFAULT_CONTEXT})"
    )
    p.add_argument("--concurrency", type=int, help="concurrent sequences per replica")
    p.add_argument("--platform", choices=["sagemaker", "ec2", "local"], help="default: the model's, or sagemaker")
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
    runtime, instance = "vllm", args.instance or "auto"
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
            name, runtime = entry.name, serving.runtime
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
    print(format_result(result, architecture(config)))
    return 0


def format_result(r: SizingResult, arch: Architecture) -> str:
    experts = f", {arch.experts} experts" if arch.experts > 1 else ""
    lines = [
        f"{r.model}: {_count(r.parameters)} parameters ({arch.model_type or 'unknown'}{experts}), {r.dtype}",
        f"  weights   {r.weights_gib:9.2f} GiB",
        f"  KV cache  {r.kv_cache_gib:9.2f} GiB  ({r.max_context} tokens x {r.concurrency} sequences, "
        f"{arch.kv_heads} KV heads x {arch.head_dim})",
        f"  overhead  {r.overhead_gib:9.2f} GiB  ({OVERHEAD_FIXED_GIB:g} GiB + {OVERHEAD_FRACTION:.0%} of the above)",
        f"  total     {r.total_gib:9.2f} GiB",
    ]
    if r.platform == "local":
        lines.append("instance: local (this machine; no GPU memory check)")
    else:
        lines += [
            f"instance: {r.instance_type}: {r.gpus} x {r.accelerator} {r.gpu_memory_gib:g} GiB, "
            f"tensor parallel {r.tensor_parallel} ({r.usable_gib:.1f} GiB usable)",
            f"cost:     ${r.hourly_usd:.4g}/h, ${r.monthly_usd:,.2f}/month per replica",
        ]
    return "\n".join(lines)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"
