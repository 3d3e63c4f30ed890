"""Checks that need more than one file: its name, the instance catalog, the stacks, production rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llmops.catalog import load_catalog
from llmops.registry.located import Located
from llmops.registry.problems import Problem
from llmops.registry.schema import EVALS_DIR, Deployment, ModelEntry
from llmops.settings import StackSettings, environments


def cross_checks(
    entry: ModelEntry, located: Located, path: Path, display: str, stacks: dict[str, StackSettings], models_dir: Path
) -> list[Problem]:
    """Checks that need more than the file: its name, the catalog, the stacks."""
    problems: list[Problem] = []

    def add(loc: tuple[int | str, ...], message: str) -> None:
        line, shown = located.locate(loc, keep_last=True)
        problems.append(Problem(display, line, shown, message))

    if entry.name != path.stem:
        add(("name",), f"name {entry.name!r} differs from the file name {path.stem!r}")
    catalog = set(load_catalog().names())
    if entry.serving.instance != "auto" and entry.serving.instance not in catalog:
        add(("serving", "instance"), f"unknown instance type {entry.serving.instance!r}")
    if entry.training and entry.training.instance not in catalog:
        add(("training", "instance"), f"unknown instance type {entry.training.instance!r}")
    if not (models_dir / entry.source.config).is_file():
        add(("source", "config"), f"no such file: {models_dir.name}/{entry.source.config}")
    for i, gate in enumerate(entry.compliance.evaluation):
        if not (models_dir / EVALS_DIR / gate.suite).is_dir():
            add(("compliance", "evaluation", i, "suite"), f"no suite {models_dir.name}/{EVALS_DIR}/{gate.suite}/")

    envs = environments(stacks)
    production = {s.environment for s in stacks.values() if s.production}
    for env, override in entry.deployments.items():
        if stacks and env not in envs:
            add(("deployments", env), f"no stack deploys environment {env!r} (known: {', '.join(sorted(envs))})")
        if override and override.instance and override.instance not in catalog:
            add(("deployments", env, "instance"), f"unknown instance type {override.instance!r}")
        deployment = entry.deployment(env)
        if deployment.min_replicas > deployment.max_replicas:
            add(
                ("deployments", env, "min_replicas"),
                f"min_replicas ({deployment.min_replicas}) > max_replicas ({deployment.max_replicas}) in {env!r}",
            )
        _shadow_check(entry, deployment, add)
        # A stack that lists its models (a review or kube stack) judges only those.
        serving = [s for s in stacks.values() if s.environment == env and (not s.models or entry.name in s.models)]
        _scale_to_zero_check(entry, deployment, serving, add)
        if env in production:
            _production_checks(entry, deployment, add)
    _training_checks(entry, [stacks[s] for env in entry.deployments for s in envs.get(env, [])], add)
    _hub_token_checks(entry, stacks, add)
    _dataset_checks(entry, models_dir, add)
    return problems


_Add = Callable[[tuple[int | str, ...], str], None]


def _shadow_check(entry: ModelEntry, deployment: Deployment, add: _Add) -> None:
    """A shadow copies live requests to a version that does not answer them: one that also
    answers would get mirrored copies of its own traffic, counted twice."""
    shadow = deployment.shadow
    if shadow is None or shadow.version not in {v.version for v in deployment.variants}:
        return
    override = entry.deployments.get(deployment.environment)
    where: tuple[str, ...] = ("deployments", deployment.environment) if override and override.shadow else ("serving",)
    add(
        (*where, "shadow", "version"),
        f"shadow version {shadow.version!r} is also a live variant in {deployment.environment!r}: "
        "shadow a version that takes no traffic",
    )


def _scale_to_zero_check(entry: ModelEntry, deployment: Deployment, stacks: list[StackSettings], add: _Add) -> None:
    """Scale to zero only where every stack of the environment allows it, and where a target implements it."""
    if deployment.scale_to_zero is None:
        return
    env = deployment.environment
    override = entry.deployments.get(env)
    where: tuple[str, ...] = ("deployments", env) if override and override.scale_to_zero else ("serving",)
    refusing = [s for s in stacks if not s.allows_scale_to_zero]
    if refusing:
        production = " (a production environment)" if any(s.production for s in refusing) else ""
        add(
            (*where, "scale_to_zero"),
            f"scale to zero is not allowed in {env!r}{production}: its stack file opts in with "
            "`llmops:scaleToZero: {allowed: true}`",
        )
        return
    shadow = deployment.shadow is not None
    for reason in dict.fromkeys(
        s.scale_to_zero_unsupported(deployment.platform, len(deployment.variants), shadow) for s in stacks
    ):
        if reason is not None:
            add((*where, "scale_to_zero"), f"scale to zero in {env!r}: {reason}")


def _production_checks(entry: ModelEntry, deployment: Deployment, add: _Add) -> None:
    """A prod environment serves only pinned weights that passed their evaluation gate."""
    env = deployment.environment
    for variant in deployment.variants:
        src = deployment.variant_source(variant)
        if src.pinned:
            continue
        where = ("versions", variant.version)
        loc = (*where, "huggingface", "revision") if src.huggingface else (*where, "s3", "version_id")
        add(loc, f"unpinned revision for production environment {env!r}: pin a commit sha or version id")
    if not entry.compliance.evaluation:
        add(("compliance", "evaluation"), f"production environment {env!r} needs at least one evaluation gate")


def _training_checks(entry: ModelEntry, stacks: list[StackSettings], add: _Add) -> None:
    """Training settings that only fail once a job is created on AWS."""
    training = entry.training
    aws = [s for s in stacks if s.target == "aws"]
    if training is None or not aws:
        return
    if training.checkpoint and not training.checkpoint.startswith("s3://"):
        add(("training", "checkpoint"), f"checkpoints on AWS go to s3://, got {training.checkpoint!r}")
    for settings in aws:
        if training.platform == "eks" and training.pool:
            pools = [p.name for p in settings.cluster.gpu_pools]
            if training.pool not in pools:
                add(("training", "pool"), f"no GPU pool {training.pool!r} in environment {settings.environment!r}")


def _hub_token_checks(entry: ModelEntry, stacks: dict[str, StackSettings], add: _Add) -> None:
    """A gated hub repository loads only with a token: every AWS stack that serves a gated version, or
    trains from a gated base, names the secret holding it. (The local target reads the machine's own
    token, as huggingface_hub does.)"""
    base = entry.gated_training_base()
    for stack, settings in sorted(stacks.items()):
        env = settings.environment
        if settings.target != "aws" or settings.hf_token_secret or env not in entry.deployments:
            continue
        if settings.models and entry.name not in settings.models:
            continue
        deployment = entry.deployment(env)
        hosted = [v.version for v in deployment.variants] + ([deployment.shadow.version] if deployment.shadow else [])
        uses = {v: "serves" for v in hosted if entry.versions[v].gated}
        if base is not None:
            uses.setdefault(base, "is the training base")
        for version, how in sorted(uses.items()):
            repo = entry.versions[version].huggingface
            assert repo is not None
            add(
                ("versions", version, "huggingface", "gated"),
                f"{version} ({repo.repo}) is gated on the Hugging Face hub and {how} in stack {stack!r}, which "
                f"names no token: set `llmops:hfTokenSecret` in stacks/Pulumi.{stack}.yaml to the Secrets Manager "
                "secret holding it (README, Gated models)",
            )


def _dataset_checks(entry: ModelEntry, models_dir: Path, add: _Add) -> None:
    """A dataset reference names an entry of models/datasets/ at that version."""
    names = []
    if entry.training and entry.training.dataset.name:
        names.append((("training", "dataset", "name"), entry.training.dataset.name, entry.training.dataset.version))
    if entry.monitoring.drift and entry.monitoring.drift.dataset:
        names.append((("monitoring", "drift", "dataset"), entry.monitoring.drift.dataset, None))
    elif entry.monitoring.drift and not entry.monitoring.drift_dataset(entry):
        add(("monitoring", "drift"), "drift needs a reference dataset: set `dataset` or train from a registry dataset")
    if not names:
        return
    # Imported here: llmops.datasets.registry builds on this package's submodules, and importing
    # any of them runs this package's __init__ first.
    from llmops.datasets.registry import load_datasets

    datasets, _ = load_datasets(models_dir.parent, models_dir)
    for loc, name, version in names:
        try:
            datasets.get(name, version)
        except KeyError as exc:
            add(loc, str(exc.args[0]))
