"""`llmops ci review open|close|reap`: a live stack per pull request, with a TTL, that never orphans anything.

A review stack `pr-<N>` runs on the local target (inside the CI runner) through the
Automation API, on the project's own backend. It serves only the models the pull
request changes, on its own ports (a base port derived from N) and its own state
folder, and carries the tags `pr`, `head-sha`, `created-at` and `ttl` (hours).

On AWS a review stack is opt-in per environment (`llmops:review: {enabled, ttl, capacity}`
in the environment's stack file): `pr-<N>-<env>` is a copy of that stack's settings that
serves only the changed models, each on the smallest instance that fits with one replica
(`llmops.sizing.stack_deployments`), every resource tagged like the stack. At most
`capacity` of them are open at once per environment; open refuses beyond that and
creates nothing. Review stacks scale idle endpoints to zero (`scaleToZero.defaultIdleSeconds`)
where the environment allows it and the platform supports it.

Cleanup: `close` removes a stack only after its destroy succeeded; `reap` closes
every review stack past its TTL or whose pull request is no longer open. A failed
destroy is reported and the stack kept (never `stack rm --force`), so the next
run retries it and nothing it created is orphaned.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from llmops.ci.errors import CiError
from llmops.ci.results import RunResult
from llmops.ci.runner import Engine
from llmops.plan import Plan
from llmops.settings import (
    CONFIG_NAMESPACE,
    STACK_FILE_PREFIX,
    ReviewStackSettings,
    StackSettings,
    load_stack_settings,
    stack_files,
)

REVIEW_PREFIX = "pr-"
REVIEW_RE = re.compile(r"^pr-(\d+)(?:-([a-z][a-z0-9-]{0,15}))?$")  # pr-N (local) or pr-N-<environment> (AWS)
ENVIRONMENT = "local"  # a local review stack serves each model's `local` deployment
PORT_FLOOR, PORT_SLOTS, PORT_SPAN = 20000, 1000, 40  # pr-N gets [20000 + (N % 1000) * 40, +40)
DEFAULT_TTL_HOURS = 48.0
REVIEW_IDLE_SECONDS = 900  # a review stack scales to zero what it may after 15 idle minutes


def stack_name(pr: int, environment: str = ENVIRONMENT) -> str:
    """`pr-N` on the local target, `pr-N-<environment>` on an AWS environment."""
    return f"{REVIEW_PREFIX}{pr}" if environment == ENVIRONMENT else f"{REVIEW_PREFIX}{pr}-{environment}"


def stack_environment(name: str) -> str | None:
    """The environment a review stack's name says it reviews (None: not a review stack's name)."""
    m = REVIEW_RE.match(name)
    return None if m is None else (m.group(2) or ENVIRONMENT)


def base_port(pr: int) -> int:
    """The first of the ports pr-N's endpoints use: distinct for 1000 consecutive pull requests,
    and clear of the `local` stack's 18400."""
    return PORT_FLOOR + (pr % PORT_SLOTS) * PORT_SPAN


def changed_models(root: Path, plan: Plan, environment: str = ENVIRONMENT) -> list[str]:
    """Models whose registry file the pull request adds or changes and that `environment` serves."""
    from llmops.registry import load_registry
    from llmops.settings import load_all_stacks

    names = {
        Path(c.path).stem
        for c in plan.changes
        if c.status != "D" and c.path.startswith("models/") and c.path.count("/") == 1 and c.path.endswith(".yaml")
    }
    registry = load_registry(root / "models", load_all_stacks(root / "stacks"))
    served = {d.name for d in registry.deployed_to(environment)}
    return sorted(names & served)


def write_stack_file(root: Path, pr: int, models: Sequence[str], port: int) -> Path:
    path = root / "stacks" / f"{STACK_FILE_PREFIX}{stack_name(pr)}.yaml"
    config = {
        "llmops:target": "local",
        "llmops:environment": ENVIRONMENT,
        "llmops:models": list(models),
        "llmops:local": {"basePort": port, "stateDir": f".state/{stack_name(pr)}", "healthTimeoutSeconds": 300},
        "llmops:policy": {"enforcement": "mandatory"},
        "llmops:scaleToZero": {"defaultIdleSeconds": REVIEW_IDLE_SECONDS},
    }
    header = f"# Review stack of pull request #{pr}, written by `llmops ci review open`.\n"
    path.write_text(header + yaml.safe_dump({"config": config}, sort_keys=False), encoding="utf-8")
    return path


def environment_stack(root: Path, environment: str) -> tuple[Path, StackSettings]:
    """The AWS stack file that deploys `environment` (not a review stack), and its settings."""
    found = [
        (path, settings)
        for name, path in stack_files(root / "stacks").items()
        if stack_environment(name) is None
        and (settings := load_stack_settings(path)).environment == environment
        and settings.target == "aws"
    ]
    if len(found) != 1:
        raise CiError(f"{len(found)} AWS stack file(s) under stacks/ deploy environment {environment!r}; need one")
    return found[0]


def write_aws_stack_file(
    root: Path, source: Path, name: str, models: Sequence[str], review: ReviewStackSettings
) -> Path:
    """pr-N-<env>'s stack file: the environment's settings, its models and the reviewStack marker.

    Keys the engine wrote at `stack init` (its encrypted data key) are kept; the environment's
    own `review` opt-in and `alarmEmail` (a secret of that stack) are not copied.
    """
    path = root / "stacks" / f"{STACK_FILE_PREFIX}{name}.yaml"
    env_file = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    current = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}
    # A review stack holds its few models itself, whatever the environment's layout.
    dropped = {f"{CONFIG_NAMESPACE}:review", f"{CONFIG_NAMESPACE}:alarmEmail", f"{CONFIG_NAMESPACE}:layout"}
    config = {k: v for k, v in (env_file.get("config") or {}).items() if k not in dropped}
    config[f"{CONFIG_NAMESPACE}:models"] = list(models)
    config[f"{CONFIG_NAMESPACE}:reviewStack"] = review.model_dump(by_alias=True)
    # Idle review endpoints scale to zero where the environment allows it (production only by opting in).
    scale_to_zero = dict(config.get(f"{CONFIG_NAMESPACE}:scaleToZero") or {})
    scale_to_zero.setdefault("defaultIdleSeconds", REVIEW_IDLE_SECONDS)
    config[f"{CONFIG_NAMESPACE}:scaleToZero"] = scale_to_zero
    data = {**current, "config": config}
    if "secretsprovider" in env_file:
        data.setdefault("secretsprovider", env_file["secretsprovider"])
    header = f"# Review stack of pull request #{review.pr} on {source.name}, written by `llmops ci review open`.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class ReviewStack:
    name: str
    pr: int
    head_sha: str
    created_at: datetime
    ttl: timedelta
    environment: str = ENVIRONMENT

    def expired(self, now: datetime) -> bool:
        return now >= self.created_at + self.ttl

    @classmethod
    def from_tags(cls, name: str, tags: dict[str, str]) -> ReviewStack:
        """A review stack from its tags; missing or unreadable ones make it expired (reap takes it)."""
        m = REVIEW_RE.match(name)
        pr = int(tags.get("pr") or (m.group(1) if m else 0))
        try:
            created = datetime.fromisoformat(tags["created-at"])
            ttl = timedelta(hours=float(tags["ttl"]))
        except (KeyError, ValueError):
            created, ttl = datetime.fromtimestamp(0, UTC), timedelta(0)
        return cls(name, pr, tags.get("head-sha", ""), created, ttl, stack_environment(name) or ENVIRONMENT)


@dataclass
class Closed:
    stack: str
    ok: bool
    reason: str
    output: str = ""


@dataclass
class Opened:
    stack: str
    models: list[str]
    port: int
    result: RunResult | None
    endpoints: dict[str, Any] = field(default_factory=dict)
    evaluations: dict[str, Any] = field(default_factory=dict)  # model -> version -> suite -> record output
    environment: str = ENVIRONMENT
    refused: str = ""  # why no stack was opened although the pull request changes models
    dashboard_url: str = ""  # local: the review stack's dashboard (`dashboardUrl` output)


def open_review(
    engine: Engine, plan: Plan, pr: int, *, ttl_hours: float = DEFAULT_TTL_HOURS, port: int | None = None
) -> Opened:
    """Create or update pr-N for the models `plan` changes; an update keeps `created-at`."""
    name, port = stack_name(pr), port if port is not None else base_port(pr)
    models = changed_models(engine.root, plan)
    if not models:
        return Opened(name, [], port, None)
    write_stack_file(engine.root, pr, models, port)
    stack = engine.select(name)
    tags = stack.workspace.list_tags(name)
    now = datetime.now(UTC).replace(microsecond=0)
    stack.set_tag("pr", str(pr))
    stack.set_tag("head-sha", plan.head)
    stack.set_tag("ttl", f"{ttl_hours:g}")
    if "created-at" not in tags:
        stack.set_tag("created-at", now.isoformat())
    result = engine.up(name, ENVIRONMENT)
    endpoints: dict[str, Any] = {}
    evaluations: dict[str, Any] = {}
    if result.ok:
        outputs = stack.outputs()
        endpoints = dict(outputs["endpoints"].value) if "endpoints" in outputs else {}
        evaluations = dict(outputs["evaluations"].value) if "evaluations" in outputs else {}
        dashboard = str(outputs["dashboardUrl"].value) if "dashboardUrl" in outputs else ""
        return Opened(name, models, port, result, endpoints, evaluations, dashboard_url=dashboard)
    return Opened(name, models, port, result, endpoints, evaluations)


def _created_at(tags: dict[str, str], now: datetime) -> datetime:
    try:
        return datetime.fromisoformat(tags["created-at"])
    except (KeyError, ValueError):
        return now


def open_aws_review(engine: Engine, plan: Plan, pr: int, environment: str) -> Opened:
    """Create or update pr-N-<environment> when that environment opts in and has capacity left.

    Refusals (capacity) create nothing: no stack file, no stack. An update keeps `created-at`.
    """
    root = engine.root
    source, settings = environment_stack(root, environment)
    name = stack_name(pr, environment)
    if not settings.review.enabled:
        raise CiError(
            f"stacks/{source.name}: llmops:review.enabled is not true, so environment {environment!r} "
            "takes no review stacks"
        )
    models = changed_models(root, plan, environment)
    if not models:
        return Opened(name, [], 0, None, environment=environment)
    others = [s.name for s in review_stacks(engine, environment) if s.name != name]
    if len(others) >= settings.review.capacity:
        why = (
            f"{environment} is at its review capacity ({settings.review.capacity}, stacks/{source.name} "
            f"llmops:review.capacity): {', '.join(others) or 'none'} open; close one or wait for reap"
        )
        return Opened(name, models, 0, None, environment=environment, refused=why)
    secrets = (yaml.safe_load(source.read_text(encoding="utf-8")) or {}).get("secretsprovider")
    stack = engine.select(name, create_with=secrets or "passphrase")
    now = datetime.now(UTC).replace(microsecond=0)
    created = _created_at(dict(stack.workspace.list_tags(name)), now)
    ttl = settings.review.ttl
    review = ReviewStackSettings(
        pr=pr, head_sha=plan.head, created_at=created.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"), ttl=ttl
    )
    write_aws_stack_file(root, source, name, models, review)
    stack.set_tag("pr", str(pr))
    stack.set_tag("head-sha", plan.head)
    stack.set_tag("ttl", f"{ttl:g}")
    stack.set_tag("created-at", created.isoformat())
    result = engine.up(name, environment)
    endpoints: dict[str, Any] = {}
    if result.ok:
        outputs = stack.outputs()
        endpoints = dict(outputs["endpoints"].value) if "endpoints" in outputs else {}
    return Opened(name, models, 0, result, endpoints, environment=environment)


def review_stacks(engine: Engine, environment: str | None = None) -> list[ReviewStack]:
    """Every review stack on the backend, or only those of `environment`."""
    workspace = engine.workspace()
    names = sorted(
        s.name
        for s in workspace.list_stacks()
        if (env := stack_environment(s.name.split("/")[-1])) is not None and environment in (None, env)
    )
    return [ReviewStack.from_tags(n.split("/")[-1], dict(workspace.list_tags(n))) for n in names]


def close_review(engine: Engine, name: str, reason: str = "closed") -> Closed:
    """Destroy `name`; remove the stack, its stack file and its state folder only when the destroy succeeded."""
    try:
        result = engine.destroy(name)
    except auto.StackNotFoundError:
        return Closed(name, True, "no such stack (already closed)")
    tail = "\n".join(result.output.splitlines()[-20:])
    if not result.ok:
        return Closed(
            name, False, f"{reason}; destroy FAILED (exit {result.returncode}), stack kept for the next run", tail
        )
    engine.workspace().remove_stack(name)
    (engine.root / "stacks" / f"{STACK_FILE_PREFIX}{name}.yaml").unlink(missing_ok=True)
    shutil.rmtree(engine.root / ".state" / name, ignore_errors=True)
    return Closed(name, True, f"{reason}; destroyed and removed", tail)


def reap(
    engine: Engine, open_prs: Collection[int] | None, now: datetime | None = None, environment: str = ENVIRONMENT
) -> list[Closed]:
    """Close every review stack of `environment` past its TTL, or whose pull request is not in
    `open_prs` (when given). One environment per run: each needs its own credentials."""
    now = now or datetime.now(UTC)
    out = []
    for review in review_stacks(engine, environment):
        if review.expired(now):
            out.append(close_review(engine, review.name, f"expired (created {review.created_at.isoformat()})"))
        elif open_prs is not None and review.pr not in open_prs:
            out.append(close_review(engine, review.name, f"pull request #{review.pr} is closed"))
    return out


def require_pr(value: int) -> int:
    if value < 1:
        raise CiError(f"--pr must be a pull request number, got {value}")
    return value
