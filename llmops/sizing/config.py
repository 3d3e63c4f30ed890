"""Loading a model's transformers config: the registry's local copy, or the hub at the pinned revision."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.registry import Source
from llmops.sizing.errors import SizingError

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def hub_offline() -> bool:
    """huggingface_hub's own reading of HF_HUB_OFFLINE."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@lru_cache(maxsize=128)
def _load_file(path: str, mtime_ns: int) -> PretrainedConfig:
    from transformers import AutoConfig

    config: PretrainedConfig = AutoConfig.from_pretrained(path)
    return config


@lru_cache(maxsize=32)
def _load_hub(repo: str, revision: str) -> PretrainedConfig | None:
    from transformers import AutoConfig

    try:
        config: PretrainedConfig = AutoConfig.from_pretrained(repo, revision=revision)
    except Exception:  # unreachable, gated, unknown, any hub client error: the shipped copy stands in
        return None
    return config


def load_config(path: Path) -> PretrainedConfig:
    """A transformers config from a config.json (or a folder holding one), cached per file version."""
    try:
        resolved = path.resolve()
        return _load_file(str(resolved), resolved.stat().st_mtime_ns)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SizingError(f"cannot load the transformers config {path}: {first}", key="config") from None


def model_config(source: Source, models_dir: Path) -> PretrainedConfig:
    """The hub config at the pinned revision when online, else the registry's local copy."""
    hf = source.huggingface
    if hf is not None and hf.pinned and not hub_offline():
        config = _load_hub(hf.repo, hf.revision)
        if config is not None:
            return config
    return load_config(models_dir / source.config)


def text_config(config: Any) -> Any:
    """The decoder's config: multimodal configs nest it (`text_config`), plain LMs are their own."""
    get = getattr(config, "get_text_config", None)
    if callable(get):
        try:
            return get(decoder=True)
        except TypeError:  # older signature without `decoder`
            return get()
    return config


def attribute(config: Any, name: str) -> Any:
    """A config attribute, or None where it is absent or per-layer (heterogeneous configs refuse a global read)."""
    try:
        return getattr(config, name, None)
    except Exception:  # transformers' AmbiguousGlobalPerLayerAttributeError and kin
        return None


def layer_configs(config: Any) -> list[Any] | None:
    """Per-layer views of a heterogeneous config (transformers' `per_layer_config`), else None."""
    if attribute(config, "is_heterogeneous") is not True:
        return None  # uniform layers: the global attributes hold for every layer
    view = attribute(config, "per_layer_config")
    if view is None:
        return None
    try:
        return [view[i] for i in range(len(view))]
    except Exception:  # not indexable as documented: treat the config as uniform
        return None


def positive_int(config: Any, *names: str) -> int | None:
    """The first of `names` the config sets to a positive int."""
    for name in names:
        value = attribute(config, name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
