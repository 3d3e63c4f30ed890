"""Quantized weights, what each runtime serves on which GPU generation, and the explanations.

Proves: AWQ/GPTQ/bitsandbytes/FP8 checkpoints are sized from their quantization_config
(quantized decoder weights plus group scales, 16-bit embeddings) and a dtype that
contradicts the checkpoint is a located error; FP8 lands only on Ada/Hopper, bf16 is served
as fp16 on T4/V100, TGI does not run on Volta, Neuron only takes the architectures it
compiles; over every shipped config, dtype, runtime and platform the pick is an instance
the runtime can serve on and that holds the replica at the runtime's stated usable
fraction, with a tensor-parallel degree dividing the attention and KV heads; the
explanation's runner-up and "would fit if" alternatives really fit and are priced
correctly; `llmops size --json` carries the explanation.
Cannot prove: the runtimes' own matrices beyond the published tables the support table cites.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import Gemma2Config, LlamaConfig

from llmops.catalog import load_catalog
from llmops.cli import main
from llmops.sizing import SizingError, architecture, load_config, parameter_count, size_model, weight_format
from llmops.sizing.params import CACHE_ENV
from llmops.sizing.runtime import SUPPORT, unsupported
from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit

CONFIGS = REPO / "models" / "configs"
GIB = 2**30
SHIPPED = sorted(p.stem for p in CONFIGS.glob("*.json"))  # the registry's and the published ones


@pytest.fixture(autouse=True)
def cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "parameters.json"))


def llama8b(**quantization: Any) -> Any:
    config = load_config(CONFIGS / "llama-3.1-8b.json")
    data = config.to_dict()
    if quantization:
        data["quantization_config"] = quantization
    return LlamaConfig.from_dict(data)


def size(config: Any, **kwargs: Any) -> Any:
    args: dict[str, Any] = {"name": "m", "dtype": "bf16", "context": 4096, "concurrency": 4, "platform": "sagemaker"}
    return size_model(config, **{**args, **kwargs})


# --------------------------------------------------------------------------- quantized weights


@pytest.mark.parametrize(
    ("quantization", "precision", "bytes_per_weight"),
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "int4", 0.5 + (2 + 0.5) / 128),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True}, "int4", 0.5 + 2 / 128),
        ({"quant_method": "gptq", "bits": 8, "group_size": -1}, "int8", 1.0),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "int4", 0.5 + 4 / 64),
        (
            {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_use_double_quant": True},
            "int4",
            0.5 + (1 + 4 / 256) / 64,
        ),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "int8", 1.0),
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8", 1.0),
    ],
)
def test_checkpoint_quantization_sizes_the_weights(
    quantization: dict[str, Any], precision: str, bytes_per_weight: float
) -> None:
    config = llama8b(**quantization)
    fmt = weight_format(config, "bf16")
    count = parameter_count(config)
    assert fmt.precision == precision and count.total == 8_030_261_248
    embeddings = 2 * 128_256 * 4096
    expected = ((count.total - embeddings) * bytes_per_weight + embeddings * 2) / GIB
    result = size(config, platform="local")
    assert result.weights_gib == pytest.approx(expected, rel=1e-9)
    assert result.kv_cache_gib == pytest.approx(32 * 2 * 8 * 128 * 2 * 4096 * 4 / GIB)  # a bf16 cache


def test_a_dtype_contradicting_the_checkpoint_is_a_located_error() -> None:
    config = llama8b(quant_method="awq", bits=4, group_size=128)
    with pytest.raises(SizingError, match="disagrees with the checkpoint's awq int4") as raised:
        size(config, dtype="int8")
    assert raised.value.key == "dtype"
    assert size(config, dtype="int4").weights_gib == size(config, dtype="bf16").weights_gib


def test_unknown_quantization_is_a_located_error() -> None:
    with pytest.raises(SizingError, match="unsupported quantization_config") as raised:
        size(llama8b(quant_method="no-such-method"))
    assert raised.value.key == "config"


# --------------------------------------------------------------------------- the support table


def test_fp8_only_on_ada_or_hopper() -> None:
    config = llama8b(quant_method="fp8")
    for platform in ("sagemaker", "ec2"):
        chosen = load_catalog().get(size(config, platform=platform).instance_type)
        assert chosen.generation in {"ada", "hopper"}
    with pytest.raises(SizingError, match="cannot serve fp8 weights on A10G"):
        size(config, instance="ml.g5.2xlarge")
    with pytest.raises(SizingError, match="cannot serve fp8 weights on A10G"):
        size(llama8b(), dtype="fp8", instance="ml.g5.2xlarge")


def test_bf16_runs_as_fp16_before_ampere() -> None:
    gpt2 = load_config(CONFIGS / "gpt2.json")
    result = size(gpt2, context=1024)
    assert (result.instance_type, result.accelerator, result.served_dtype) == ("ml.g4dn.xlarge", "T4", "fp16")
    assert size(gpt2, context=1024, instance="ml.g5.xlarge").served_dtype == "bf16"
    with pytest.raises(SizingError, match="tgi cannot serve bf16 weights on V100"):
        size(gpt2, context=1024, instance="ml.p3.2xlarge", runtime="tgi")
    with pytest.raises(SizingError, match="tgi cannot serve int4 weights on T4"):
        size(gpt2, context=1024, dtype="int4", instance="ml.g4dn.xlarge", runtime="tgi")


def test_neuron_only_for_architectures_it_compiles() -> None:
    gemma = Gemma2Config(num_hidden_layers=2, hidden_size=256, intermediate_size=512, head_dim=64)
    with pytest.raises(SizingError, match="Neuron runtime does not compile gemma2"):
        size(gemma, instance="ml.inf2.xlarge", runtime="lmi", context=1024)
    assert size(llama8b(), instance="ml.inf2.xlarge", runtime="lmi").accelerator == "Inferentia2"
    with pytest.raises(SizingError, match="cannot serve fp32 weights on Inferentia2"):
        size(llama8b(), dtype="fp32", instance="ml.inf2.48xlarge", runtime="lmi")


def test_each_runtime_states_its_usable_fraction() -> None:
    config = load_config(CONFIGS / "tinyllama-1.1b.json")
    for runtime, fraction in (("vllm", 0.9), ("tgi", 0.9), ("lmi", 0.9), ("transformers", 0.8)):
        r = size(config, runtime=runtime, context=2048)
        assert r.usable_fraction == fraction
        assert r.usable_gib == pytest.approx(fraction * r.gpu_memory_gib * r.tensor_parallel)


def test_tensor_parallel_divides_attention_and_kv_heads() -> None:
    # 40 query heads in 10 KV groups: tp 4 and 8 would not split the KV heads.
    config = LlamaConfig(
        vocab_size=100352,
        hidden_size=5120,
        intermediate_size=17920,
        num_hidden_layers=40,
        num_attention_heads=40,
        num_key_value_heads=10,
        max_position_embeddings=16384,
    )
    for platform in ("sagemaker", "ec2"):
        r = size(config, context=16384, concurrency=8, platform=platform)
        assert 40 % r.tensor_parallel == 0 and 10 % r.tensor_parallel == 0
        assert r.tensor_parallel in (1, 2)


@pytest.mark.parametrize("runtime", sorted(SUPPORT))
@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp8", "int8", "int4"])
@pytest.mark.parametrize("platform", ["sagemaker", "ec2"])
def test_never_an_instance_the_runtime_cannot_serve_on(runtime: str, dtype: str, platform: str) -> None:
    for name in SHIPPED:
        config = load_config(CONFIGS / f"{name}.json")
        context = min(2048, architecture(config).max_positions or 2048)
        try:
            r = size(config, dtype=dtype, runtime=runtime, platform=platform, context=context, concurrency=2)
        except SizingError as exc:
            assert "needs" in str(exc)  # nothing fits: said, never a wrong pick
            continue
        chosen = load_catalog().get(r.instance_type)
        arch = architecture(config)
        assert unsupported(runtime, chosen, weight_format(config, dtype), arch.model_type) is None, (name, r)
        assert r.total_gib <= r.usable_gib
        assert arch.attention_heads % r.tensor_parallel == 0 and arch.kv_heads % r.tensor_parallel == 0


# --------------------------------------------------------------------------- explanations


def test_runner_up_and_would_fit_if_are_real_alternatives() -> None:
    config = llama8b()
    r = size(config, context=8192)
    e = r.explanation
    assert e is not None and r.instance_type in e.why and f"{r.total_gib:.1f} GiB" in e.why
    assert e.runner_up is not None and e.runner_up.instance_type != r.instance_type
    assert e.runner_up.hourly_usd >= r.hourly_usd
    assert size(config, context=8192, instance=e.runner_up.instance_type).tensor_parallel == e.runner_up.tensor_parallel
    alt = e.would_fit_if
    assert alt is not None and alt.hourly_usd < r.hourly_usd
    assert alt.text.startswith(f"{alt.dtype} would fit on {alt.instance_type} at ${alt.hourly_usd:.4g}/h")
    assert load_catalog().get(alt.instance_type).hourly_usd == alt.hourly_usd
    refit = size(config, context=8192, dtype=alt.dtype, instance=alt.instance_type)
    assert refit.total_gib == pytest.approx(alt.total_gib)
    # Every cheaper instance is accounted for.
    cheaper = [i for i in load_catalog().for_platform("sagemaker") if i.gpus and i.hourly_usd < r.hourly_usd]
    assert len(e.rejected) == len(cheaper)
    assert all(any(i.name in reason for reason in e.rejected) for i in cheaper)


def test_nothing_fits_says_what_would() -> None:
    with pytest.raises(SizingError, match=r"; fp8 would fit on ml\.g6e\.xlarge at \$2\.326/h \(27\.9 of 43\.2 GiB"):
        size(llama8b(), context=131072, concurrency=2, instance="ml.g6e.xlarge")
    with pytest.raises(SizingError, match=r"lower max_context, concurrency or dtype; fp8 would fit on ml\.\S+ at \$"):
        size(llama8b(), context=131072, concurrency=32)


def test_cli_json_carries_the_explanation(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CONFIGS / "llama-3.1-8b.json")
    assert main(["size", path, "--context", "8192", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    explanation = out["explanation"]
    assert out["instance_type"] in explanation["why"]
    assert explanation["runner_up"]["instance_type"] != out["instance_type"]
    assert "would fit on" in explanation["would_fit_if"]["text"]
    assert (out["runtime"], out["usable_fraction"], out["parameter_source"]) == ("vllm", 0.9, "formula")
    assert main(["size", path, "--context", "8192"]) == 0
    text = capsys.readouterr().out
    assert "why:" in text and "runner-up:" in text and "would fit on" in text


def test_cli_dtype_and_runtime_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CONFIGS / "llama-3.1-8b.json")
    assert main(["size", path, "--dtype", "fp8", "--runtime", "tgi", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runtime"] == "tgi" and out["served_dtype"] == "fp8"
    assert load_catalog().get(out["instance_type"]).generation in {"ada", "hopper"}
