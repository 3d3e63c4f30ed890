"""`llmops plan`: which stacks a change between two commits affects, and why.

The answer is computed from git objects alone (never the working tree), so CI
gets the same answer for any pair of refs. Semantics are those of
`git diff BASE...HEAD`: only what HEAD's side changed since the merge base
counts, so merging the target branch into a pull request adds nothing.

Rules, per changed path (renames count on both sides, deletions on the old side):
- `stacks/Pulumi.<stack>.yaml`: that stack (and, split, each of its model stacks).
- `models/<model>.yaml`: the stacks whose environment the model deploys to,
  before or after the change; a side that cannot be read means every stack.
  An environment split into stacks (`layout: split`, llmops.layout) names the model's
  own stack there, `<stack>.<model>`, not its platform stack: a model change costs one
  stack per environment, whatever the size of the fleet.
- `models/configs/*.json`: the models whose `source.config` names the file.
- `models/data/**`: the models whose training dataset uri points at the path, or whose registry
  dataset (`models/datasets/<name>.yaml`) holds it as its source or in its folder.
- `models/datasets/<name>.yaml`: the models that train on that dataset.
- the program and the code it runs (components/, policies/, llmops/, tools/,
  scripts/ but scripts/ci/, `__main__.py`, Pulumi.yaml, pyproject.toml,
  requirements.lock): every stack.
- docs, tests, benchmarks, CI glue and Markdown anywhere: no stack.
- anything else: every stack, because an unknown path is safer deployed than skipped.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops.gitrepo import GitError, git, merge_base, read_blobs, resolve
from llmops.layout import model_stack_name, parse_model_stack, platform_of
from llmops.settings import CONFIG_NAMESPACE, PROMOTION_ORDER

# libyaml is an order of magnitude faster; a plan on a big diff parses every changed model twice.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ZERO_SHA = "0" * 40  # GitHub's `before` for a branch's first push
MODELS = "models/"
STACK_FILE_RE = re.compile(r"^stacks/Pulumi\.([^/.]+)\.yaml$")
MODEL_FILE_RE = re.compile(r"^models/([^/]+)\.yaml$")
CONFIG_FILE_RE = re.compile(r"^models/configs/[^/]+\.json$")
DATASET_FILE_RE = re.compile(r"^models/datasets/([^/]+)\.yaml$")
DATA_PREFIX = "models/data/"
EVERY_STACK_PREFIXES = ("components/", "policies/", "llmops/", "tools/", "scripts/")
EVERY_STACK_FILES = ("__main__.py", "Pulumi.yaml", "pyproject.toml", "requirements.lock")
NO_STACK_PREFIXES = ("docs/", "tests/", ".github/", "benchmarks/", "scripts/ci/", ".ci/")
NO_STACK_FILES = ("models/schema.json", "Makefile", ".gitignore", ".gitattributes", ".editorconfig", "LICENSE")
STATUS_WORDS = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied", "T": "type changed"}
MAX_REASONS_SHOWN = 8


@dataclass(frozen=True)
class FileChange:
    """One changed path; `old_path` is set for renames and copies."""

    status: str
    path: str
    old_path: str | None = None

    @property
    def label(self) -> str:
        word = STATUS_WORDS.get(self.status, self.status)
        if self.old_path and self.old_path != self.path:
            return f"{self.old_path} → {self.path} ({word})"
        return f"{self.path} ({word})"


def changed_files(root: Path, old: str, new: str) -> list[FileChange]:
    """`git diff --name-status -M old new`, parsed from its NUL-separated form."""
    out = git(root, "diff", "--name-status", "-z", "-M", "--no-color", "--no-ext-diff", old, new, "--")
    fields = out.decode("utf-8", errors="surrogateescape").split("\0")
    changes: list[FileChange] = []
    i = 0
    while i < len(fields) - 1:
        status = fields[i][:1]
        if status in ("R", "C"):
            changes.append(FileChange(status, fields[i + 2], fields[i + 1]))
            i += 3
        else:
            changes.append(FileChange(status, fields[i + 1]))
            i += 2
    return changes


def _load(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return yaml.load(data, Loader=_Loader)  # a safe loader, C or pure Python
    except (yaml.YAMLError, UnicodeDecodeError, ValueError):
        return None


MERGE_TAG = "tag:yaml.org,2002:merge"


def _mapping(node: yaml.Node | None) -> dict[str, yaml.Node] | None:
    """A mapping node's plain keys; None for anything else, and for duplicate or merge keys,
    which the registry's loader treats differently: the full load decides those."""
    if not isinstance(node, yaml.MappingNode):
        return None
    out: dict[str, yaml.Node] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == MERGE_TAG or key.value in out:
            return None
        out[key.value] = value
    return out


def _scalar(node: yaml.Node | None) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str" else None


@dataclass(frozen=True)
class ModelFacts:
    """The parts of a registry file that decide where a change lands."""

    environments: frozenset[str]
    config: str | None
    dataset_uri: str | None
    dataset_name: str | None = None  # a registry dataset (models/datasets/<name>.yaml)
    # Where the model runs on EKS: environments naming `platform: eks`, every one when it trains
    # there; "*" for those leaving it to the stack's default endpoint platform.
    eks: frozenset[str] = frozenset()


def model_facts(data: bytes | None) -> ModelFacts | None:
    """None when the file is missing, malformed, or has no readable `deployments` mapping.

    Reads the composed node tree (libyaml, no Python objects built): a plan on a
    big diff reads every changed registry file on both sides, and constructing
    them would cost most of the time budget.
    """
    if data is None:
        return None
    try:
        root = _mapping(yaml.compose(data, Loader=_Loader))
    except (yaml.YAMLError, UnicodeDecodeError, ValueError):
        return None
    deployments = _mapping(root.get("deployments")) if root is not None else None
    if root is None or deployments is None:
        return None
    source = _mapping(root.get("source")) or {}
    training = _mapping(root.get("training")) or {}
    dataset = _mapping(training.get("dataset")) or {}
    return ModelFacts(
        environments=frozenset(deployments),
        config=_scalar(source.get("config")),
        dataset_uri=_scalar(dataset.get("uri")),
        dataset_name=_scalar(dataset.get("name")),
        eks=_eks(deployments, _scalar(training.get("platform")), _mapping(root.get("serving")) or {}),
    )


def _eks(deployments: dict[str, yaml.Node], training: str | None, serving: dict[str, yaml.Node]) -> frozenset[str]:
    if training == "eks":
        return frozenset(deployments)
    out: set[str] = set()
    for env, node in deployments.items():
        platform = _scalar((_mapping(node) or {}).get("platform")) or _scalar(serving.get("platform"))
        if platform == "eks":
            out.add(env)
        elif platform is None:
            out.add(f"{env}:default")
    return frozenset(out)


def stack_layouts(root: Path, rev: str) -> dict[str, tuple[str | None, bool, bool]]:
    """Stack -> (its `llmops:environment`, whether it is split into model stacks, whether its
    default endpoint platform is EKS) at `rev`.

    A `kube` target stack is left out: it is a local Kubernetes on a developer's machine,
    brought up by hand (`make up STACK=kube`) and by its tests, never planned or deployed by
    CI, although it serves the dev environment's deployments.
    """
    listing = git(root, "ls-tree", "-z", "--name-only", rev, "--", "stacks/").decode().split("\0")
    names = {m.group(1): p for p in listing if (m := STACK_FILE_RE.match(p))}
    blobs = read_blobs(root, [f"{rev}:{p}" for p in names.values()])
    out: dict[str, tuple[str | None, bool, bool]] = {}
    for stack, path in sorted(names.items()):
        tree = _load(blobs[f"{rev}:{path}"])
        config = tree.get("config") if isinstance(tree, dict) else None
        if isinstance(config, dict) and config.get(f"{CONFIG_NAMESPACE}:target") == "kube":
            continue
        env = config.get(f"{CONFIG_NAMESPACE}:environment") if isinstance(config, dict) else None
        split = isinstance(config, dict) and config.get(f"{CONFIG_NAMESPACE}:layout") == "split"
        eks = isinstance(config, dict) and config.get(f"{CONFIG_NAMESPACE}:defaultEndpointPlatform") == "eks"
        out[stack] = (env if isinstance(env, str) else None, split, eks)
    return out


@dataclass
class AffectedStack:
    stack: str
    environment: str | None
    promotion: bool  # in the dev → staging → prod chain; False: deployed on its own (local)
    reasons: list[str] = field(default_factory=list)

    @property
    def model(self) -> str | None:
        """The model of a model stack (`<env stack>.<model>`); None for an environment's own stack."""
        ref = parse_model_stack(self.stack)
        return ref.model if ref is not None else None

    @property
    def platform(self) -> str:
        """The environment stack this stack's settings come from (itself, unless a model stack)."""
        return platform_of(self.stack)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "environment": self.environment,
            "promotion": self.promotion,
            "model": self.model,
            "platform": self.platform,
            "reasons": self.reasons,
        }


@dataclass
class Plan:
    base: str
    head: str
    merge_base: str | None
    changes: list[FileChange]
    stacks: list[AffectedStack]
    unaffected: list[str]  # stacks no change reaches
    ignored: list[str]  # changed paths that affect no stack
    notes: list[str]

    @property
    def names(self) -> list[str]:
        return [s.stack for s in self.stacks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "head": self.head,
            "merge_base": self.merge_base,
            "stacks": [s.to_dict() for s in self.stacks],
            "unaffected": self.unaffected,
            "ignored": self.ignored,
            "notes": self.notes,
            "changes": [{"status": c.status, "path": c.path, "old_path": c.old_path} for c in self.changes],
        }


def affects_no_stack(path: str) -> bool:
    """Docs, tests, benchmarks and CI glue: nothing a stack deploys reads them."""
    name = posixpath.basename(path).upper()
    return (
        path.endswith(".md")
        or path in NO_STACK_FILES
        or path.startswith(NO_STACK_PREFIXES)
        or name.startswith(("README", "LICENSE", "CHANGELOG", "CONTRIBUTING"))
    )


def _order_key(stack: AffectedStack) -> tuple[int, str, str]:
    env = stack.environment or ""
    rank = PROMOTION_ORDER.index(env) if env in PROMOTION_ORDER else len(PROMOTION_ORDER)
    return rank, env, stack.stack


def _points_at(uri: str, path: str) -> bool:
    """Whether a dataset uri (a repository path, file or folder) covers `path`."""
    if "://" in uri:
        return False
    norm = posixpath.normpath(uri.strip())
    return path == norm or path.startswith(norm.rstrip("/") + "/")


class _Planner:
    def __init__(self, root: Path, old: str, new: str, stacks: dict[str, tuple[str | None, bool, bool]]):
        self.root, self.old, self.new = root, old, new
        self.stacks = {stack: env for stack, (env, _, _) in stacks.items()}
        self.split = {stack for stack, (_, split, _) in stacks.items() if split}
        self.eks_default = {stack for stack, (_, _, eks) in stacks.items() if eks}
        self.by_env: dict[str, list[str]] = {}
        for stack, env in self.stacks.items():
            if env is not None:
                self.by_env.setdefault(env, []).append(stack)
        self.unknown_env = sorted(s for s, e in self.stacks.items() if e is None)
        self.reasons: dict[str, list[str]] = {s: [] for s in self.stacks}
        self.ignored: list[str] = []
        self.notes: list[str] = []
        self._models_at: dict[str, dict[str, ModelFacts | None]] = {}
        self._facts: dict[bytes, ModelFacts | None] = {}  # by content: unchanged files parse once

    def facts(self, data: bytes | None) -> ModelFacts | None:
        if data is None:
            return None
        if data not in self._facts:
            self._facts[data] = model_facts(data)
        return self._facts[data]

    def every(self, reason: str) -> None:
        for stack in self.stacks:
            self._reach(stack, reason, None)

    def environments(self, envs: Iterable[str], reason: str, models: Iterable[str] | None = None) -> None:
        """Every stack of `envs`; where an environment is split, only the stacks of `models` (None: all)."""
        chosen = None if models is None else sorted(set(models))
        for env in sorted(set(envs)):
            for stack in self.by_env.get(env, []):
                self._reach(stack, reason, chosen)
        for stack in self.unknown_env:  # its environment is unreadable, so it may deploy anything
            self.reasons[stack].append(f"{reason} (stack file unreadable, environment unknown)")

    def _reach(self, stack: str, reason: str, models: list[str] | None) -> None:
        """A reason for `stack`; split, for its model stacks (those of `models`, or every one and itself)."""
        if stack not in self.split:
            self.reasons[stack].append(reason)
            return
        env = self.stacks[stack]
        if models is None:
            self.reasons[stack].append(reason)
            models = sorted(self.deployed(env))
        for model in models:
            self.reasons.setdefault(model_stack_name(stack, model), []).append(reason)

    def deployed(self, env: str | None) -> set[str]:
        """The models deploying to `env` on either side (their stacks exist, or are to be emptied)."""
        names: set[str] = set()
        for rev in (self.old, self.new):
            for path, facts in self.models_at(rev).items():
                if facts is not None and env in facts.environments:
                    names.add(posixpath.basename(path)[: -len(".yaml")])
        return names

    def models_at(self, rev: str) -> dict[str, ModelFacts | None]:
        """Every registry file at `rev`, parsed (only needed for config/data changes)."""
        if rev not in self._models_at:
            listing = git(self.root, "ls-tree", "-z", "--name-only", rev, "--", MODELS).decode().split("\0")
            paths = [p for p in listing if MODEL_FILE_RE.match(p)]
            blobs = read_blobs(self.root, [f"{rev}:{p}" for p in paths])
            self._models_at[rev] = {p: self.facts(blobs[f"{rev}:{p}"]) for p in paths}
        return self._models_at[rev]

    def datasets_holding(self, path: str) -> set[str]:
        """Registry datasets, on either side, whose source file or split folder holds `path`."""
        names: set[str] = set()
        for rev in (self.old, self.new):
            listing = git(self.root, "ls-tree", "-z", "--name-only", rev, "--", "models/datasets/").decode()
            specs = [f"{rev}:{p}" for p in listing.split("\0") if DATASET_FILE_RE.match(p)]
            for spec, blob in read_blobs(self.root, specs).items():
                try:
                    entry = yaml.load(blob or b"", Loader=_Loader)
                except yaml.YAMLError:
                    continue
                if not isinstance(entry, dict):
                    continue
                source = entry.get("source") if isinstance(entry.get("source"), dict) else {}
                held = [str(u) for u in (entry.get("path"), (source or {}).get("file")) if isinstance(u, str)]
                if any(_points_at(u, path) for u in held):
                    names.add(DATASET_FILE_RE.match(spec.split(":", 1)[1]).group(1))  # type: ignore[union-attr]
        return names

    def users(self, matches: Any) -> tuple[set[str], set[str], list[str]]:
        """(environments, model names, unreadable files) of the models, on either side, that `matches`."""
        envs: set[str] = set()
        names: set[str] = set()
        unreadable: list[str] = []
        for rev in (self.old, self.new):
            for path, facts in self.models_at(rev).items():
                if facts is None:
                    unreadable.append(path)
                elif matches(facts):
                    envs |= facts.environments
                    names.add(posixpath.basename(path)[: -len(".yaml")])
        return envs, names, sorted(set(unreadable))

    def run(self, changes: list[FileChange]) -> None:
        model_specs = []
        for change in changes:
            for rev, path in ((self.old, change.old_path or change.path), (self.new, change.path)):
                if MODEL_FILE_RE.match(path):
                    model_specs.append(f"{rev}:{path}")
        blobs = read_blobs(self.root, model_specs)
        for change in changes:
            self.classify(change, blobs)

    def classify(self, change: FileChange, blobs: dict[str, bytes | None]) -> None:
        paths = [p for p in (change.old_path, change.path) if p]
        if any(MODEL_FILE_RE.match(p) for p in paths):
            self.model_change(change, blobs)
        handled = False
        for path in dict.fromkeys(paths):
            if MODEL_FILE_RE.match(path):
                handled = True
            elif m := STACK_FILE_RE.match(path):
                handled = True
                self.stack_change(m.group(1), change)
            elif CONFIG_FILE_RE.match(path):
                handled = True
                self.config_change(path, change)
            elif m := DATASET_FILE_RE.match(path):
                handled = True
                self.dataset_change(m.group(1), change)
            elif path.startswith(DATA_PREFIX):
                handled = True
                self.data_change(path, change)
            elif path in EVERY_STACK_FILES or (
                path.startswith(EVERY_STACK_PREFIXES) and not path.startswith(NO_STACK_PREFIXES)
            ):
                handled = True
                self.every(f"{change.label}: the program or its engine changed")
            elif affects_no_stack(path):
                continue
            else:
                handled = True
                self.every(f"{change.label}: unclassified path, every stack to be safe")
        if not handled:
            self.ignored.append(change.label)

    def model_change(self, change: FileChange, blobs: dict[str, bytes | None]) -> None:
        old_path = change.old_path or change.path
        sides: list[tuple[str, str, str]] = []
        if change.status not in ("A", "C") and MODEL_FILE_RE.match(old_path):
            sides.append(("before", self.old, old_path))
        if change.status != "D" and MODEL_FILE_RE.match(change.path):
            sides.append(("after", self.new, change.path))
        envs: set[str] = set()
        unreadable: list[str] = []
        models: set[str] = set()
        both: dict[str, ModelFacts | None] = {"before": None, "after": None}
        for side, rev, path in sides:
            models.add(MODEL_FILE_RE.match(path).group(1))  # type: ignore[union-attr]
            both[side] = facts = self.facts(blobs.get(f"{rev}:{path}"))
            if facts is None:
                unreadable.append(side)
            else:
                envs |= facts.environments
        if unreadable:
            sides_text = " and ".join(unreadable)
            self.every(f"{change.label}: cannot read its deployments ({sides_text}), every stack to be safe")
            return
        names = sorted(envs)
        reason = f"{change.label}: deploys to {', '.join(names) if names else 'no environment'}"
        self.environments(envs, reason, models)
        self._cluster_users(change, envs, both["before"], both["after"])

    def _cluster_users(self, change: FileChange, envs: set[str], *sides: ModelFacts | None) -> None:
        """A split environment's platform stack builds the EKS cluster its models use (when used):
        a model that starts or stops using it there reaches the platform stack too."""
        for env in sorted(envs):
            for stack in self.by_env.get(env, []):
                if stack not in self.split:
                    continue
                uses = [
                    f is not None and (env in f.eks or (f"{env}:default" in f.eks and stack in self.eks_default))
                    for f in sides
                ]
                if uses[0] != uses[1]:
                    self.reasons[stack].append(f"{change.label}: its use of EKS in {env} changed (the cluster's users)")

    def stack_change(self, stack: str, change: FileChange) -> None:
        if stack in self.stacks:
            self._reach(stack, f"{change.label}: its stack file", None)
        else:
            self.notes.append(
                f"stack {stack} no longer exists ({change.label}): its resources stay until "
                f"`pulumi destroy --stack {stack}` is run"
            )

    def config_change(self, path: str, change: FileChange) -> None:
        config = path[len(MODELS) :]
        envs, names, unreadable = self.users(lambda f: f.config == config)
        self._dependency(change, envs, names, unreadable, "config of")

    def dataset_change(self, dataset: str, change: FileChange) -> None:
        envs, names, unreadable = self.users(lambda f: f.dataset_name == dataset)
        self._dependency(change, envs, names, unreadable, "dataset of")

    def data_change(self, path: str, change: FileChange) -> None:
        datasets = self.datasets_holding(path)
        envs, names, unreadable = self.users(
            lambda f: (f.dataset_uri is not None and _points_at(f.dataset_uri, path)) or f.dataset_name in datasets
        )
        self._dependency(change, envs, names, unreadable, "training data of")

    def _dependency(
        self, change: FileChange, envs: set[str], names: set[str], unreadable: list[str], what: str
    ) -> None:
        if unreadable:
            self.every(f"{change.label}: {', '.join(unreadable)} unreadable, every stack to be safe")
        elif names:
            self.environments(envs, f"{change.label}: {what} {', '.join(sorted(names))}", names)
        else:
            self.ignored.append(f"{change.label} (no model uses it)")


def compute_plan(root: Path, base: str, head: str = "HEAD") -> Plan:
    """The stacks affected by `base...head`, in promotion order, with reasons."""
    new = resolve(root, head)
    stacks = stack_layouts(root, new)
    if base.strip("0") == "" and len(base) == len(ZERO_SHA):
        planner = _Planner(root, new, new, stacks)
        planner.every("no base commit (first push of a branch): every stack")
        return _finish(planner, ZERO_SHA, new, None, [])
    old_tip = resolve(root, base)
    old = merge_base(root, old_tip, new)
    planner = _Planner(root, old, new, stacks)
    changes = changed_files(root, old, new)
    planner.run(changes)
    return _finish(planner, old_tip, new, old, changes)


def _finish(planner: _Planner, base: str, head: str, mb: str | None, changes: list[FileChange]) -> Plan:
    def environment(stack: str) -> str | None:
        return planner.stacks[platform_of(stack)]

    affected = [
        AffectedStack(stack, environment(stack), environment(stack) in PROMOTION_ORDER, list(dict.fromkeys(r)))
        for stack, r in planner.reasons.items()
        if r
    ]
    affected.sort(key=_order_key)
    unaffected = sorted(s for s, r in planner.reasons.items() if not r)
    return Plan(base, head, mb, changes, affected, unaffected, planner.ignored, planner.notes)


# --------------------------------------------------------------------------- CLI


def render(plan: Plan) -> str:
    short = (plan.merge_base or ZERO_SHA)[:12]
    lines = [f"plan {plan.base[:12]}...{plan.head[:12]} (merge base {short}): {len(plan.changes)} changed path(s)"]
    chain = [s for s in plan.stacks if s.promotion]
    alone = [s for s in plan.stacks if not s.promotion]
    if not plan.stacks:
        lines.append("no stack is affected")
    for title, group in (("Promotion order", chain), ("On its own", alone)):
        if not group:
            continue
        lines.append(f"{title}:")
        for i, stack in enumerate(group, 1):
            bullet = f"{i}." if title == "Promotion order" else "-"
            lines.append(f"  {bullet} {stack.stack} (environment {stack.environment or 'unknown'})")
            lines.extend(f"       {reason}" for reason in stack.reasons[:MAX_REASONS_SHOWN])
            if len(stack.reasons) > MAX_REASONS_SHOWN:
                lines.append(f"       … and {len(stack.reasons) - MAX_REASONS_SHOWN} more")
    if plan.unaffected:
        lines.append(f"Unaffected: {', '.join(plan.unaffected)}")
    if plan.ignored:
        lines.append(f"Changes that affect no stack: {len(plan.ignored)}")
        lines.extend(f"  {label}" for label in plan.ignored[:MAX_REASONS_SHOWN])
        if len(plan.ignored) > MAX_REASONS_SHOWN:
            lines.append(f"  … and {len(plan.ignored) - MAX_REASONS_SHOWN} more")
    lines.extend(f"Note: {note}" for note in plan.notes)
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plan", help="the stacks a git change affects, in promotion order, with reasons")
    add_range_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)


def add_range_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, help="the target side (e.g. origin/main, or the push's `before`)")
    p.add_argument("--head", default="HEAD", help="the proposed side (default HEAD)")
    p.add_argument("--repo", type=Path, default=None, help="the git checkout (default: this project)")


def plan_from_args(args: argparse.Namespace) -> tuple[Path, Plan]:
    from llmops.errors import UserError
    from llmops.paths import repo_root

    root = (args.repo or repo_root()).resolve()
    try:
        return root, compute_plan(root, args.base, args.head)
    except GitError as exc:
        raise UserError(str(exc)) from None


def cmd_plan(args: argparse.Namespace) -> int:
    _, plan = plan_from_args(args)
    if args.json:
        json.dump(plan.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(plan))
    return 0
