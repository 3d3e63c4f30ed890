"""GPU sizing from a transformers config: exact parameters, KV cache, quantized weights, the instance.

One module per concern, imported one way (store -> config -> architecture -> params -> kv_cache ->
quantization -> runtime -> pick -> result_cache -> stacks -> command):

  store         the caches' JSON files under .state/sizing/
  config        loading the config: the registry's shipped copy (no network), or the hub once for a model without one
  architecture  the shapes that constrain tensor parallelism and context
  params        exact parameter counts: meta-device build, JSON cache, proven formula fast path
  kv_cache      the cache per layer: GQA/MQA, sliding windows, MLA latents, SSM state, shared layers
  quantization  the weights' format from quantization_config or the dtype
  runtime       which runtime serves which precision on which GPU generation; usable memory
  pick          memory per replica and the cheapest instance, with why, runner-up and "would fit if"
  result_cache  sizing results kept by their inputs, so a repeat imports neither transformers nor torch
  stacks        sizing a deployment as a stack runs it; the registry validator's problems
  command       `llmops size`
"""

from __future__ import annotations

from llmops.sizing.architecture import Architecture, architecture
from llmops.sizing.command import DEFAULT_CONCURRENCY, DEFAULT_CONTEXT, add_parser, cmd_size, format_result
from llmops.sizing.config import config_path, hub_offline, load_config, model_config
from llmops.sizing.errors import SizingError
from llmops.sizing.kv_cache import KVLayout, kv_layout
from llmops.sizing.params import ParameterCount, parameter_count
from llmops.sizing.pick import (
    GIB,
    Explanation,
    MemoryNeed,
    SizingPlatform,
    SizingResult,
    memory_need,
    size_model,
    tensor_parallel_degrees,
)
from llmops.sizing.quantization import BYTES_PER_PARAMETER, KV_BYTES, WeightFormat, weight_format
from llmops.sizing.runtime import USABLE_FRACTION, usable_fraction
from llmops.sizing.stacks import (
    size_deployment,
    size_for_stack,
    sizing_problems,
    stack_allowed,
    stack_deployments,
    stack_platform,
)


def count_parameters(config: object) -> int:
    """The exact parameter count of a config (every MoE expert, tied weights once)."""
    return parameter_count(config).total


__all__ = [
    "BYTES_PER_PARAMETER",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_CONTEXT",
    "GIB",
    "KV_BYTES",
    "USABLE_FRACTION",
    "Architecture",
    "Explanation",
    "KVLayout",
    "MemoryNeed",
    "ParameterCount",
    "SizingError",
    "SizingPlatform",
    "SizingResult",
    "WeightFormat",
    "add_parser",
    "architecture",
    "cmd_size",
    "config_path",
    "count_parameters",
    "format_result",
    "hub_offline",
    "kv_layout",
    "load_config",
    "memory_need",
    "model_config",
    "parameter_count",
    "size_deployment",
    "size_for_stack",
    "size_model",
    "sizing_problems",
    "stack_allowed",
    "stack_deployments",
    "stack_platform",
    "tensor_parallel_degrees",
    "usable_fraction",
    "weight_format",
]
