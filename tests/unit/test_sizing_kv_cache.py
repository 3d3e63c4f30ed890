"""The KV cache per architecture, from transformers' own config classes.

Proves, one family at a time, that the cache of one sequence follows the config's fields:
GQA and MQA heads (Llama, Falcon, GPT-BigCode), sliding windows (Mistral; Gemma 2's 1:1 and
Gemma 3's 5:1 alternation via layer_types), per-layer head dims (Gemma 4's global layers),
compressed latents (DeepSeek V2/V3 MLA, decompressed for the transformers runtime), state-space
layers that do not grow with the context (Mamba, Mamba 2, Jamba's attention/Mamba mix) and
shared-KV layers (Gemma 3n); and that the runtime decides whether windows are reclaimed.
Cannot prove: a runtime's block-granular allocation (vLLM pages of 16 tokens) or its
internal state dtype; those are within the stated overhead.
"""

from __future__ import annotations

import pytest
from transformers import (
    CONFIG_MAPPING,
    DeepseekV2Config,
    DeepseekV3Config,
    FalconConfig,
    Gemma2Config,
    Gemma3nTextConfig,
    Gemma3TextConfig,
    GPTBigCodeConfig,
    JambaConfig,
    LlamaConfig,
    Mamba2Config,
    MambaConfig,
    MistralConfig,
)

from llmops.sizing import kv_layout, size_model

pytestmark = pytest.mark.unit


def test_gqa_caches_the_kv_heads_only() -> None:
    config = LlamaConfig(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, num_hidden_layers=32)
    assert kv_layout(config).elements(1000) == 32 * 2 * 8 * 128 * 1000
    mha = LlamaConfig(hidden_size=4096, num_attention_heads=32, num_key_value_heads=32, num_hidden_layers=32)
    assert kv_layout(mha).elements(1000) == 4 * kv_layout(config).elements(1000)


def test_mqa_caches_one_head() -> None:
    falcon = FalconConfig(hidden_size=4544, num_attention_heads=71, num_hidden_layers=32, multi_query=True)
    assert kv_layout(falcon).elements(10) == 32 * 2 * 1 * 64 * 10
    # Falcon's new decoder architecture (40B/180B) reads num_kv_heads instead.
    grouped = FalconConfig(
        hidden_size=8192, num_attention_heads=128, num_kv_heads=8, new_decoder_architecture=True, num_hidden_layers=2
    )
    assert kv_layout(grouped).elements(10) == 2 * 2 * 8 * 64 * 10
    bigcode = GPTBigCodeConfig(n_embd=768, n_head=12, n_layer=4, multi_query=True)
    assert kv_layout(bigcode).elements(10) == 4 * 2 * 1 * 64 * 10


def test_mistral_sliding_window_caps_every_layer() -> None:
    config = MistralConfig(num_hidden_layers=32, num_key_value_heads=8, sliding_window=4096)
    per_token = 32 * 2 * 8 * 128
    assert kv_layout(config).elements(2048) == per_token * 2048
    assert kv_layout(config).elements(32768) == per_token * 4096  # no growth past the window
    assert kv_layout(config, windows=False).elements(32768) == per_token * 32768
    unbounded = MistralConfig(num_hidden_layers=32, num_key_value_heads=8, sliding_window=None)
    assert kv_layout(unbounded).elements(32768) == per_token * 32768


def test_gemma2_alternates_sliding_and_global_layers() -> None:
    config = Gemma2Config(num_hidden_layers=42, num_key_value_heads=8, head_dim=256, sliding_window=4096)
    per_layer_token = 2 * 8 * 256
    context = 8192
    assert kv_layout(config).elements(context) == 21 * per_layer_token * 4096 + 21 * per_layer_token * context


def test_gemma3_five_local_layers_per_global_one() -> None:
    config = Gemma3TextConfig(num_hidden_layers=12, num_key_value_heads=4, head_dim=256, sliding_window=1024)
    kinds = [layer.kind for layer in kv_layout(config).layers]
    assert kinds == (["sliding"] * 5 + ["full"]) * 2
    per_token = 2 * 4 * 256
    assert kv_layout(config).elements(32768) == 10 * per_token * 1024 + 2 * per_token * 32768


def test_per_layer_head_dims() -> None:
    # Gemma 4's global layers use a wider head than its local ones (transformers' per_layer_config).
    config = CONFIG_MAPPING["gemma4_text"]()
    layers = kv_layout(config).layers
    views = config.per_layer_config
    for i, layer in enumerate(layers):
        assert layer.per_token == 2 * views[i].num_key_value_heads * views[i].head_dim
    assert len({layer.per_token for layer in layers}) == 2


@pytest.mark.parametrize("config_class", [DeepseekV2Config, DeepseekV3Config])
def test_mla_caches_the_compressed_latent(config_class: type) -> None:
    config = config_class(num_hidden_layers=4, kv_lora_rank=512, qk_rope_head_dim=64)
    assert kv_layout(config).elements(100) == 4 * (512 + 64) * 100
    # transformers itself caches decompressed keys and values per head.
    heads = config.num_attention_heads
    qk = config.qk_nope_head_dim + config.qk_rope_head_dim
    assert kv_layout(config, latent=False).elements(100) == 4 * heads * (qk + config.v_head_dim) * 100


def test_mamba_state_does_not_grow_with_context() -> None:
    config = MambaConfig(hidden_size=768, num_hidden_layers=24, state_size=16, conv_kernel=4, expand=2)
    layout = kv_layout(config)
    assert layout.elements(1) == layout.elements(100_000) == 24 * 1536 * (16 + 4)
    mamba2 = Mamba2Config(hidden_size=1024, num_hidden_layers=8, num_heads=32, head_dim=64, state_size=128)
    assert kv_layout(mamba2).elements(1) == kv_layout(mamba2).elements(50_000) > 0


def test_jamba_only_attention_layers_grow() -> None:
    config = JambaConfig(num_hidden_layers=16, attn_layer_period=8, attn_layer_offset=4, num_key_value_heads=8)
    layout = kv_layout(config)
    assert [layer.kind for layer in layout.layers].count("full") == 2
    per_token = 2 * 2 * 8 * (config.hidden_size // config.num_attention_heads)
    assert layout.elements(2000) - layout.elements(1000) == per_token * 1000


def test_shared_kv_layers_cache_nothing() -> None:
    config = Gemma3nTextConfig(num_hidden_layers=12, num_kv_shared_layers=4)
    layout = kv_layout(config)
    assert [layer.kind for layer in layout.layers[-4:]] == ["shared"] * 4
    assert all(layer.elements(1000) == 0 for layer in layout.layers[-4:])
    unshared = Gemma3nTextConfig(num_hidden_layers=12, num_kv_shared_layers=0)
    assert kv_layout(unshared).elements(1000) > layout.elements(1000)


def test_runtime_decides_whether_windows_are_reclaimed() -> None:
    config = MistralConfig(num_hidden_layers=8, num_key_value_heads=8, sliding_window=1024, vocab_size=1000)
    args = {"name": "m", "dtype": "bf16", "context": 8192, "concurrency": 1, "platform": "local"}
    vllm, tgi = size_model(config, runtime="vllm", **args), size_model(config, runtime="tgi", **args)
    assert tgi.kv_cache_gib == pytest.approx(8 * vllm.kv_cache_gib)
