"""Git-native progressive delivery: every decision is an ordinary commit of `models/`.

- `history`: from the git history of `models/`, which versions serve an environment,
  from which commit and since when;
- `advance`: acts on an experiment's verdict: the canary's next weight step (through
  `llmops promote`), its removal with the report in the commit message, or nothing;
- `rollback`: the revert commit of the environment's last registry change (or of
  every change after a given commit).

CI (`llmops ci deploy`) applies these commits like any other; git history is the
audit log. Nothing here touches a stack.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from llmops import paths
from llmops.experiments.data import ExperimentData
from llmops.experiments.report import Report, build_report
from llmops.promote import PromotionError, promote
from llmops.registry import Deployment, RegistryError, load_registry
from llmops.settings import load_all_stacks

MODELS = "models"
Collect = Callable[[Deployment, float, float], ExperimentData]


class DeliveryError(Exception):
    """The action cannot be taken as asked; nothing was written or committed."""


def git(root: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    result = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise DeliveryError(f"git {' '.join(args[:2])} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def environment_of(root: Path, stack: str) -> str:
    """The environment a stack deploys (a model stack `<env>.<model>`: its environment stack's)."""
    from llmops.layout import LayoutError, stack_settings

    try:
        return stack_settings(paths.stacks_dir(root), stack).environment
    except LayoutError as exc:
        raise DeliveryError(str(exc)) from None


# --------------------------------------------------------------------------- history

State = tuple[tuple[str, int], ...]  # (version, weight) per variant; () = not deployed


@dataclass(frozen=True)
class Change:
    commit: str
    date: str  # committer date, ISO 8601
    subject: str
    state: State

    @property
    def timestamp(self) -> float:
        return datetime.fromisoformat(self.date).timestamp()


@dataclass
class ModelHistory:
    model: str
    environment: str
    changes: list[Change] = field(default_factory=list)  # oldest first, one per change of state

    @property
    def current(self) -> Change | None:
        return self.changes[-1] if self.changes else None


def state_of(entry: Any, environment: str) -> State:
    """The variants an environment serves in one parsed registry file (plain YAML)."""
    if not isinstance(entry, dict):
        return ()
    deployments = entry.get("deployments")
    if not isinstance(deployments, dict) or environment not in deployments:
        return ()
    override = deployments.get(environment) or {}
    variants = (override.get("variants") if isinstance(override, dict) else None) or (
        (entry.get("serving") or {}).get("variants") or []
    )
    return tuple((str(v.get("version")), int(v.get("weight") or 0)) for v in variants if isinstance(v, dict))


def history(root: Path, environment: str, ref: str = "HEAD") -> dict[str, ModelHistory]:
    """Model -> its changes of state in `environment`, along the first-parent history of `ref`."""
    log = git(
        root, "log", "--first-parent", "--reverse", "--format=%x1e%H%x1f%cI%x1f%s", "--name-only", ref, "--", MODELS
    )
    out: dict[str, ModelHistory] = {}
    for record in log.split("\x1e"):
        if not record.strip():
            continue
        header, *files = record.strip("\n").split("\n")
        sha, date, subject = header.split("\x1f", 2)
        for name in files:
            if not (name.startswith(f"{MODELS}/") and name.endswith(".yaml") and name.count("/") == 1):
                continue
            model = name[len(MODELS) + 1 : -len(".yaml")]
            text = git(root, "show", f"{sha}:{name}", check=False)
            try:
                entry = yaml.safe_load(text) if text else None
            except yaml.YAMLError:
                continue  # an unparsable revision deployed nothing; CI refuses it
            state = state_of(entry, environment)
            h = out.setdefault(model, ModelHistory(model, environment))
            if (h.current.state if h.current else ()) != state:
                h.changes.append(Change(sha, date, subject, state))
    return {m: h for m, h in sorted(out.items()) if h.changes}


def format_state(state: State) -> str:
    return ", ".join(f"{v} {w}%" for v, w in state) if state else "not deployed"


# --------------------------------------------------------------------------- commits


def _clean(root: Path) -> None:
    if git(root, "status", "--porcelain", "--", MODELS).strip():
        raise DeliveryError(f"{MODELS}/ has uncommitted changes: commit or stash them first")


def _commit(root: Path, path: Path, text: str, subject: str, body: str) -> str:
    rel = str(path.relative_to(root))
    before = path.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    try:
        git(root, "add", "--", rel)
        git(root, "commit", "--quiet", "-m", subject, "-m", body, "--", rel)
    except DeliveryError:
        path.write_text(before, encoding="utf-8")
        git(root, "reset", "--quiet", "--", rel, check=False)
        raise
    return git(root, "rev-parse", "HEAD").strip()


# --------------------------------------------------------------------------- advance


@dataclass(frozen=True)
class Decision:
    model: str
    action: str  # "promote" | "rollback" | "none" | "skip"
    detail: str
    commit: str | None = None
    report: Report | None = None


def next_step(steps: list[int], weight: int) -> int:
    return next((s for s in steps if s > weight), 100)


def advance(root: Path, stack: str, collect: Collect, *, now: float, models: list[str] | None = None) -> list[Decision]:
    """Act on the verdict of every canary with a rollout in the stack's environment."""
    _clean(root)
    environment = environment_of(root, stack)
    stacks = load_all_stacks(paths.stacks_dir(root))
    try:
        registry = load_registry(paths.models_dir(root), stacks)
    except RegistryError as exc:
        raise DeliveryError(f"the registry is invalid; fix it first:\n{exc}") from None
    hist = history(root, environment)
    decisions: list[Decision] = []
    for dep in registry.deployed_to(environment):
        if models and dep.name not in models:
            continue
        live = [v for v in dep.variants if v.weight > 0]
        if dep.rollout is None or len(live) < 2:
            if models:
                decisions.append(Decision(dep.name, "skip", "no canary with a rollout in this environment"))
            continue
        if len(live) > 2:
            decisions.append(Decision(dep.name, "skip", "a rollout walks one canary; this split has more"))
            continue
        baseline = max(live, key=lambda v: v.weight)
        canary = next(v for v in live if v is not baseline)
        since = hist[dep.name].current if dep.name in hist else None
        start = since.timestamp if since else now - dep.rollout.max_duration
        report = build_report(dep, collect(dep, start, now))
        verdict, elapsed = report.verdict, now - start
        rule: str = report.analysis.rule
        # A proven harm is already a roll back, whatever the step's age or sample size; only a
        # step that stays inconclusive waits, and max_duration bounds that wait.
        if verdict == "inconclusive" and elapsed > dep.rollout.max_duration:
            verdict, rule = "rollback", "max-duration"
            why = f"no verdict within max_duration ({dep.rollout.max_duration} s; step running {elapsed:.0f} s)"
        else:
            why = "; ".join(report.analysis.reasons)
        if verdict == "inconclusive":
            # Which window was judged is what a user needs to act on an inconclusive step.
            detail = f"inconclusive (rule {rule}), no change: {why} ({report.heading()})"
            decisions.append(Decision(dep.name, "none", detail, report=report))
            continue
        if verdict == "promote":
            weight = next_step(dep.rollout.steps, canary.weight)
            target, subject_fmt = canary.version, None
        else:
            weight, target = 100, baseline.version
            subject_fmt = f"revert(models): roll back {dep.name} {canary.version} in {environment}"
        try:
            promotion = promote(root, dep.name, environment, target, weight)
        except PromotionError as exc:
            raise DeliveryError(f"{dep.name}: {exc}") from None
        subject = subject_fmt or f"{promotion.message} (experiment: promote)"
        body = f"Verdict: {verdict} (rule {rule}): {why}\n\n{report.text()}"
        sha = _commit(root, promotion.path, promotion.after, subject, body)
        decisions.append(Decision(dep.name, verdict, subject, sha, report))
    return decisions


# --------------------------------------------------------------------------- rollback


def _undo(root: Path) -> None:
    """Drop a half-made revert; the tree was clean before it started."""
    git(root, "revert", "--abort", check=False)
    git(root, "reset", "--quiet", "--hard", "HEAD", check=False)


def rollback(root: Path, stack: str, to: str | None = None) -> tuple[str, list[Change]]:
    """Revert the environment's last registry change, or every change after `to`, in one commit."""
    if git(root, "status", "--porcelain", "--untracked-files=no").strip():
        raise DeliveryError("the working tree has uncommitted changes: commit or stash them first")
    environment = environment_of(root, stack)
    changes = sorted({c for h in history(root, environment).values() for c in h.changes}, key=lambda c: c.timestamp)
    order = git(root, "rev-list", "--first-parent", "HEAD").split()
    position = {sha: i for i, sha in enumerate(order)}  # 0 = newest
    changes.sort(key=lambda c: position.get(c.commit, len(order)))
    if to is None:
        targets = changes[:1]
        if not targets:
            raise DeliveryError(f"no registry change deployed to {environment} to revert")
    else:
        base = git(root, "rev-parse", "--verify", "--quiet", f"{to}^{{commit}}", check=False).strip()
        if not base or base not in position:
            raise DeliveryError(f"{to!r} is not a commit on this branch's first-parent history")
        targets = [c for c in changes if position[c.commit] < position[base]]
        if not targets:
            raise DeliveryError(f"{environment} has not changed since {to}: nothing to revert")
    by_commit = {c.commit: c for c in targets}  # a commit changing several models is reverted once
    unique = [by_commit[sha] for sha in dict.fromkeys(c.commit for c in targets)]
    for change in unique:  # newest first, so each revert applies on top of the later ones
        # A pull request merged with a merge commit (GitHub's default) is reverted against its
        # first parent, the branch it was merged into; git refuses a merge revert without `-m`.
        parents = git(root, "rev-list", "--parents", "-n", "1", change.commit).split()[1:]
        mainline = ["-m", "1"] if len(parents) > 1 else []
        result = subprocess.run(
            ["git", "revert", "--no-commit", *mainline, change.commit],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            _undo(root)
            raise DeliveryError(
                f"reverting {change.commit[:12]} ({change.subject}) conflicts with later changes; "
                f"nothing was changed: {(result.stderr or result.stdout).strip()}"
            )
    stacks = load_all_stacks(paths.stacks_dir(root))
    try:
        load_registry(paths.models_dir(root), stacks)
    except RegistryError as exc:
        _undo(root)
        raise DeliveryError(f"the reverted registry would be invalid; nothing was changed:\n{exc}") from None
    what = unique[0].commit[:12] if to is None else f"every change since {to}"
    subject = f"revert(models): roll {environment} back ({what})"
    body = "\n".join(f"This reverts commit {c.commit} ({c.subject})." for c in unique)
    git(root, "commit", "--quiet", "-m", subject, "-m", body)
    return git(root, "rev-parse", "HEAD").strip(), unique
