"""`ci deploy`: per affected stack in promotion order, a policy-checked preview, then `pulumi up`.

A blocking violation or a failed preview stops everything before that stack changes;
the first failed update stops the stacks after it.

Model stacks (llmops.layout) deploy as a matrix, one job per stack, so promotion holds per
model: a job records its stack once deployed (`record_deployed`), and a later environment's
job for the same model refuses to start unless each earlier one the plan names was recorded
(`check_promoted`). One model's failure blocks only that model's later environments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from llmops.ci.errors import CiError
from llmops.ci.results import RunResult
from llmops.ci.runner import Engine
from llmops.plan import AffectedStack, Plan
from llmops.settings import PROMOTION_ORDER


def deploy(
    engine: Engine,
    stacks: Sequence[AffectedStack],
    *,
    dry_run: bool = False,
    results: list[RunResult] | None = None,
    after_update: Callable[[AffectedStack], None] | None = None,
) -> list[RunResult]:
    """Preview then update each stack in order; stop at the first failure (raises CiError).
    Every run is appended to `results` as it finishes, failures included. `after_update` runs
    after each stack's update (the staging evaluation gate) and stops the promotion by raising."""
    results = [] if results is None else results
    for stack in stacks:
        print(f"\n=== {stack.stack} ({stack.environment}): preview under policy")
        engine.select(stack.stack)
        preview = engine.preview(stack.stack, stack.environment)
        results.append(preview)
        blocking = [v for v in preview.violations if v.blocking]
        if not preview.ok or blocking:
            why = f"{len(blocking)} mandatory policy violation(s)" if blocking else f"exit status {preview.returncode}"
            detail = "".join(f"\n  [{v.level}] {v.policy}: {v.message}" for v in blocking)
            raise CiError(f"preview of {stack.stack} failed ({why}); nothing was changed{detail}")
        print(f"=== {stack.stack}: preview {preview.summary()}")
        if dry_run:
            continue
        print(f"=== {stack.stack}: up")
        update = engine.up(stack.stack, stack.environment)
        results.append(update)
        if not update.ok:
            raise CiError(f"update of {stack.stack} failed (exit status {update.returncode}); later stacks skipped")
        print(f"=== {stack.stack}: updated, {update.summary()}")
        if after_update is not None:
            after_update(stack)
    return results


def after_updates(*hooks: Callable[[AffectedStack], None]) -> Callable[[AffectedStack], None]:
    """Several `after_update` steps, in order; the first that raises stops the promotion."""

    def run(stack: AffectedStack) -> None:
        for hook in hooks:
            hook(stack)

    return run


def training_start(root: Path) -> Callable[[AffectedStack], None]:
    """After a stack's update: start each SageMaker training pipeline whose spec has no run yet
    (llmops.training_runs); a stack without pipelines asks AWS nothing."""

    def start(stack: AffectedStack) -> None:
        import os

        from llmops.engine import stack_outputs
        from llmops.settings import load_stack_settings, stack_files
        from llmops.training_runs import after_update

        path = stack_files(root / "stacks").get(stack.platform)  # a model stack's: its environment's file
        if path is None or load_stack_settings(path).target != "aws":
            return  # the local target trains within `up`

        def client() -> object:
            import boto3

            return boto3.client("sagemaker")

        after_update(lambda: stack_outputs(stack.stack, root), client, os.environ.get("GITHUB_SHA", ""), print)

    return start


def staging_gate(root: Path) -> Callable[[AffectedStack], None]:
    """After staging's update: its hosted models' suites against the staging endpoints (llmops.evaluation.staging)."""

    def gate(stack: AffectedStack) -> None:
        from llmops.evaluation.staging import STAGING, StagingGateFailed, staging_gate

        if stack.environment != STAGING:
            return
        import boto3

        from llmops.engine import stack_outputs

        outputs = stack_outputs(stack.stack, root)
        try:
            staging_gate(root, stack.stack, stack.environment, outputs, boto3.client("sagemaker-runtime"), print)
        except StagingGateFailed as exc:
            raise CiError(str(exc)) from None

    return gate


def earlier_stacks(plan: Plan, stack: AffectedStack) -> list[str]:
    """The plan's stacks of the same model in the environments before `stack`'s (promotion order)."""
    if stack.model is None or stack.environment not in PROMOTION_ORDER:
        return []
    rank = PROMOTION_ORDER.index(stack.environment)
    return [s.stack for s in plan.stacks if s.model == stack.model and s.environment in PROMOTION_ORDER[:rank]]


def check_promoted(plan: Plan, stack: AffectedStack, deployed: Path) -> None:
    """Refuse `stack` unless each earlier environment's stack of its model was recorded in `deployed`."""
    missing = [name for name in earlier_stacks(plan, stack) if not (deployed / name).is_file()]
    if missing:
        raise CiError(
            f"{stack.stack}: {', '.join(missing)} did not deploy in this run, so {stack.model} is not promoted "
            f"to {stack.environment}; nothing was changed"
        )


def record_deployed(stack: AffectedStack, deployed: Path) -> None:
    """Mark `stack` as deployed in this run (a file the workflow passes on to later environments)."""
    deployed.mkdir(parents=True, exist_ok=True)
    (deployed / stack.stack).write_text(f"{stack.stack}\n", encoding="utf-8")
