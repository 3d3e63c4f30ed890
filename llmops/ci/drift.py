"""`ci drift`'s report: the stacks whose refresh preview found changes made outside Pulumi."""

from __future__ import annotations

from collections.abc import Sequence

from llmops.ci.comment import preview_section
from llmops.ci.results import RunResult


def drift_report(results: Sequence[RunResult]) -> str:
    lines = [
        "Scheduled `pulumi preview --refresh --expect-no-changes` found differences between what runs and",
        "the stacks' state.",
        "",
    ]
    for result in results:
        lines += [*preview_section(result), ""]
    return "\n".join(lines)
