"""Loading a model's transformers config: the registry's shipped copy, or the hub once for a model that ships none.

The copy under models/configs/ (`source.config`) is the source for sizing: reading it
opens no connection, so validate, size, cost and preview work the same offline, in CI
and on a laptop. Only a model whose config is not in the repository asks the hub, once
(no retries: a minute of backoff per model helps nobody), for the pinned revision, and
keeps the answer under the state folder; a pinned revision never changes.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.registry import Source
from llmops.sizing.errors import SizingError

if TYPE_CHECKING:
    from transformers import PretrainedConfig

HUB_TIMEOUT_S = 10.0  # one attempt, connect and read each
_hub_failures: dict[tuple[str, str], str] = {}  # (repo, revision) -> why: one attempt per process, not per stack


def hub_offline() -> bool:
    """huggingface_hub's own reading of HF_HUB_OFFLINE."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@lru_cache(maxsize=128)
def _load_file(path: str, mtime_ns: int) -> PretrainedConfig:
    from transformers import AutoConfig

    config: PretrainedConfig = AutoConfig.from_pretrained(path)
    return config


def load_config(path: Path) -> PretrainedConfig:
    """A transformers config from a config.json (or a folder holding one), cached per file version."""
    try:
        resolved = path.resolve()
        return _load_file(str(resolved), resolved.stat().st_mtime_ns)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SizingError(f"cannot load the transformers config {path}: {first}", key="config") from None


def hub_copy_path(repo: str, revision: str) -> Path:
    """Where a config fetched from the hub is kept (next to the sizing caches)."""
    from llmops.sizing.store import cache_dir

    return cache_dir() / "hub" / repo.replace("/", "--") / revision / "config.json"


def _fetch_once(repo: str, revision: str, target: Path) -> None:
    """GET the pinned config.json once into `target`; SizingError with the reason otherwise."""
    from huggingface_hub import get_session, get_token, hf_hub_url

    url = hf_hub_url(repo, "config.json", revision=revision)
    # Not build_hf_headers(): its user agent asks the hub for a registry of agents first, a second connection.
    token = get_token()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = get_session().get(url, headers=headers, timeout=HUB_TIMEOUT_S, follow_redirects=True)
        if response.status_code in (401, 403):
            raise SizingError(f"{url} answered {response.status_code} (gated or private: set HF_TOKEN)", key="config")
        response.raise_for_status()
        config = json.loads(response.content)
    except SizingError:
        raise
    except Exception as exc:  # any transport, HTTP or JSON failure: one attempt, then a clear message
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise SizingError(f"fetching {url} failed: {type(exc).__name__}: {first}", key="config") from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, suffix=".tmp") as tmp:
            json.dump(config, tmp, indent=2)
        os.replace(tmp.name, target)  # readers see no file or the whole file
    except OSError as exc:
        raise SizingError(f"cannot keep the fetched config at {target}: {exc}", key="config") from None


def config_path(source: Source, models_dir: Path) -> Path:
    """The config.json sizing reads: the shipped copy, else the pinned hub revision's, fetched once."""
    shipped = models_dir / source.config
    if shipped.is_file():
        return shipped
    where = f"{models_dir.name}/{source.config} is not in the repository"
    hf = source.huggingface
    if hf is None or not hf.pinned:
        raise SizingError(
            f"{where}, and only a pinned Hugging Face revision could stand in: add the file", key="config"
        )
    copy = hub_copy_path(hf.repo, hf.revision)
    if copy.is_file():
        return copy
    if hub_offline():
        raise SizingError(
            f"{where} and HF_HUB_OFFLINE is set: add {hf.repo}'s config.json (revision {hf.revision}) there",
            key="config",
        )
    failed = _hub_failures.get((hf.repo, hf.revision))
    if failed is None:
        try:
            _fetch_once(hf.repo, hf.revision, copy)
            return copy
        except SizingError as exc:
            failed = _hub_failures[(hf.repo, hf.revision)] = str(exc)
    raise SizingError(f"{where}; {failed}; add the file", key="config")


def model_config(source: Source, models_dir: Path) -> PretrainedConfig:
    """The transformers config a registry model is sized from (see `config_path`)."""
    return load_config(config_path(source, models_dir))


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
