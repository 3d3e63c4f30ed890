"""Exact parameter counts for every causal-LM architecture transformers knows.

Proves: every causal-LM config class in transformers' CONFIG_MAPPING is counted within
0.1 % of the model transformers builds from it on the meta device (in practice exactly),
because the formula is used only for families where it equals the meta count at the
defaults and at drawn sizes, and every other family goes through the meta path; config
classes transformers itself cannot build fail sizing with a located error, not a crash;
counts are cached by config hash in a JSON file (a repeat does not build, a changed config
does, a damaged file is recounted).
Cannot prove: that the hub's config.json of a given model equals these config classes at
their defaults (the benchmark sizes published configs for that).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import CONFIG_MAPPING, LlamaConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from llmops.sizing import SizingError, params
from llmops.sizing.params import CACHE_ENV, FORMULA_TYPES, build_on_meta, formula_count, parameter_count

pytestmark = pytest.mark.unit

CAUSAL_TYPES = sorted(t for t in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES if t in CONFIG_MAPPING)
SCALED_LAYERS = 2  # the sweep's scaled-down size: cost grows with layers, correctness does not


@pytest.fixture(autouse=True)
def cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "parameters.json"
    monkeypatch.setenv(CACHE_ENV, str(path))
    params._memory.clear()
    return path


def built_count(config: Any) -> int:
    """The truth, counted here independently: unique tensors of the meta-device model."""
    with torch.device("meta"):
        model = build_on_meta(config)
    return sum({id(p): p.numel() for p in model.parameters()}.values())


def scaled(model_type: str) -> tuple[Any, int]:
    """The config class at SCALED_LAYERS layers where it builds so, else at its defaults; and its truth."""
    cls = CONFIG_MAPPING[model_type]
    try:
        config = cls(num_hidden_layers=SCALED_LAYERS)
        return config, built_count(config)
    except Exception:  # the class needs its defaults (fixed layer patterns, sub-configs)
        config = cls()
        return config, built_count(config)


def test_the_sweep_covers_every_causal_lm_config_class() -> None:
    assert len(CAUSAL_TYPES) == len({t for t in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES if t in CONFIG_MAPPING})
    assert len(CAUSAL_TYPES) > 100 and set(CAUSAL_TYPES) >= FORMULA_TYPES


@pytest.mark.parametrize("model_type", CAUSAL_TYPES)
def test_every_causal_lm_is_counted_within_a_tenth_of_a_percent(model_type: str) -> None:
    try:
        config, truth = scaled(model_type)
    except Exception as exc:  # transformers' own defaults do not build: sizing must say so, located
        config = _constructible(model_type)
        if config is None:
            pytest.xfail(f"transformers cannot construct {model_type}'s default config: {exc}")
        with pytest.raises(SizingError, match="cannot build") as raised:
            parameter_count(config)
        assert raised.value.key == "config"
        return
    counted = parameter_count(config)
    assert counted.source == ("formula" if config.model_type in FORMULA_TYPES else "meta")
    assert abs(counted.total - truth) <= 0.001 * truth, f"{model_type}: {counted.total:,} vs {truth:,}"


def _constructible(model_type: str) -> Any:
    try:
        return CONFIG_MAPPING[model_type]()
    except Exception:
        return None


# --------------------------------------------------------------------------- the formula fast path


@st.composite
def formula_configs(draw: st.DrawFn) -> Any:
    """A drawn size of a FORMULA_TYPES family (heads split evenly, odd vocab and MLP widths)."""
    model_type = draw(st.sampled_from(sorted(FORMULA_TYPES)))
    kv = draw(st.sampled_from([1, 2, 4]))
    heads = kv * draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.sampled_from([8, 16]))
    hidden = heads * head_dim
    layers = draw(st.integers(1, 3))
    inter = draw(st.integers(8, 96))
    vocab = draw(st.integers(16, 300))
    tie = draw(st.booleans())
    cls = CONFIG_MAPPING[model_type]
    if model_type == "gpt2":
        return cls(n_embd=hidden, n_head=heads, n_layer=layers, n_inner=inter, vocab_size=vocab, n_positions=64)
    kwargs: dict[str, Any] = {
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "num_hidden_layers": layers,
        "intermediate_size": inter,
        "vocab_size": vocab,
        "tie_word_embeddings": tie,
        "pad_token_id": None,  # default ids (e.g. Phi-3's 32000) lie outside a drawn vocabulary
        "bos_token_id": 0,
        "eos_token_id": 0,
    }
    if model_type in {"llama", "gemma2", "mistral"}:
        kwargs["head_dim"] = draw(st.sampled_from([head_dim, 2 * head_dim]))  # explicit, not hidden/heads
    if model_type == "llama":
        kwargs |= {"attention_bias": draw(st.booleans()), "mlp_bias": draw(st.booleans())}
    if model_type == "mixtral":
        experts = draw(st.integers(1, 4))
        kwargs |= {"num_local_experts": experts, "num_experts_per_tok": min(2, experts)}
    return cls(**kwargs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formula_configs())
def test_the_formula_equals_the_meta_count_at_drawn_sizes(config: Any) -> None:
    fast = formula_count(config)
    assert fast is not None
    assert fast.total == built_count(config), config.model_type


@pytest.mark.parametrize("model_type", sorted(FORMULA_TYPES))
def test_the_formula_equals_the_meta_count_at_the_defaults(model_type: str) -> None:
    config = CONFIG_MAPPING[model_type]()
    fast = formula_count(config)
    assert fast is not None and fast.total == built_count(config)


def test_families_without_a_proven_formula_never_use_one() -> None:
    for model_type in CAUSAL_TYPES:
        config = _constructible(model_type)
        if config is not None and config.model_type not in FORMULA_TYPES:  # gpt-sw3 is a GPT-2 config
            assert formula_count(config) is None, model_type


# --------------------------------------------------------------------------- the cache


def test_counts_are_cached_by_config_hash(cache_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = CONFIG_MAPPING["qwen3"](num_hidden_layers=2, hidden_size=64, intermediate_size=96, vocab_size=128)
    first = parameter_count(config)
    assert first.source == "meta" and cache_file.is_file()

    def no_build(_: Any) -> None:
        raise AssertionError("a cached count was rebuilt")

    monkeypatch.setattr(params, "meta_count", no_build)
    params._memory.clear()  # as a new process: only the file remains
    again = parameter_count(config)
    assert (again.total, again.embeddings, again.source) == (first.total, first.embeddings, "cache")

    # Where it came from does not matter; what it is does.
    config._name_or_path = "somewhere/else"
    assert parameter_count(config).source == "cache"
    monkeypatch.undo()
    monkeypatch.setenv(CACHE_ENV, str(cache_file))
    deeper = CONFIG_MAPPING["qwen3"](num_hidden_layers=3, hidden_size=64, intermediate_size=96, vocab_size=128)
    assert parameter_count(deeper).source == "meta" and parameter_count(deeper).total > first.total


def test_a_damaged_cache_is_recounted(cache_file: Path) -> None:
    cache_file.write_text("{not json")
    config = CONFIG_MAPPING["olmo2"](num_hidden_layers=1, hidden_size=32, intermediate_size=64, vocab_size=64)
    assert parameter_count(config).total == built_count(config)


def test_tied_weights_count_once() -> None:
    tied = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        vocab_size=1000,
        tie_word_embeddings=True,
    )
    untied = LlamaConfig(**{**tied.to_dict(), "tie_word_embeddings": False})
    difference = parameter_count(untied).total - parameter_count(tied).total
    assert difference == 1000 * 64
    assert parameter_count(tied).embeddings == 1000 * 64 and parameter_count(untied).embeddings == 2 * 1000 * 64
