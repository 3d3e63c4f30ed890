"""Memory per replica and the instance that serves it: the cheapest one the runtime can run it on.

Memory model, per replica (GiB = 2**30 bytes):

    weights  = the exact parameter count (params.py) x bytes per weight (quantization.py:
               a float dtype for every weight, or quantized decoder weights plus group scales
               with 16-bit embeddings)
    kv_cache = per-layer cache of one sequence at max_context (kv_cache.py: GQA/MQA heads,
               sliding windows, MLA latents, SSM state) x concurrency x bytes per element
    overhead = 1 GiB (CUDA context, runtime, communication buffers)
               + 10 % of (weights + kv_cache) (activations, allocator fragmentation)
    total    = weights + kv_cache + overhead

An instance fits at tensor-parallel degree tp when total <= usable fraction of the runtime
(runtime.py) x accelerator memory x tp, tp a power of two no larger than the instance's
accelerator count that divides both the attention heads and the KV heads, and the runtime
serves the weights' precision on the instance's GPU generation. The cheapest fitting
instance wins, then the one with fewer accelerators, then the smaller tp.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

from llmops.catalog import InstanceType, load_catalog
from llmops.sizing.architecture import Architecture, architecture
from llmops.sizing.errors import SizingError
from llmops.sizing.kv_cache import KVLayout, kv_layout
from llmops.sizing.params import ParameterCount, parameter_count
from llmops.sizing.quantization import BYTES_PER_PARAMETER, WeightFormat, kv_bytes, weight_format
from llmops.sizing.runtime import LATENT_CACHE, WINDOWED_CACHE, served_precision, unsupported, usable_fraction

SizingPlatform = Literal["sagemaker", "ec2", "local"]

GIB = 2**30
OVERHEAD_FIXED_GIB = 1.0
OVERHEAD_FRACTION = 0.10
# Lower precisions offered as "would fit if", most compact last.
_ALTERNATIVE_DTYPES = ("fp8", "int8", "int4")


@dataclass(frozen=True)
class Alternative:
    """Another instance, at this or another precision, with what it would hold."""

    instance_type: str
    hourly_usd: float
    tensor_parallel: int
    dtype: str
    total_gib: float
    usable_gib: float
    text: str


@dataclass(frozen=True)
class Explanation:
    why: str
    runner_up: Alternative | None = None
    would_fit_if: Alternative | None = None
    rejected: tuple[str, ...] = ()  # cheaper instances and why they were passed over


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
    usable_gib: float = 0.0  # usable_fraction x gpu_memory_gib x tensor_parallel
    runtime: str = ""
    usable_fraction: float = 0.0
    served_dtype: str = ""  # what the accelerator runs: bf16 becomes fp16 before Ampere
    weight_format: str = ""
    parameter_source: str = ""  # formula | meta | cache
    kv_layout: str = ""
    explanation: Explanation | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON; GiB and dollars rounded for people to read."""
        return _rounded(asdict(self))  # type: ignore[no-any-return]


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


@dataclass(frozen=True)
class MemoryNeed:
    parameters: int
    weights_gib: float
    kv_cache_gib: float
    overhead_gib: float
    fmt: WeightFormat
    layout: KVLayout
    count: ParameterCount

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_cache_gib + self.overhead_gib


def memory_need(
    config: Any,
    dtype: str,
    context: int,
    concurrency: int,
    runtime: str = "vllm",
    count: ParameterCount | None = None,
    layout: KVLayout | None = None,
) -> MemoryNeed:
    """Weights, KV cache and overhead of one replica (formulas in the module docstring).

    `count` and `layout`, when given, are the config's own (reused across dtypes).
    """
    fmt = weight_format(config, dtype)
    count = count or parameter_count(config)
    layout = layout or kv_layout(config, windows=runtime in WINDOWED_CACHE, latent=runtime in LATENT_CACHE)
    weights = fmt.weight_bytes(count) / GIB
    kv_cache = layout.elements(context) * concurrency * kv_bytes(fmt, dtype) / GIB
    overhead = OVERHEAD_FIXED_GIB + OVERHEAD_FRACTION * (weights + kv_cache)
    return MemoryNeed(count.total, weights, kv_cache, overhead, fmt, layout, count)


def tensor_parallel_degrees(instance: InstanceType, arch: Architecture) -> Iterator[int]:
    """Powers of two up to the instance's accelerators that split the heads evenly, smallest first."""
    tp = 1
    while tp <= instance.gpus:
        if arch.attention_heads % tp == 0 and arch.kv_heads % tp == 0:
            yield tp
        tp *= 2


def usable_gib(instance: InstanceType, tp: int, runtime: str = "vllm") -> float:
    return usable_fraction(runtime) * instance.gpu_memory_gib * tp


def _fit(instance: InstanceType, arch: Architecture, total_gib: float, runtime: str) -> int | None:
    """The smallest tensor-parallel degree at which `instance` holds the replica."""
    return next(
        (tp for tp in tensor_parallel_degrees(instance, arch) if total_gib <= usable_gib(instance, tp, runtime)), None
    )


def _capacity(instance: InstanceType, arch: Architecture, runtime: str) -> float:
    return max((usable_gib(instance, tp, runtime) for tp in tensor_parallel_degrees(instance, arch)), default=0.0)


def _describe(need: MemoryNeed, name: str, dtype: str, context: int, concurrency: int) -> str:
    return (
        f"{name} needs {need.total_gib:.1f} GiB ({need.weights_gib:.1f} weights at {dtype} + "
        f"{need.kv_cache_gib:.1f} KV cache for {context} x {concurrency} tokens + {need.overhead_gib:.1f} overhead)"
    )


def _holds(instance: InstanceType, arch: Architecture, runtime: str) -> str:
    return (
        f"{_capacity(instance, arch, runtime):.1f} GiB usable ({instance.gpus} x {instance.gpu_memory_gib:g} GiB "
        f"{instance.accelerator} x {usable_fraction(runtime)})"
    )


def _order(instance: InstanceType, tp: int) -> tuple[float, int, int, str]:
    return (instance.hourly_usd, instance.gpus, tp, instance.name)


@dataclass(frozen=True)
class _Candidate:
    instance: InstanceType
    tp: int | None
    reason: str | None  # why it is out, whatever the memory


def _candidates(
    platform: str,
    arch: Architecture,
    need: MemoryNeed,
    runtime: str,
    allowed: Collection[str] | None,
    auto: bool = True,
) -> list[_Candidate]:
    out = []
    for i in load_catalog().for_platform(platform):  # type: ignore[arg-type]
        if i.gpus == 0:
            continue
        reason = unsupported(runtime, i, need.fmt, arch.model_type)
        if reason is None and auto and i.generation == "neuron":
            reason = f"{i.name} is Inferentia: the endpoint images are CUDA builds, so only an explicit choice"
        if reason is None and allowed is not None and i.name not in allowed:
            reason = f"{i.name} is not allowed here"
        out.append(_Candidate(i, None if reason else _fit(i, arch, need.total_gib, runtime), reason))
    return sorted(out, key=lambda c: _order(c.instance, c.tp or 0))


def _alternative(c: _Candidate, need: MemoryNeed, dtype: str, runtime: str, lead: str) -> Alternative:
    assert c.tp is not None
    usable = usable_gib(c.instance, c.tp, runtime)
    text = (
        f"{lead}{c.instance.name} at ${c.instance.hourly_usd:.4g}/h "
        f"({need.total_gib:.1f} of {usable:.1f} GiB usable, tensor parallel {c.tp})"
    )
    return Alternative(c.instance.name, c.instance.hourly_usd, c.tp, dtype, need.total_gib, usable, text)


def _would_fit_if(
    config: Any,
    arch: Architecture,
    need: MemoryNeed,
    dtype: str,
    context: int,
    concurrency: int,
    platform: str,
    runtime: str,
    allowed: Collection[str] | None,
    below: float | None,
) -> Alternative | None:
    """The cheapest instance (cheaper than `below`, when given) a lower precision would fit on."""
    if need.fmt.method not in {"float", "requested"}:
        return None  # a quantized checkpoint's precision is fixed
    best: Alternative | None = None
    current = BYTES_PER_PARAMETER[dtype]
    for alt in _ALTERNATIVE_DTYPES:
        if BYTES_PER_PARAMETER[alt] >= current:
            continue
        alt_need = memory_need(config, alt, context, concurrency, runtime, need.count, need.layout)
        for c in _candidates(platform, arch, alt_need, runtime, allowed):
            if c.tp is None or (below is not None and c.instance.hourly_usd >= below):
                continue
            if best is None or c.instance.hourly_usd < best.hourly_usd:
                best = _alternative(c, alt_need, alt, runtime, f"{alt} would fit on ")
            break
    return best


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
    replica or the runtime cannot serve there); `allowed`, when given, restricts the
    automatic choice.
    """
    arch = architecture(config)
    if context < 1 or concurrency < 1:
        raise SizingError(f"context ({context}) and concurrency ({concurrency}) must be positive", key="max_context")
    if arch.max_positions is not None and context > arch.max_positions:
        raise SizingError(
            f"{name}: max_context {context} exceeds the model's max_position_embeddings ({arch.max_positions})",
            key="max_context",
        )
    need = memory_need(config, dtype, context, concurrency, runtime)
    catalog = load_catalog()

    def result(chosen: InstanceType, tp: int, explanation: Explanation) -> SizingResult:
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
            usable_gib=usable_gib(chosen, tp, runtime),
            runtime=runtime,
            usable_fraction=usable_fraction(runtime),
            served_dtype=served_precision(need.fmt.precision, chosen.generation),
            weight_format=need.fmt.describe(),
            parameter_source=need.count.source,
            kv_layout=need.layout.summary(),
            explanation=explanation,
        )

    if platform == "local":
        # This machine: no bill, one process per replica; the local pool checks the memory itself.
        return result(catalog.get("local"), 1, Explanation("the local target runs on this machine"))

    described = _describe(need, name, dtype, context, concurrency)
    if instance != "auto":
        try:
            chosen = catalog.get(instance)
        except KeyError:
            raise SizingError(f"{name}: unknown instance type {instance!r}") from None
        if chosen.platform != platform:
            raise SizingError(
                f"{name}: {instance} is a {chosen.platform} instance type, the endpoint runs on {platform}"
            )
        reason = unsupported(runtime, chosen, need.fmt, arch.model_type)
        if reason:
            raise SizingError(f"{name}: {reason}")
        tp = _fit(chosen, arch, need.total_gib, runtime)
        if tp is None:
            hint = _would_fit_if(config, arch, need, dtype, context, concurrency, platform, runtime, [instance], None)
            raise SizingError(
                f"{described}; {instance} holds {_holds(chosen, arch, runtime)}" + (f"; {hint.text}" if hint else "")
            )
        why = f"{instance} was set explicitly; it holds {need.total_gib:.1f} GiB at tensor parallel {tp}"
        return result(chosen, tp, Explanation(why))

    candidates = _candidates(platform, arch, need, runtime, allowed)
    fits = sorted((c for c in candidates if c.tp is not None), key=lambda c: _order(c.instance, c.tp or 0))
    if fits:
        best = fits[0]
        assert best.tp is not None
        runner = next((c for c in fits[1:] if c.instance.name != best.instance.name), None)
        rejected = tuple(
            c.reason or f"{c.instance.name} holds {_holds(c.instance, arch, runtime)}"
            for c in candidates
            if c.instance.hourly_usd < best.instance.hourly_usd
        )
        why = (
            f"{best.instance.name} is the cheapest of {len(fits)} {platform} instances that hold "
            f"{need.total_gib:.1f} GiB for {runtime}: {best.tp} x {best.instance.gpu_memory_gib:g} GiB "
            f"{best.instance.accelerator} x {usable_fraction(runtime)} = "
            f"{usable_gib(best.instance, best.tp, runtime):.1f} GiB usable"
        )
        explanation = Explanation(
            why,
            _alternative(runner, need, dtype, runtime, "runner-up: ") if runner else None,
            _would_fit_if(
                config, arch, need, dtype, context, concurrency, platform, runtime, allowed, best.instance.hourly_usd
            ),
            rejected,
        )
        return result(best.instance, best.tp, explanation)

    scope = f"{platform} instance" + (" allowed here" if allowed is not None else "")
    servable = [c for c in candidates if c.reason is None]
    hint = _would_fit_if(config, arch, need, dtype, context, concurrency, platform, runtime, allowed, None)
    suffix = f"; {hint.text}" if hint else ""
    if not servable:
        reasons = "; ".join(list(dict.fromkeys(c.reason or "" for c in candidates))[:3]) or "none in the catalog"
        raise SizingError(f"{described}; no GPU {scope} {runtime} can serve it on ({reasons}){suffix}")
    largest = max(servable, key=lambda c: (_capacity(c.instance, arch, runtime), -c.instance.hourly_usd)).instance
    raise SizingError(
        f"{described}; the largest {scope}, {largest.name}, holds {_holds(largest, arch, runtime)}: "
        f"lower max_context, concurrency or dtype{suffix}"
    )
