"""Exact parameter counts: the model transformers builds from the config, on the meta device.

Building on `torch.device("meta")` allocates no memory and loads no weights, yet it is the
model transformers would serve, so every architecture it knows is counted exactly (tied
weights once; accelerate's `init_empty_weights` is not used: under transformers 5 it
breaks weight tying and overcounts tied models). Counts are cached by a hash of the config
and the transformers version in a small JSON file under the state folder, so repeat sizing
does not import torch.

A formula stays only as a fast path for the families in `FORMULA_TYPES`: tests/unit/
test_sizing_parameters.py proves it equal to the meta count at defaults and scaled sizes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmops.sizing import store
from llmops.sizing.config import positive_int, text_config
from llmops.sizing.errors import SizingError
from llmops.sizing.store import CACHE_ENV

# Keys that say where a config came from or how to load weights, not what the model is.
_VOLATILE = frozenset({"transformers_version", "_name_or_path", "torch_dtype", "dtype", "quantization_config"})
# Families the formula counts exactly (proven against the meta count for each, at several sizes).
FORMULA_TYPES = frozenset({"llama", "mistral", "mixtral", "qwen2", "gemma2", "phi3", "gpt2"})

Source = Literal["formula", "meta", "cache"]


@dataclass(frozen=True)
class ParameterCount:
    total: int  # every parameter once (all MoE experts: they all sit in accelerator memory)
    embeddings: int  # the input embeddings plus an untied output head: 16-bit under weight-only quantization
    source: Source

    @property
    def body(self) -> int:
        """Parameters of the decoder layers (what weight-only quantization compresses)."""
        return self.total - self.embeddings


# --------------------------------------------------------------------------- the cache


def cache_path() -> Path:
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else store.cache_dir() / "parameters.json"


_lock = threading.Lock()
_memory = store.MEMORY  # cache file -> key -> counts


def config_key(config: Any) -> str:
    """A hash of what decides the shapes: the config's values and the transformers version."""
    import transformers

    values = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE}
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(f"{transformers.__version__}\n{text}".encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- counting


def parameter_count(config: Any) -> ParameterCount:
    """The exact count: the formula for proven families, else the cache, else a meta build."""
    fast = formula_count(config)
    if fast is not None:
        return fast
    path = cache_path()
    key = config_key(config)
    with _lock:
        hit = store.read_entries(path).get(key)
        if hit is not None and {"total", "embeddings"} <= hit.keys():
            return ParameterCount(int(hit["total"]), int(hit["embeddings"]), "cache")
        counted = meta_count(config)
        store.write_entry(path, key, {"total": counted.total, "embeddings": counted.embeddings})
    return counted


# Vision-language models register their generation class outside the causal-LM mapping.
_OTHER_HEADS = (
    ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING", "AutoModelForImageTextToText"),
    ("MODEL_FOR_VISION_2_SEQ_MAPPING", "AutoModelForVision2Seq"),
)


def _model_class(config: Any) -> Any:
    import transformers
    from transformers.models.auto import modeling_auto

    if type(config) not in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING:
        for mapping_name, auto_name in _OTHER_HEADS:
            mapping = getattr(modeling_auto, mapping_name, None)
            if mapping is not None and type(config) in mapping and hasattr(transformers, auto_name):
                return getattr(transformers, auto_name)
    return transformers.AutoModelForCausalLM  # raises the clear "unrecognized configuration class" error


def build_on_meta(config: Any) -> Any:
    """The model transformers builds from `config`, with every tensor on the meta device."""
    import torch
    from transformers.utils import logging

    config = copy.deepcopy(config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # count the model's own shapes; quantization is sized separately
    auto = _model_class(config)
    verbosity = logging.get_verbosity()
    logging.set_verbosity(40)  # logging.ERROR: the build repeats config warnings the load already gave
    try:
        with torch.device("meta"):
            return auto.from_config(config)
    finally:
        logging.set_verbosity(verbosity)


def meta_count(config: Any) -> ParameterCount:
    """Count the parameters of the model built on the meta device (shared tensors once)."""
    model_type = getattr(config, "model_type", "unknown")
    try:
        model = build_on_meta(config)
    except Exception as exc:  # any failure of an architecture's own constructor
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise SizingError(
            f"transformers cannot build a {model_type} model from this config: {type(exc).__name__}: {first}",
            key="config",
        ) from None
    seen: set[int] = set()
    total = 0
    for p in model.parameters():  # parameters() already yields a tied tensor once; ids guard aliases
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    embeddings = 0
    inputs = model.get_input_embeddings()
    outputs = model.get_output_embeddings()
    input_weight = getattr(inputs, "weight", None)
    if input_weight is not None:
        embeddings += input_weight.numel()
    output_weight = getattr(outputs, "weight", None)
    if output_weight is not None and output_weight is not input_weight:
        embeddings += output_weight.numel()
    return ParameterCount(total, embeddings, "meta")


# --------------------------------------------------------------------------- the fast path


def formula_count(config: Any) -> ParameterCount | None:
    """Closed-form count for `FORMULA_TYPES` (None for every other family).

    Llama pattern: rotary positions, RMSNorm, gated MLP, optional biases; GPT-2: learned
    positions, LayerNorm with bias, 2-matrix MLP, biases everywhere; Gemma 2: four norms per
    layer; Qwen2: q/k/v biases; Mixtral: every expert plus the router.
    """
    model_type = getattr(config, "model_type", "")
    if model_type not in FORMULA_TYPES or getattr(config, "quantization_config", None) is not None:
        return None
    c = text_config(config)
    h = positive_int(c, "hidden_size")
    layers = positive_int(c, "num_hidden_layers")
    heads = positive_int(c, "num_attention_heads")
    vocab = positive_int(c, "vocab_size")
    if h is None or layers is None or heads is None or vocab is None:
        return None
    gpt2 = model_type == "gpt2"
    kv_heads = positive_int(c, "num_key_value_heads") or heads
    head_dim = positive_int(c, "head_dim") or h // heads
    inter = positive_int(c, "intermediate_size", "n_inner") or 4 * h
    experts = positive_int(c, "num_local_experts") or 1
    attention_bias = bool(getattr(c, "attention_bias", False))
    qkv_bias = gpt2 or attention_bias or model_type == "qwen2"
    out_bias = gpt2 or attention_bias
    mlp_bias = gpt2 or bool(getattr(c, "mlp_bias", False))

    q_dim, kv_dim = heads * head_dim, kv_heads * head_dim
    attention = h * q_dim + 2 * h * kv_dim + q_dim * h
    attention += (q_dim + 2 * kv_dim if qkv_bias else 0) + (h if out_bias else 0)
    matrices = 2 if gpt2 else 3
    expert = matrices * h * inter + ((matrices - 1) * inter + h if mlp_bias else 0)
    mlp = experts * expert + (h * experts if model_type == "mixtral" else 0)  # + the router, even of one expert
    norm = 2 * h if gpt2 else h
    layer = attention + mlp + (4 if model_type == "gemma2" else 2) * norm
    tied = bool(getattr(config, "tie_word_embeddings", True))
    embeddings = vocab * h * (1 if tied else 2)
    positions = (positive_int(c, "max_position_embeddings") or 0) * h if gpt2 else 0
    return ParameterCount(layers * layer + norm + embeddings + positions, embeddings, "formula")
