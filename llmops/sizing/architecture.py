"""The shapes of a decoder that constrain where it can run: heads for tensor parallelism, context length."""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from typing import Any

from llmops.sizing.config import attribute, layer_configs, positive_int, text_config
from llmops.sizing.errors import SizingError


@dataclass(frozen=True)
class Architecture:
    """Shapes read from a config's own fields (the decoder's, for multimodal configs).

    Where layers differ (per-layer head counts), `attention_heads` and `kv_heads` are the
    greatest common divisor over layers: a tensor-parallel degree must split every layer.
    """

    model_type: str
    hidden_size: int
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    experts: int  # routed experts per MoE layer (1: dense)
    max_positions: int | None
    latent_attention: bool  # DeepSeek-style MLA: the cache holds one compressed latent per token


def _heads(value: Any) -> int | None:
    """A head count, or the gcd of a per-layer list of them (zeros are layers without attention)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
        nonzero = [v for v in value if v > 0]
        return gcd(*nonzero) if nonzero else None
    return None


def kv_head_count(config: Any, attention_heads: int) -> int:
    """KV heads from whichever field a family uses; MQA flags mean one shared head."""
    for name in ("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num"):
        heads = _heads(attribute(config, name))
        if heads is not None:
            if attribute(config, "model_type") == "falcon" and not attribute(config, "new_decoder_architecture"):
                return 1 if attribute(config, "multi_query") else attention_heads
            return heads
    if attribute(config, "multi_query"):
        return 1
    return attention_heads


def architecture(config: Any) -> Architecture:
    """Shapes of a causal-LM transformers config; SizingError when it is not one."""
    model_type = str(getattr(config, "model_type", "") or "")
    text = text_config(config)
    hidden = positive_int(text, "hidden_size", "d_model", "n_embd")
    layers = positive_int(text, "num_hidden_layers", "n_layer", "n_layers", "num_layers")
    layers_view = layer_configs(text)
    heads = _heads(attribute(text, "num_attention_heads")) or _heads(attribute(text, "num_query_heads"))
    missing = [n for n, v in {"hidden_size": hidden, "num_hidden_layers": layers}.items() if v is None]
    if missing or hidden is None or layers is None:
        raise SizingError(
            f"the {model_type or 'unknown'} config lacks {', '.join(missing)}: not a decoder LM config", key="config"
        )
    heads = heads or 1  # attention-free models (Mamba): nothing for tensor parallelism to split
    kv_heads = kv_head_count(text, heads)
    head_dim = positive_int(text, "head_dim")
    if layers_view:  # heterogeneous layers: every layer's heads must split
        heads = gcd(*((positive_int(layer, "num_attention_heads") or heads) for layer in layers_view))
        kv_heads = gcd(*(kv_head_count(layer, heads) for layer in layers_view))
        head_dim = head_dim or max(positive_int(layer, "head_dim") or 0 for layer in layers_view) or None
    if heads % kv_heads:
        raise SizingError(f"num_attention_heads ({heads}) is not a multiple of the KV heads ({kv_heads})", key="config")
    latent = positive_int(text, "kv_lora_rank") is not None
    if latent:
        kv_heads = heads  # MLA decompresses to one K and V per query head
    return Architecture(
        model_type=model_type,
        hidden_size=hidden,
        layers=layers,
        attention_heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim or hidden // heads,
        experts=positive_int(text, "num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts") or 1,
        max_positions=positive_int(text, "max_position_embeddings", "n_positions", "max_sequence_length"),
        latent_attention=latent,
    )
