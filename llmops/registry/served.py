"""Versions that have served keep their weights: the registry compared with its git history.

A version served once it appeared in an environment's variants in a committed registry
file, on the first-parent history of a base commit (what was merged is what deployed).
Its weights then are its weights for good: the same version with other weights is
refused at its line, and new weights need a new version. A trained version
(`local: "@training"`) is its training run, so its weights are the training section's
base model, dataset and hyperparameters while it serves; once it serves nowhere, the spec may
change (the runs are then candidates, adopted as versions pinned by digest: `llmops train
adopt`), and naming it in a variant again with another spec is refused.

History is read from git objects (one `git log`, one `git cat-file --batch`), in the
old shape too (a variant's own `source`, else the model's), so versions that served
before `versions:` existed are held to the weights they served with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmops.gitrepo import GitError, git, merge_base, read_blobs, resolve
from llmops.registry.loader import Registry
from llmops.registry.problems import Problem
from llmops.registry.schema import SHA_RE, TRAINING_OUTPUT

MODELS = "models"
MAIN_BRANCHES = ("main", "origin/main")
ZERO_SHA = "0" * 40
# What a trained version's weights are made of; instance, budget and checkpoints are not.
TRAINING_WEIGHTS = ("base_model", "dataset", "hyperparameters")
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Served:
    """A version's weights the last time it served, and where."""

    weights: str  # canonical JSON, see `weights_key`
    commit: str
    environments: tuple[str, ...]
    trained: bool


def weights_key(source: Any, entry: dict[str, Any]) -> str:
    """Canonical JSON of a version's weights; a trained version's include its training inputs."""
    if not isinstance(source, dict):
        return json.dumps(source, sort_keys=True, default=str)
    weights: dict[str, Any] = {}
    if isinstance(source.get("huggingface"), dict):
        hf = source["huggingface"]
        weights["huggingface"] = {"repo": hf.get("repo"), "revision": hf.get("revision") or ""}
    if isinstance(source.get("s3"), dict):
        s3 = source["s3"]
        weights["s3"] = {"uri": s3.get("uri"), "version_id": s3.get("version_id")}
    if "local" in source:
        weights["local"] = source["local"]
    if source.get("local") == TRAINING_OUTPUT:
        training = _mapping(entry.get("training"))
        weights["training"] = {k: training.get(k) for k in TRAINING_WEIGHTS}
    return json.dumps(weights, sort_keys=True, default=str)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _variants(entry: dict[str, Any], environment: str) -> list[dict[str, Any]]:
    override = _mapping(_mapping(entry.get("deployments")).get(environment))
    variants = override.get("variants") or _mapping(entry.get("serving")).get("variants")
    return [v for v in variants if isinstance(v, dict)] if isinstance(variants, list) else []


def version_weights(entry: dict[str, Any]) -> dict[str, str]:
    """Version -> weights key of one parsed registry file, in the `versions` shape or the older one."""
    out: dict[str, str] = {}
    versions = entry.get("versions")
    if isinstance(versions, dict):
        out = {str(v): weights_key(s, entry) for v, s in versions.items()}
    model_source = entry.get("source")
    deployments = _mapping(entry.get("deployments"))
    for env in deployments:
        for variant in _variants(entry, env):
            version = str(variant.get("version"))
            if version not in out:  # the older shape: a variant's own source, else the model's
                out[version] = weights_key(variant.get("source") or model_source, entry)
    return out


def served_versions(entry: dict[str, Any]) -> dict[str, list[str]]:
    """Version -> the environments whose variants name it."""
    out: dict[str, list[str]] = {}
    deployments = _mapping(entry.get("deployments"))
    for env in deployments:
        for variant in _variants(entry, env):
            out.setdefault(str(variant.get("version")), []).append(str(env))
    return out


def served_history(root: Path, base: str, wanted: dict[str, set[str]] | None = None) -> dict[str, dict[str, Served]]:
    """Model -> version -> its weights the last time it served, along `base`'s first-parent history.

    With `wanted` (model -> versions), only those are looked for, and a model's older
    revisions are not parsed once each of its wanted versions is found.
    """
    log = git(
        root, "log", "--first-parent", "--diff-merges=first-parent", "--raw", "--no-abbrev", "--no-renames",
        "--format=%x1e%H", base, "--", f"{MODELS}/*.yaml",
    ).decode("utf-8", errors="surrogateescape")  # fmt: skip
    states: list[tuple[str, str, str]] = []  # (commit, model, blob), newest first
    for record in log.split("\x1e")[1:]:
        commit, *lines = record.strip("\n").split("\n")
        for line in lines:
            meta, _, path = line.partition("\t")
            fields = meta.split()
            if len(fields) < 5 or path.count("/") != 1:
                continue
            blob = fields[3]
            if blob != ZERO_SHA:  # a deleted file serves nothing from then on
                states.append((commit, path[len(MODELS) + 1 : -len(".yaml")], blob))
    if wanted is not None:
        states = [s for s in states if s[1] in wanted]
    blobs = read_blobs(root, [blob for _, _, blob in states])
    out: dict[str, dict[str, Served]] = {}
    for commit, model, blob in states:
        seen = out.setdefault(model, {})
        if wanted is not None and wanted[model] <= set(seen):
            continue
        entry = _load(blobs.get(blob))
        if entry is None:
            continue
        weights = version_weights(entry)
        for version, envs in served_versions(entry).items():
            if version not in seen and version in weights:
                trained = json.loads(weights[version]).get("local") == TRAINING_OUTPUT
                seen[version] = Served(weights[version], commit, tuple(envs), trained)
    return out


def _load(data: bytes | None) -> dict[str, Any] | None:
    try:
        entry = yaml.load(data, Loader=_Loader) if data else None
    except (yaml.YAMLError, UnicodeDecodeError, ValueError):
        return None  # an unreadable revision deployed nothing: CI refuses such a file
    return entry if isinstance(entry, dict) else None


def default_base(root: Path) -> str | None:
    """The merge base of HEAD with main (what has deployed), else HEAD; None outside a git checkout
    (or one without commits)."""
    for branch in MAIN_BRANCHES:
        try:
            return merge_base(root, branch, "HEAD")
        except (GitError, OSError):
            continue
    try:
        return resolve(root, "HEAD")
    except (GitError, OSError):
        return None


def changed_weights(registry: Registry, root: Path, base: str, only: set[str] | None = None) -> list[Problem]:
    """A located problem for each version whose weights differ from those it served with up to `base`."""
    if base.strip("0") == "":
        return []  # no base commit (a branch's first push): nothing has served yet
    models = [m for m in registry.located if only is None or m in only]
    wanted = {m: set(registry.models[m].versions) for m in models}
    served = served_history(root, base if SHA_RE.match(base) else resolve(root, base), wanted)
    problems: list[Problem] = []
    for model in models:
        located = registry.located[model]
        now = version_weights(located.data)
        serving_now = served_versions(located.data)
        entry = registry.models[model]
        for version in entry.versions:
            before = served.get(model, {}).get(version)
            if before is None or now.get(version) == before.weights:
                continue
            where = ", ".join(before.environments)
            trained_now = entry.versions[version].local == TRAINING_OUTPUT
            if before.trained and trained_now and version not in serving_now:
                # "@training" names the current run; serving nowhere now, it is a candidate, not served weights.
                # Serving it again with another spec is refused here (it then serves now).
                continue
            if before.trained and trained_now:
                loc: tuple[str, ...] = ("training",)
                what = f"{version} is this model's training run, and its {'/'.join(TRAINING_WEIGHTS)} changed"
            else:
                loc, what = ("versions", version), f"the weights of {version} changed"
            problems.append(
                registry.problem(
                    model,
                    loc,
                    f"{what} since it served in {where} (commit {before.commit[:12]}): a version that has served "
                    "keeps its weights; declare the new weights as a new version and promote that",
                )
            )
    return problems
