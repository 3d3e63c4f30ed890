"""`llmops migrate-stacks STACK`: split an environment's single stack into a platform stack and a
stack per model (llmops.layout), replacing nothing.

0. If STACK's outputs predate the split (no `platform` output for model stacks to read), it
   is updated first, as it is: a change of outputs only.
1. Each model's top-level resources (`layout.model_roots`, children included) move from STACK
   to `STACK.<model>` with `pulumi state move`: state only, nothing real is touched. A model
   whose resources are already there is skipped, so a run that was stopped can be run again.
2. `stacks/Pulumi.<STACK>.yaml` gets `llmops:layout: split` (one line added; commit it).
3. Unless `--no-up`: `pulumi up` of each model stack (what the split adds: its reference to the
   platform, its monitoring files), then of STACK (its monitoring without the models' parts),
   each previewed under the policy pack first; then a preview of every stack, which must show
   no change.

The model stacks' resources keep their URNs but for the stack, and their inputs (proven for the
AWS program by tests/mocks/test_split_layout.py), so serving continues throughout.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import UserError
from llmops.layout import deployed_models, is_model_stack, model_stack_name, owned_by
from llmops.settings import CONFIG_NAMESPACE, STACK_FILE_PREFIX, StackSettings, load_stack_settings

LAYOUT_KEY = f"{CONFIG_NAMESPACE}:layout"
# Engine steps that stop or remove something real.
REMOVING = {"delete", "replace", "create-replacement", "delete-replaced", "discard", "discard-replaced"}


@dataclass
class Migration:
    stack: str
    moved: dict[str, int] = field(default_factory=dict)  # model stack -> top-level resources moved
    skipped: list[str] = field(default_factory=list)  # model stacks that held their resources already
    updated: dict[str, str] = field(default_factory=dict)  # stack -> the update's summary
    unchanged: list[str] = field(default_factory=list)  # stacks whose final preview shows no change
    changed: dict[str, str] = field(default_factory=dict)  # stacks whose final preview still shows changes

    @property
    def ok(self) -> bool:
        return not self.changed


def migrate_stacks(root: Path, stack: str, *, up: bool = True, say: Callable[[str], None] = print) -> Migration:
    from llmops.ci.runner import DEFAULT_POLICY_CONFIG_DIR, DEFAULT_POLICY_PACK, Engine
    from llmops.engine import engine_env

    path = root / "stacks" / f"{STACK_FILE_PREFIX}{stack}.yaml"
    settings = _splittable(path, stack)
    models = deployed_models(root, settings)
    engine = Engine(root, engine_env(root), DEFAULT_POLICY_PACK, DEFAULT_POLICY_CONFIG_DIR)
    migration = Migration(stack)
    outputs = _outputs(engine, stack)
    if up and "platform" not in outputs:
        say(f"{stack}: exporting what model stacks read (an update of its outputs only)")
        _update(engine, stack, settings.environment, migration, say)
    urns = _urns(engine, stack)
    for model in models:
        target = model_stack_name(stack, model)
        moving = owned_by(urns, model)
        if not moving:
            migration.skipped.append(target)
            say(f"{target}: nothing of {model} left in {stack}")
            continue
        engine.select(target)  # created on first use, with the environment's secrets provider
        _move(engine, stack, target, moving)
        migration.moved[target] = len(moving)
        say(f"{target}: moved {len(moving)} resource tree(s) of {model} from {stack}")
    if set_split_layout(path):
        say(f"stacks/{path.name}: llmops:layout: split (commit this change)")
    if not up:
        return migration
    # Model stacks first: each adds its monitoring files before the platform's Prometheus drops
    # the targets it held for them, so no scrape is missed.
    order = [model_stack_name(stack, m) for m in models] + [stack]
    for name in order:
        _update(engine, name, settings.environment, migration, say)
    for name in order:
        check = engine.preview(name, settings.environment)
        if check.ok and not check.has_changes:
            migration.unchanged.append(name)
        else:
            migration.changed[name] = check.summary()
    return migration


def _update(engine: Any, name: str, environment: str, migration: Migration, say: Callable[[str], None]) -> None:
    """Preview under the policy pack, then `up`; a failure stops the migration, naming the stack."""
    result = engine.preview(name, environment)
    if not result.ok or any(v.blocking for v in result.violations):
        raise UserError(f"migrate-stacks: the preview of {name} failed; it was not changed:\n{result.output[-2000:]}")
    # A migration replaces nothing: a preview that would is a bug to report, never to apply.
    removing = sorted(urn for urn, op in result.ops.items() if op in REMOVING)
    if removing:
        shown = "\n  ".join(removing[:20])
        raise UserError(f"migrate-stacks: {name} would delete or replace, so it was not updated:\n  {shown}")
    update = engine.up(name, environment)
    if not update.ok:
        raise UserError(f"migrate-stacks: the update of {name} failed:\n{update.output[-2000:]}")
    migration.updated[name] = update.summary()
    say(f"{name}: updated, {update.summary()}")


def _outputs(engine: Any, stack: str) -> dict[str, Any]:
    from llmops.engine import stack_outputs

    return stack_outputs(stack, engine.root, env=engine.env)  # a missing stack: one line naming `make up`


def _splittable(path: Path, stack: str) -> StackSettings:
    if is_model_stack(stack):
        raise UserError(f"migrate-stacks: {stack} is a model stack; name its environment's stack")
    if not path.is_file():
        raise UserError(f"migrate-stacks: no stacks/{path.name}")
    settings = load_stack_settings(path)
    if settings.target == "kube" or settings.review_stack is not None or settings.models:
        raise UserError(f"migrate-stacks: {stack} is a kube, review or chosen-models stack; it stays whole")
    return settings


def _urns(engine: Any, stack: str) -> list[str]:
    """Every resource URN in `stack`'s state, read through the Automation API as the runner reads it."""
    deployment = engine.workspace().export_stack(stack).deployment or {}
    return [r["urn"] for r in deployment.get("resources") or []]


def _move(engine: Any, source: str, dest: str, urns: list[str]) -> None:
    from llmops.engine import run_pulumi

    args = ["state", "move", "--source", source, "--dest", dest, "--yes", *urns]
    result = run_pulumi(args, root=engine.root, env=engine.env, capture=True)
    if result.returncode != 0:
        raise UserError(
            f"migrate-stacks: moving into {dest} failed, nothing of it moved: {result.stderr.strip()[-800:]}"
        )


def set_split_layout(path: Path) -> bool:
    """Add `llmops:layout: split` under `config:` of a stack file, keeping every other line
    (comments included); False when the file says so already."""
    text = path.read_text(encoding="utf-8")
    if re.search(rf"^\s+{re.escape(LAYOUT_KEY)}:\s*split\s*$", text, re.M):
        return False
    if re.search(rf"^\s+{re.escape(LAYOUT_KEY)}:", text, re.M):
        text = re.sub(rf"^(\s+{re.escape(LAYOUT_KEY)}:).*$", r"\1 split", text, count=1, flags=re.M)
    else:
        match = re.search(r"^config:\s*\n(\s+)", text, re.M)
        if match is None:
            raise UserError(f"stacks/{path.name}: no `config:` mapping to add llmops:layout to")
        indent = match.group(1)
        comment = f"{indent}# A platform stack plus a stack per model, `<stack>.<model>` (`llmops migrate-stacks`).\n"
        text = (
            text[: match.end(1) - len(indent)]
            + comment
            + f"{indent}{LAYOUT_KEY}: split\n"
            + text[match.end(1) - len(indent) :]
        )
    path.write_text(text, encoding="utf-8")
    return True


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "migrate-stacks",
        help="split an environment's stack into a platform stack and a stack per model, replacing nothing",
    )
    p.add_argument("stack", help="the environment's stack (stacks/Pulumi.<stack>.yaml)")
    p.add_argument("--no-up", action="store_true", help="move the state and set the layout only; deploy later")
    p.set_defaults(func=cmd_migrate_stacks)


def cmd_migrate_stacks(args: argparse.Namespace) -> int:
    from llmops.paths import repo_root

    migration = migrate_stacks(repo_root(), args.stack, up=not args.no_up)
    if args.no_up:
        return 0
    for name in migration.unchanged:
        print(f"{name}: no change")
    for name, summary in migration.changed.items():
        print(f"{name}: still changes after the migration: {summary}")
    return 0 if migration.ok else 1
