"""Local training packages: the local target's equivalent of an approved SageMaker model package.

Each local training run, once the model's evaluation suites have measured it, leaves a
package record beside the artifact store:

    <store>/.packages/<model>/<artifact sha256>.json

The record names the artifact by its content digest and carries what made it (lineage:
dataset@version with its md5s, hyperparameters, code commit), the training spec's digest
(the same digest the AWS pipeline runs are named by, `llmops.training_runs.spec_digest`)
and the evaluation: every suite's measured values and each gate's verdict. Nothing serves a
package; `llmops train adopt MODEL --stack local` declares it as a registry version pinned by
digest (`local: "sha256:<hex>"`), and a later change names that version in a variant.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from llmops.local.store import SHA256_RE

PACKAGES_DIR = ".packages"  # under the store root
OUTPUT = "trainingPackages"  # the stack output: model -> summary of its current run's package


class PackageMissingError(LookupError):
    """No package record for this model and artifact on this machine."""


def package_path(store_root: Path, model: str, sha: str) -> Path:
    if not SHA256_RE.match(sha):
        raise ValueError(f"not a sha256: {sha!r}")
    return Path(store_root) / PACKAGES_DIR / model / f"{sha}.json"


def write_package(store_root: Path, record: dict[str, Any]) -> Path:
    """Write (atomically replace) the record of `record["artifactSha256"]`."""
    path = package_path(store_root, str(record["model"]), str(record["artifactSha256"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def read_package(store_root: Path, model: str, sha: str) -> dict[str, Any]:
    path = package_path(store_root, model, sha)
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise PackageMissingError(f"no package record {path}") from None


def gate_values(record: dict[str, Any]) -> dict[str, float]:
    """`suite/metric` -> measured value, for every gated metric of the record."""
    out: dict[str, float] = {}
    for suite, result in sorted((record.get("evaluation") or {}).items()):
        for metric in sorted(result.get("gates") or {}):
            out[f"{suite}/{metric}"] = float(result["metrics"][metric])
    return out


def pinned_folder(root: Path, where: str, sha: str) -> Path:
    """The store folder of an artifact pinned by digest; an error located at `where` when this machine lacks it."""
    from llmops.local.store import STORE_DIR, ArtifactStore

    store = ArtifactStore(Path(root) / STORE_DIR)
    if not store.exists(sha):
        raise PackageMissingError(
            f"{where}: no artifact sha256:{sha[:12]}… in {store.root}: an adopted artifact lives in the "
            "store of the machine that trained it (adopt on that machine, or declare the weights as s3/huggingface)"
        )
    return store.get(sha).resolve()
