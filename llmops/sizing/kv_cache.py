"""What one sequence keeps in accelerator memory while it generates, layer by layer, from the config.

Each layer is one of:
  full     K and V for every token: 2 x KV heads x head_dim elements per token (MQA/GQA via the KV heads)
  sliding  the same, but never more than `sliding_window` tokens (Mistral, Gemma 2/3 alternation)
  chunked  the same, at most `attention_chunk_size` tokens (Llama 4's local layers)
  latent   DeepSeek V2/V3 MLA: one compressed latent (kv_lora_rank + qk_rope_head_dim) per token
  state    SSM / linear-attention layers (Mamba, Jamba's Mamba layers): a fixed state per sequence,
           not growing with the context
  shared   layers that reuse an earlier layer's cache (Gemma 3n's num_kv_shared_layers): nothing
The layer kinds come from the config's `layer_types` (or `layers_block_type`) where it has them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from llmops.sizing.architecture import architecture, kv_head_count
from llmops.sizing.config import attribute, layer_configs, positive_int, text_config

_FULL = {"full_attention", "attention", "global", "global_attention", "full"}
_SLIDING = {"sliding_attention", "local", "local_attention", "sliding_window", "sliding"}
_CHUNKED = {"chunked_attention"}
_STATE = {"mamba", "mamba2", "linear_attention", "ssm", "conv", "recurrent", "rwkv", "hybrid", "deltanet"}
# Attention-free families whose configs carry no per-layer types.
STATE_ONLY = frozenset({"mamba", "mamba2", "falcon_mamba", "rwkv", "xlstm"})


@dataclass(frozen=True)
class CacheLayer:
    kind: str
    per_token: int  # elements cached per token of context
    window: int | None = None  # most tokens this layer keeps (None: the whole context)
    per_sequence: int = 0  # elements held per sequence whatever the context (SSM state, convolution)

    def elements(self, context: int) -> int:
        tokens = min(context, self.window) if self.window else context
        return self.per_token * tokens + self.per_sequence


@dataclass(frozen=True)
class KVLayout:
    layers: tuple[CacheLayer, ...]
    estimated: bool = False  # a state layer of an unknown family, sized with Mamba's defaults

    def elements(self, context: int) -> int:
        """Cache elements of one sequence of `context` tokens."""
        return sum(layer.elements(context) for layer in self.layers)

    def summary(self) -> str:
        """E.g. '21 sliding(4096) x 2048/token, 21 full x 2048/token'."""
        counts = Counter((layer.kind, layer.window, layer.per_token, layer.per_sequence) for layer in self.layers)
        parts = []
        for (kind, window, per_token, per_sequence), n in counts.items():
            label = f"{kind}({window})" if window else kind
            size = f"{per_sequence}/sequence" if kind == "state" else f"{per_token}/token"
            parts.append(f"{n} {label} x {size}" if kind != "shared" else f"{n} shared")
        return ", ".join(parts) + (" (state estimated)" if self.estimated else "")


def _kinds(c: Any, model_type: str, layers: int) -> list[str]:
    types = attribute(c, "layer_types")
    if not (isinstance(types, (list, tuple)) and len(types) == layers):
        types = attribute(c, "layers_block_type")
    if isinstance(types, (list, tuple)) and len(types) == layers:
        out = []
        for t in types:
            name = str(t).lower()
            out.append(
                "sliding"
                if name in _SLIDING
                else "chunked"
                if name in _CHUNKED
                else "state"
                if name in _STATE or "mamba" in name or "linear" in name
                else "full"  # full and anything unknown: the larger cache is the safe side
            )
        return out
    if model_type in STATE_ONLY:
        return ["state"] * layers
    window = positive_int(c, "sliding_window")
    if window and attribute(c, "use_sliding_window") is not False:
        return ["sliding"] * layers
    return ["full"] * layers


def _state_elements(c: Any, model_type: str, hidden: int) -> tuple[int, bool]:
    """Elements of one SSM / linear-attention layer's state, and whether they are estimated."""
    kda_heads, kda_dim = positive_int(c, "linear_num_heads"), positive_int(c, "linear_head_dim")
    if kda_heads and kda_dim:  # Kimi delta attention: a d x d state per head, q/k/v short convolutions
        conv = positive_int(c, "linear_conv_kernel_dim") or 4
        return kda_heads * kda_dim * kda_dim + 3 * kda_heads * kda_dim * conv, False
    if model_type == "minimax":  # lightning attention: a head_dim x head_dim state per head
        heads = positive_int(c, "num_attention_heads") or 1
        head_dim = positive_int(c, "head_dim") or hidden // heads
        return heads * head_dim * head_dim, False
    if model_type == "rwkv":  # RWKV-4: four attention vectors and the feed-forward shift
        return 4 * (positive_int(c, "attention_hidden_size") or hidden) + hidden, False
    lru = positive_int(c, "lru_width")
    if lru:  # RecurrentGemma: the RG-LRU state and its convolution window
        return lru * (1 + (positive_int(c, "conv1d_width") or 4)), False
    lin_heads = positive_int(c, "linear_num_value_heads")
    if lin_heads:  # gated delta-net linear attention (Qwen3-Next)
        k_heads = positive_int(c, "linear_num_key_heads") or lin_heads
        k_dim = positive_int(c, "linear_key_head_dim") or 128
        v_dim = positive_int(c, "linear_value_head_dim") or 128
        conv = positive_int(c, "linear_conv_kernel_dim") or 4
        return lin_heads * k_dim * v_dim + (2 * k_heads * k_dim + lin_heads * v_dim) * conv, False
    d_state = positive_int(c, "state_size", "mamba_d_state", "ssm_state_size", "d_state")
    d_conv = positive_int(c, "conv_kernel", "mamba_d_conv", "d_conv")
    expand = positive_int(c, "expand", "mamba_expand") or 2
    inner = positive_int(c, "mamba_intermediate_size") or (
        positive_int(c, "intermediate_size") if model_type in STATE_ONLY else None
    )
    inner = inner or expand * hidden
    n_heads = positive_int(c, "mamba_n_heads") or (positive_int(c, "num_heads") if model_type == "mamba2" else None)
    ssm_head_dim = positive_int(c, "mamba_d_head") or (positive_int(c, "head_dim") if model_type == "mamba2" else None)
    if d_state is None or d_conv is None:
        return inner * (16 + 4), True
    if n_heads and ssm_head_dim:  # Mamba 2: per-head state, grouped B/C in the convolution
        groups = positive_int(c, "n_groups", "mamba_n_groups") or 1
        return n_heads * ssm_head_dim * d_state + (n_heads * ssm_head_dim + 2 * groups * d_state) * d_conv, False
    return inner * (d_state + d_conv), False


def kv_layout(config: Any, *, windows: bool = True, latent: bool = True) -> KVLayout:
    """The cache of one sequence, per layer.

    `windows`: the runtime keeps only the window of sliding/chunked layers (else full context);
    `latent`: the runtime caches MLA's compressed latent (else the decompressed K and V per head).
    """
    arch = architecture(config)
    c = text_config(config)
    heads = arch.attention_heads
    kinds = _kinds(c, arch.model_type, arch.layers)
    views = layer_configs(c) or []
    per_layer = views if len(views) == arch.layers else [c] * arch.layers
    listed_kv = attribute(c, "num_key_value_heads")
    if not isinstance(listed_kv, (list, tuple)):
        listed_kv = attribute(c, "num_kv_heads")
    if not (isinstance(listed_kv, (list, tuple)) and len(listed_kv) == arch.layers):
        listed_kv = [kv_head_count(layer, heads) for layer in per_layer]
    # K and V both cached, unless the model uses the keys as values (Gemma 4's attention_k_eq_v).
    kv_tensors = 1 if attribute(c, "attention_k_eq_v") is True else 2
    shared = positive_int(c, "num_kv_shared_layers") or 0
    state, estimated = (0, False)
    if "state" in kinds:
        state, estimated = _state_elements(c, arch.model_type, arch.hidden_size)
    lora = positive_int(c, "kv_lora_rank")
    rope = positive_int(c, "qk_rope_head_dim") or 0
    decompressed = 0
    if lora and not latent:
        qk = positive_int(c, "qk_head_dim") or ((positive_int(c, "qk_nope_head_dim") or 0) + rope)
        decompressed = heads * (qk + (positive_int(c, "v_head_dim") or qk))

    out = []
    for i, kind in enumerate(kinds):
        layer = per_layer[i]
        if i >= arch.layers - shared:
            out.append(CacheLayer("shared", 0))
        elif kind == "state":
            out.append(CacheLayer("state", 0, per_sequence=state))
        elif lora:
            out.append(CacheLayer("latent", lora + rope) if latent else CacheLayer("full", decompressed))
        else:
            head_dim = positive_int(layer, "head_dim") or arch.head_dim
            per_token = kv_tensors * int(listed_kv[i]) * head_dim
            window = None
            if windows and kind == "sliding":
                window = positive_int(layer, "sliding_window")
            elif windows and kind == "chunked":
                window = positive_int(layer, "attention_chunk_size")
            out.append(CacheLayer(kind if window else "full", per_token, window))
    return KVLayout(tuple(out), estimated)
