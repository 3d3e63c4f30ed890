"""Sizing results kept by what decides them, so a repeat sizing imports neither transformers nor torch.

Reading a config needs transformers (its config classes fill in defaults), and transformers
imports torch: seconds before the first number, for an answer that changes only when its
inputs do. The key hashes every input: the config file's bytes, the serving settings and
the instance choice, the sizing code and the instance catalog (their source files), and
the transformers and torch versions. Errors are kept as well as results, so a registry
that does not fit is reported as fast. Entries live in `results.json` beside the parameter
cache (the newest `KEEP`), written once as the process exits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from llmops.sizing import store
from llmops.sizing.errors import SizingError
from llmops.sizing.pick import Alternative, Explanation, SizingResult

KEEP = 512
_VERSIONED = ("transformers", "torch")  # their config classes and model builders decide the counts


def results_path() -> Path:
    return store.cache_dir() / "results.json"


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """A hash of the code that sizes: this package, the catalog and the libraries' versions."""
    digest = hashlib.sha256()
    package = Path(__file__).parent
    llmops_dir = package.parent
    for file in [*sorted(package.glob("*.py")), llmops_dir / "catalog.py", llmops_dir / "data" / "catalog.yaml"]:
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    for dist in _VERSIONED:
        try:
            digest.update(f"{dist}=={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{dist} absent".encode())
    return digest.hexdigest()


def result_key(config_file: Path, inputs: dict[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, default=str)
    digest = hashlib.sha256(f"{_code_fingerprint()}\n{text}\n".encode())
    digest.update(config_file.read_bytes())
    return digest.hexdigest()[:32]


def _result(data: dict[str, Any]) -> SizingResult:
    explanation = data.pop("explanation", None)
    if explanation is not None:
        alternatives = {
            k: Alternative(**explanation[k]) if explanation.get(k) else None for k in ("runner_up", "would_fit_if")
        }
        explanation = Explanation(explanation["why"], rejected=tuple(explanation["rejected"]), **alternatives)
    return SizingResult(**data, explanation=explanation)


def cached_size(config_file: Path, inputs: dict[str, Any], size: Callable[[], SizingResult]) -> SizingResult:
    """`size()`, or what it returned (or raised) before for the same config file, inputs and code."""
    try:
        key = result_key(config_file, inputs)
    except OSError:  # the config cannot be read: let sizing say so
        return size()
    path = results_path()
    entry = store.read_entries(path).get(key)
    if entry is not None and isinstance(entry.get("error"), str):
        raise SizingError(entry["error"], key=str(entry.get("key", "instance")))
    if entry is not None:
        try:
            return _result(dict(entry["result"]))
        except (KeyError, TypeError, ValueError):  # written by other code: size again
            pass
    try:
        result = size()
    except SizingError as exc:
        store.write_entry(path, key, {"error": str(exc), "key": exc.key}, keep=KEEP, defer=True)
        raise
    store.write_entry(path, key, {"result": dataclasses.asdict(result)}, keep=KEEP, defer=True)
    return result
