"""What each serving runtime can run where: precisions per GPU generation, Neuron, memory it leaves.

The support table follows each runtime's published hardware matrix: vLLM's "Supported
Hardware" table for quantization kernels, TGI's quantization guide, the DJL LMI user guide
(its GPU backends are vLLM/lmi-dist, its Neuron backend transformers-neuronx/NxD
Inference) and transformers' quantization overview for the local runtime. Two rules from
the hardware itself hold everywhere: bf16 needs Ampere or newer (T4/V100 serve a bf16
model as fp16, the same bytes), and FP8 needs Ada or Hopper.
"""

from __future__ import annotations

from llmops.catalog import Generation, InstanceType
from llmops.sizing.quantization import WeightFormat

CUDA: frozenset[Generation] = frozenset({"volta", "turing", "ampere", "ada", "hopper"})
TURING_UP: frozenset[Generation] = frozenset({"turing", "ampere", "ada", "hopper"})
AMPERE_UP: frozenset[Generation] = frozenset({"ampere", "ada", "hopper"})
ADA_UP: frozenset[Generation] = frozenset({"ada", "hopper"})
NEURON: frozenset[Generation] = frozenset({"neuron"})

# runtime -> precision -> generations it is served on. "bf16" lists where it runs natively;
# pre-Ampere GPUs serve it as fp16 (see `served_precision`).
_VLLM: dict[str, frozenset[Generation]] = {
    "fp32": CUDA,
    "fp16": CUDA,
    "bf16": CUDA,
    "fp8": ADA_UP,
    "int8": TURING_UP,  # W8A8 / bitsandbytes 8-bit
    "int4": TURING_UP,  # AWQ needs Turing; GPTQ and bitsandbytes 4-bit run from Volta but AWQ is the default 4-bit path
    "mxfp4": AMPERE_UP,
}
SUPPORT: dict[str, dict[str, frozenset[Generation]]] = {
    "vllm": _VLLM,
    # LMI on GPUs serves through vLLM/lmi-dist; on Inferentia through Neuron, which runs 16-bit
    # weights and its own int8 weight quantization only.
    "lmi": {
        **{p: g | (NEURON if p in {"fp16", "bf16", "int8"} else frozenset()) for p, g in _VLLM.items()},
    },
    # TGI's flash-attention kernels need Turing or newer; its FP8 and Marlin/AWQ paths Ampere/Ada.
    "tgi": {
        "fp32": TURING_UP,
        "fp16": TURING_UP,
        "bf16": TURING_UP,
        "fp8": ADA_UP,
        "int8": TURING_UP,  # bitsandbytes / EETQ
        "int4": AMPERE_UP,  # AWQ / GPTQ-Marlin
    },
    # transformers itself: bitsandbytes, GPTQ and AWQ integrations on any CUDA GPU, FP8 on Ada/Hopper.
    "transformers": {
        "fp32": CUDA,
        "fp16": CUDA,
        "bf16": CUDA,
        "fp8": ADA_UP,
        "int8": CUDA,
        "int4": CUDA,
    },
}

# Share of accelerator memory a runtime lets the model, cache and activations use.
USABLE_FRACTION: dict[str, float] = {
    "vllm": 0.90,  # vLLM's gpu_memory_utilization default
    "lmi": 0.90,  # LMI passes option.gpu_memory_utilization (0.9) to its vLLM/lmi-dist backends
    "tgi": 0.90,  # TGI profiles the free memory after a warm-up and keeps a margin; sized like vLLM
    "transformers": 0.80,  # no paged allocator: fragmentation from dynamic caches
}
DEFAULT_USABLE_FRACTION = 0.90

# Runtimes that keep only the window of sliding/chunked layers (vLLM's hybrid KV allocator,
# transformers' sliding cache layers); TGI's paged cache gives every layer the whole context.
WINDOWED_CACHE = frozenset({"vllm", "lmi", "transformers"})
# Runtimes that cache MLA's compressed latent; transformers caches the decompressed K and V.
LATENT_CACHE = frozenset({"vllm", "lmi", "tgi"})

# Decoder families the Neuron runtime (transformers-neuronx / NxD Inference in LMI's neuronx
# image) compiles, from the AWS Neuron model-support pages.
NEURON_ARCHITECTURES = frozenset(
    {"llama", "mistral", "mixtral", "gpt2", "gpt_neox", "gptj", "bloom", "opt", "qwen2", "qwen3", "dbrx"}
)
# Auto sizing never chooses Inferentia: the endpoint components deploy CUDA images. An explicit
# inf2 instance is accepted for LMI, which has a Neuron build.


def usable_fraction(runtime: str) -> float:
    return USABLE_FRACTION.get(runtime, DEFAULT_USABLE_FRACTION)


def served_precision(precision: str, generation: Generation) -> str:
    """The precision a GPU actually runs: bf16 falls back to fp16 before Ampere."""
    if precision == "bf16" and generation in {"volta", "turing"}:
        return "fp16"
    return precision


def unsupported(runtime: str, instance: InstanceType, fmt: WeightFormat, model_type: str) -> str | None:
    """Why `runtime` cannot serve these weights on `instance`, or None when it can."""
    if instance.gpus == 0:
        return f"{instance.name} has no accelerator"
    if instance.generation == "neuron":
        if runtime not in {"lmi"}:
            return f"{instance.name} has {instance.accelerator} (Neuron), but runtime {runtime} needs CUDA GPUs"
        if model_type not in NEURON_ARCHITECTURES:
            return f"the Neuron runtime does not compile {model_type or 'this'} models"
    table = SUPPORT.get(runtime, _VLLM)
    if instance.generation not in table.get(fmt.precision, frozenset()):
        own = fmt.method in {"float", "requested", fmt.precision}
        label = fmt.precision if own else f"{fmt.method} {fmt.precision}"
        return f"{runtime} cannot serve {label} weights on {instance.accelerator} ({instance.generation})"
    return None
