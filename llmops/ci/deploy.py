"""`ci deploy`: per affected stack in promotion order, a policy-checked preview, then `pulumi up`.

A blocking violation or a failed preview stops everything before that stack changes;
the first failed update stops the stacks after it.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmops.ci.errors import CiError
from llmops.ci.results import RunResult
from llmops.ci.runner import Engine
from llmops.plan import AffectedStack


def deploy(
    engine: Engine, stacks: Sequence[AffectedStack], *, dry_run: bool = False, results: list[RunResult] | None = None
) -> list[RunResult]:
    """Preview then update each stack in order; stop at the first failure (raises CiError).
    Every run is appended to `results` as it finishes, failures included."""
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
    return results
