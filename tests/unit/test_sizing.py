"""Sizing: parameters from transformers configs, memory per replica, the cheapest fitting instance.

Proves: parameter counts of the shipped configs are within 2 % of the published
counts and equal to the model transformers builds from the same config (on the
meta device); weights, KV cache and overhead follow the documented formulas for
every dtype; the chosen instance fits and no cheaper catalog instance the runtime
can serve on does; tensor parallelism divides the heads; explicit instances, allowed
lists, Inferentia and nothing-fits cases behave as documented; `llmops size`
prints the promised JSON and fails in one line. (Every architecture, KV layouts,
quantization and the runtime table: test_sizing_parameters/_kv_cache/_runtime.py.)
Cannot prove: that a real serving runtime fits in the computed memory; the
overhead is a stated estimate, not a measurement.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import LlamaConfig

import llmops.sizing.config as sizing_config
from llmops import sizing
from llmops.catalog import load_catalog
from llmops.cli import main
from llmops.registry import ModelEntry
from llmops.settings import StackSettings
from llmops.sizing import (
    SizingError,
    architecture,
    count_parameters,
    load_config,
    parameter_count,
    size_deployment,
    size_for_stack,
    size_model,
    stack_allowed,
)
from llmops.sizing.quantization import WeightFormat
from llmops.sizing.runtime import unsupported
from tests.unit.conftest import REPO, entry

pytestmark = pytest.mark.unit

CONFIGS = REPO / "models" / "configs"
GIB = 2**30
# Published totals (model cards / papers).
PUBLISHED = {
    "llama-3.1-8b": 8.03e9,
    "llama-3.1-70b": 70.6e9,
    "mistral-7b-v0.3": 7.25e9,
    "mixtral-8x7b": 46.7e9,
    "qwen2.5-7b": 7.62e9,
    "gemma-2-9b": 9.24e9,
    "phi-3-mini-4k": 3.82e9,
    "tinyllama-1.1b": 1.1e9,
    "gpt2": 124e6,
}


def config(name: str) -> Any:
    return load_config(CONFIGS / f"{name}.json")


def size(name: str, **kwargs: Any) -> sizing.SizingResult:
    args: dict[str, Any] = {"name": name, "dtype": "bf16", "context": 4096, "concurrency": 4, "platform": "sagemaker"}
    return size_model(config(name), **{**args, **kwargs})


@pytest.mark.parametrize(("name", "published"), sorted(PUBLISHED.items()))
def test_parameter_counts_match_published_counts(name: str, published: float) -> None:
    counted = count_parameters(config(name))
    assert abs(counted / published - 1) < 0.02, f"{name}: {counted:,} vs {published:,.0f}"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_counts_equal_the_model_transformers_builds(name: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    cfg = config(name)
    with torch.device("meta"):  # shapes only: no memory, no weights
        model = AutoModelForCausalLM.from_config(cfg)
    built = sum(p.numel() for p in model.parameters())  # tied weights are one parameter
    assert count_parameters(cfg) == built
    # Embeddings: what weight-only quantization keeps at 16 bits (tied: the input table once).
    untied = model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    embeddings = model.get_input_embeddings().weight.numel() * (2 if untied else 1)
    assert parameter_count(cfg).embeddings == embeddings


def test_architecture_reads_gqa_head_dim_and_experts() -> None:
    gemma, mixtral, gpt2, llama = (
        architecture(config(n)) for n in ("gemma-2-9b", "mixtral-8x7b", "gpt2", "llama-3.1-8b")
    )
    assert (gemma.head_dim, gemma.attention_heads, gemma.kv_heads) == (256, 16, 8)
    assert gemma.head_dim * gemma.attention_heads != gemma.hidden_size  # explicit head_dim, not hidden/heads
    assert (mixtral.experts, mixtral.kv_heads) == (8, 8)
    assert (gpt2.kv_heads, gpt2.head_dim, gpt2.max_positions) == (12, 64, 1024)
    assert (llama.kv_heads, llama.head_dim, llama.experts) == (8, 128, 1)


def test_moe_counts_every_expert_and_the_router() -> None:
    mixtral = config("mixtral-8x7b")
    four = type(mixtral).from_dict({**mixtral.to_dict(), "num_local_experts": 4})
    expert = 3 * mixtral.hidden_size * mixtral.intermediate_size
    router = mixtral.hidden_size  # one router row per expert
    assert count_parameters(mixtral) - count_parameters(four) == mixtral.num_hidden_layers * 4 * (expert + router)


@pytest.mark.parametrize(
    ("dtype", "weight_bytes", "kv_bytes"),
    # Quantized: decoder weights at the width (+ int4's group-128 scale and zero point), embeddings 16-bit.
    [("fp32", 4, 4), ("bf16", 2, 2), ("fp16", 2, 2), ("fp8", 1, 1), ("int8", 1, 2), ("int4", 0.5 + 2.5 / 128, 2)],
)
def test_memory_follows_the_documented_formula(dtype: str, weight_bytes: float, kv_bytes: int) -> None:
    result = size("llama-3.1-8b", dtype=dtype, context=8192, concurrency=3, platform="local")
    embeddings = 2 * 128_256 * 4096  # untied input and output tables
    if dtype in {"fp32", "bf16", "fp16"}:
        weights = 8_030_261_248 * weight_bytes / GIB
    else:
        weights = ((8_030_261_248 - embeddings) * weight_bytes + embeddings * 2) / GIB
    kv = 2 * 32 * 8 * 128 * kv_bytes * 8192 * 3 / GIB  # K and V x layers x kv heads x head_dim x bytes x tokens
    assert result.weights_gib == pytest.approx(weights, abs=1e-3)
    assert result.kv_cache_gib == pytest.approx(kv, abs=1e-3)
    assert result.overhead_gib == pytest.approx(1 + 0.1 * (weights + kv), abs=1e-3)
    assert result.total_gib == pytest.approx(weights + kv + result.overhead_gib, abs=2e-3)


def test_kv_cache_grows_with_context_and_concurrency() -> None:
    base = size("qwen2.5-7b", context=8192, concurrency=1).kv_cache_gib
    assert size("qwen2.5-7b", context=16384, concurrency=1).kv_cache_gib == pytest.approx(2 * base, rel=1e-3)
    assert size("qwen2.5-7b", context=8192, concurrency=8).kv_cache_gib == pytest.approx(8 * base, rel=1e-3)


def _fits_at_some_tp(instance: Any, heads: int, kv_heads: int, total: float, fmt: WeightFormat, arch: Any) -> bool:
    if unsupported("vllm", instance, fmt, arch.model_type):
        return False  # the runtime cannot serve these weights there, whatever the memory
    tp = 1
    while tp <= instance.gpus:
        if heads % tp == 0 and kv_heads % tp == 0 and total <= 0.9 * instance.gpu_memory_gib * tp:
            return True
        tp *= 2
    return False


@pytest.mark.parametrize("platform", ["sagemaker", "ec2"])
@pytest.mark.parametrize(
    ("name", "dtype", "context", "concurrency"),
    [
        ("tinyllama-1.1b", "bf16", 2048, 4),
        ("llama-3.1-8b", "bf16", 4096, 4),
        ("llama-3.1-8b", "bf16", 8192, 4),
        ("llama-3.1-8b", "int4", 32768, 8),
        ("gemma-2-9b", "bf16", 8192, 8),
        ("mixtral-8x7b", "bf16", 32768, 4),
        ("llama-3.1-70b", "bf16", 8192, 4),
        ("llama-3.1-70b", "fp8", 65536, 4),
    ],
)
def test_the_cheapest_fitting_instance_is_chosen(
    platform: str, name: str, dtype: str, context: int, concurrency: int
) -> None:
    result = size(name, dtype=dtype, context=context, concurrency=concurrency, platform=platform)
    arch = architecture(config(name))
    chosen = load_catalog().get(result.instance_type)
    assert chosen.platform == platform and not chosen.accelerator.startswith("Inferentia")
    assert result.total_gib <= 0.9 * chosen.gpu_memory_gib * result.tensor_parallel
    tp = result.tensor_parallel
    assert tp & (tp - 1) == 0 and tp <= chosen.gpus
    assert arch.attention_heads % tp == 0 and arch.kv_heads % tp == 0
    assert result.monthly_usd == pytest.approx(chosen.hourly_usd * 730, abs=0.01)
    for other in load_catalog().for_platform(platform):  # type: ignore[arg-type]
        if other.gpus and not other.accelerator.startswith("Inferentia") and other.hourly_usd < chosen.hourly_usd:
            fmt = sizing.weight_format(config(name), dtype)
            assert not _fits_at_some_tp(other, arch.attention_heads, arch.kv_heads, result.total_gib, fmt, arch), (
                other.name
            )


def test_known_choices() -> None:
    # 8B bf16 at 4k x 4 needs ~19.7 GiB: one 24 GiB L4; at 8k x 4 (~21.9 GiB) it spills past 0.9 x 24 GiB.
    assert size("llama-3.1-8b").instance_type == "ml.g6.xlarge"
    assert size("llama-3.1-8b", context=8192).instance_type == "ml.g6e.xlarge"
    seventy = size("llama-3.1-70b", context=8192)
    assert (seventy.instance_type, seventy.tensor_parallel, seventy.gpus) == ("ml.g6e.12xlarge", 4, 4)


def test_tensor_parallel_must_divide_the_heads() -> None:
    # 12 heads: tp 8 would not split them, so a model needing more than 4 GPUs fits nowhere here.
    odd = LlamaConfig(
        vocab_size=32000,
        hidden_size=6144,
        intermediate_size=24576,
        num_hidden_layers=64,
        num_attention_heads=12,
        num_key_value_heads=12,
        max_position_embeddings=8192,
    )
    result = size_model(odd, name="odd", dtype="bf16", context=2048, concurrency=1, platform="sagemaker")
    assert 12 % result.tensor_parallel == 0
    assert result.tensor_parallel <= 4
    with pytest.raises(SizingError):
        size_model(odd, name="odd", dtype="fp32", context=8192, concurrency=8, platform="sagemaker")


def test_explicit_instance_is_used_and_checked() -> None:
    assert size("llama-3.1-8b", instance="ml.g5.12xlarge").instance_type == "ml.g5.12xlarge"
    assert size("llama-3.1-8b", instance="ml.g5.12xlarge").tensor_parallel == 1
    with pytest.raises(SizingError, match=r"needs 156\.\d GiB .*ml\.g5\.xlarge holds 21\.6 GiB usable"):
        size("llama-3.1-70b", context=8192, instance="ml.g5.xlarge")
    with pytest.raises(SizingError, match="is a ec2 instance type"):
        size("llama-3.1-8b", instance="g5.xlarge")
    with pytest.raises(SizingError, match="unknown instance type"):
        size("llama-3.1-8b", instance="ml.nope")


def test_inferentia_only_for_neuron_runtimes() -> None:
    assert all(not size(n, context=1024).accelerator.startswith("Inferentia") for n in ("gpt2", "tinyllama-1.1b"))
    with pytest.raises(SizingError, match="needs CUDA"):
        size("llama-3.1-8b", instance="ml.inf2.xlarge", runtime="tgi")
    assert size("llama-3.1-8b", instance="ml.inf2.xlarge", runtime="lmi").accelerator == "Inferentia2"


def test_allowed_list_restricts_the_choice() -> None:
    assert size("llama-3.1-8b", allowed=["ml.g5.2xlarge", "ml.g5.12xlarge"]).instance_type == "ml.g5.2xlarge"
    with pytest.raises(SizingError, match="allowed here"):
        size("llama-3.1-70b", allowed=["ml.g5.xlarge"])


def test_nothing_fits_states_need_and_largest_capacity() -> None:
    with pytest.raises(SizingError) as raised:
        size("llama-3.1-70b", context=131072, concurrency=64)
    message = str(raised.value)
    assert "needs 2961.6 GiB" in message and "holds 576.0 GiB usable" in message
    assert "\n" not in message


def test_context_beyond_the_model_is_refused() -> None:
    with pytest.raises(SizingError, match="max_position_embeddings"):
        size("phi-3-mini-4k", context=8192)


def test_local_platform_reports_memory_and_costs_nothing() -> None:
    result = size("tinyllama-1.1b", context=2048, platform="local")
    assert (result.instance_type, result.hourly_usd, result.monthly_usd, result.gpus) == ("local", 0, 0, 0)
    assert result.total_gib > 2


def test_unreadable_config_is_a_sizing_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SizingError, match="cannot load"):
        load_config(bad)
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"model_type": "no-such-model"}')
    with pytest.raises(SizingError, match="cannot load"):
        load_config(unknown)


# --------------------------------------------------------------------------- deployments and stacks


def deployment(env: str = "dev", **changes: Any) -> Any:
    return ModelEntry.model_validate(entry(**changes)).deployment(env)


def test_size_deployment_uses_overrides() -> None:
    dep = deployment(
        "dev", **{"source.config": "configs/llama-3.1-8b.json", "deployments.dev": {"instance": "ml.g6e.xlarge"}}
    )
    assert size_deployment(dep, REPO / "models", "sagemaker").instance_type == "ml.g6e.xlarge"


def test_eks_endpoints_are_sized_onto_the_stack_pools(stacks: dict[str, StackSettings]) -> None:
    dep = deployment("dev", **{"serving.platform": "eks", "source.config": "configs/mistral-7b-v0.3.json"})
    pools = {t for p in stacks["dev"].cluster.gpu_pools for t in p.instance_types}
    assert set(stack_allowed(dep, stacks["dev"]) or []) == pools
    assert size_for_stack(dep, stacks["dev"], REPO / "models").instance_type in pools
    # SageMaker endpoints choose within the stack policy's allowlist.
    sm = deployment("prod", **{"source.config": "configs/llama-3.1-8b.json"})
    assert (
        size_for_stack(sm, stacks["prod"], REPO / "models").instance_type
        in stacks["prod"].policy.allowed_instance_types
    )


def test_the_shipped_config_is_read_online_too(monkeypatch: pytest.MonkeyPatch) -> None:
    src = ModelEntry.model_validate(entry(**{"source.config": "configs/gpt2.json"})).source
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(sizing_config, "_fetch_once", lambda repo, revision, target: calls.append((repo, revision)))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert sizing.config_path(src, REPO / "models") == REPO / "models" / "configs" / "gpt2.json"
    assert sizing.model_config(src, REPO / "models").model_type == "gpt2" and calls == []


# --------------------------------------------------------------------------- CLI

JSON_KEYS = {
    "parameters",
    "weights_gib",
    "kv_cache_gib",
    "total_gib",
    "instance_type",
    "gpus",
    "tensor_parallel",
    "hourly_usd",
    "monthly_usd",
}


def test_cli_json_for_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CONFIGS / "llama-3.1-8b.json")
    assert main(["size", path, "--context", "4096", "--concurrency", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= JSON_KEYS
    assert (out["parameters"], out["instance_type"], out["tensor_parallel"]) == (8_030_261_248, "ml.g6.xlarge", 1)


def test_cli_for_a_registry_model_uses_its_serving_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMOPS_ROOT", str(REPO))
    assert main(["size", "mistral-7b-instruct", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["max_context"], out["concurrency"], out["platform"]) == (8192, 2, "ec2")
    assert main(["size", "mistral-7b-instruct", "--dtype", "int4", "--platform", "sagemaker"]) == 0
    text = capsys.readouterr().out
    assert "7.25 B parameters" in text and "int4" in text and "ml." in text


def test_cli_nothing_fits_exits_1_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CONFIGS / "llama-3.1-70b.json")
    assert main(["size", path, "--context", "131072", "--concurrency", "64"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "needs" in captured.err and "largest" in captured.err


def test_cli_unknown_model(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLMOPS_ROOT", str(REPO))
    assert main(["size", "no-such-model"]) == 1
    assert "neither a model" in capsys.readouterr().err
