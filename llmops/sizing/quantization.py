"""The weights' storage format: the checkpoint's `quantization_config`, or the serving dtype.

Weight-only quantization (AWQ, GPTQ, bitsandbytes, FP8, compressed-tensors) stores the
decoder's linear weights at `bits` plus per-group scales (16-bit scale and, for asymmetric
schemes, a zero point of `bits` per `group_size` weights); the embeddings and an untied
output head stay 16-bit. A float dtype stores every weight at that width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmops.sizing.errors import SizingError
from llmops.sizing.params import ParameterCount

BYTES_PER_PARAMETER: dict[str, float] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
FLOAT_DTYPES = frozenset({"fp32", "bf16", "fp16"})
QUANTIZED_DTYPES = frozenset({"fp8", "int8", "int4", "mxfp4"})
# Bytes the cache spends per element: weight-only int8/int4 keep a 16-bit cache, fp8 serving an 8-bit one.
KV_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 2, "int4": 2, "mxfp4": 2}
# A requested int4/int8 without a checkpoint format: sized as AWQ/GPTQ's usual layout.
DEFAULT_GROUP = 128


@dataclass(frozen=True)
class WeightFormat:
    precision: str  # fp32 | bf16 | fp16 | fp8 | int8 | int4 | mxfp4: what the support table is keyed by
    method: str  # "float", "requested" (--dtype / serving dtype) or the checkpoint's quant_method
    bits: float  # of a quantized weight
    scale_bytes: float = 0.0  # per quantized weight (group scales and zero points)

    @property
    def quantized(self) -> bool:
        return self.precision in QUANTIZED_DTYPES

    def weight_bytes(self, count: ParameterCount) -> float:
        if not self.quantized:
            return count.total * BYTES_PER_PARAMETER[self.precision]
        return count.body * (self.bits / 8 + self.scale_bytes) + count.embeddings * 2

    def describe(self) -> str:
        if not self.quantized:
            return self.precision
        source = "requested" if self.method == "requested" else f"checkpoint {self.method}"
        return f"{self.precision} ({source}, {self.bits / 8 + self.scale_bytes:.3f} bytes/weight)"


def _group_scales(bits: float, group: int | None, zero_point: bool) -> float:
    if not group or group < 0:  # per output channel: negligible
        return 0.0
    return (2 + (bits / 8 if zero_point else 0)) / group


def _as_dict(qc: Any) -> dict[str, Any]:
    if isinstance(qc, dict):
        return qc
    to_dict = getattr(qc, "to_dict", None)
    return to_dict() if callable(to_dict) else dict(vars(qc))


def checkpoint_format(config: Any) -> WeightFormat | None:
    """The format of a quantized checkpoint, from its config's `quantization_config` (None: not quantized)."""
    qc_raw = getattr(config, "quantization_config", None)
    if qc_raw is None:
        return None
    qc = _as_dict(qc_raw)
    method = str(qc.get("quant_method", "")).lower()
    if method in {"awq", "gptq"}:
        bits = int(qc.get("bits", qc.get("w_bit", 4)))
        group = qc.get("group_size", qc.get("q_group_size", DEFAULT_GROUP))
        zero = method == "awq" or not qc.get("sym", True)
        return WeightFormat(_int_precision(bits, method), method, bits, _group_scales(bits, group, zero))
    if method == "bitsandbytes":
        if qc.get("load_in_4bit"):
            # absmax per 64-weight block: fp32, or 8-bit plus a second-level fp32 per 256 blocks when double-quantized
            scales = (1 + 4 / 256) / 64 if qc.get("bnb_4bit_use_double_quant") else 4 / 64
            return WeightFormat("int4", method, 4, scales)
        if qc.get("load_in_8bit"):
            return WeightFormat("int8", method, 8)
    if method in {"fp8", "fbgemm_fp8"}:
        return WeightFormat("fp8", method, 8)
    if method == "mxfp4":
        return WeightFormat("mxfp4", method, 4, 1 / 32)  # one 8-bit exponent per 32 weights
    if method == "compressed-tensors":
        for group in (qc.get("config_groups") or {}).values():
            weights = (group or {}).get("weights") or {}
            bits = int(weights.get("num_bits", 0))
            if weights.get("type") == "float" and bits == 8:
                return WeightFormat("fp8", method, 8)
            if bits in (4, 8):
                zero = not weights.get("symmetric", True)
                return WeightFormat(
                    _int_precision(bits, method), method, bits, _group_scales(bits, weights.get("group_size"), zero)
                )
    raise SizingError(f"unsupported quantization_config (quant_method {method or 'missing'!r})", key="config")


def _int_precision(bits: int, method: str) -> str:
    if bits not in (4, 8):
        raise SizingError(f"{method} with {bits}-bit weights: only 4- and 8-bit are served", key="config")
    return f"int{bits}"


def weight_format(config: Any, dtype: str) -> WeightFormat:
    """How the weights are stored when `config` is served at `dtype`.

    A quantized checkpoint decides the weights; a float `dtype` then only sets the compute
    and cache precision, and a quantized `dtype` must name the checkpoint's own precision.
    """
    if dtype not in BYTES_PER_PARAMETER:
        raise SizingError(f"unknown dtype {dtype!r} (one of {', '.join(BYTES_PER_PARAMETER)})", key="dtype")
    checkpoint = checkpoint_format(config)
    if checkpoint is None:
        if dtype in FLOAT_DTYPES:
            return WeightFormat(dtype, "float", BYTES_PER_PARAMETER[dtype] * 8)
        bits = BYTES_PER_PARAMETER[dtype] * 8
        scales = _group_scales(bits, DEFAULT_GROUP, zero_point=True) if dtype == "int4" else 0.0
        return WeightFormat(dtype, "requested", bits, scales)
    if dtype in QUANTIZED_DTYPES and dtype != checkpoint.precision:
        raise SizingError(
            f"dtype {dtype} disagrees with the checkpoint's {checkpoint.method} {checkpoint.precision} weights",
            key="dtype",
        )
    return checkpoint


def kv_bytes(fmt: WeightFormat, dtype: str) -> int:
    """Bytes per cached element: the compute dtype's for a quantized checkpoint served at a float dtype."""
    if fmt.method not in {"float", "requested"} and dtype in FLOAT_DTYPES:
        return KV_BYTES[dtype]
    return KV_BYTES[fmt.precision]
