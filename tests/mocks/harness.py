"""The mocks tests' entry points onto `llmops.ci.mock_runtime` (set_mocks + a recording monitor).

`run_platform` runs the Platform component for a stack and registry; `run_program`
runs the real `__main__.py` for a shipped stack file, with that file's config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi

from components.context import StackContext
from components.platform import Platform, PlatformArgs
from llmops.ci import mock_runtime
from llmops.ci.mock_runtime import ACCOUNT, PROJECT, REGION, CloudMocks, Graph, RecordingMonitor, Registered, mocked
from llmops.layout import Part
from llmops.registry import Registry
from llmops.settings import StackSettings

REPO = Path(__file__).resolve().parents[2]

__all__ = [
    "ACCOUNT",
    "PROJECT",
    "REGION",
    "REPO",
    "CloudMocks",
    "Graph",
    "RecordingMonitor",
    "Registered",
    "mocked",
    "run_platform",
    "run_program",
    "stack_config",
]


def stack_config(stack: str) -> dict[str, Any]:
    return mock_runtime.stack_config(REPO, stack)


def run_platform(
    stack: str,
    settings: StackSettings,
    registry: Registry,
    root: Path = REPO,
    *,
    part: Part = "all",
    references: dict[str, dict[str, Any]] | None = None,
    outputs: dict[str, Any] | None = None,
) -> Graph:
    """The Platform component for one stack and registry, run to completion under mocks.

    `stack` is the stack the program runs as; a model stack (`part="model"`) gets the settings
    of its environment's stack narrowed to its model, and `references` holds the platform
    stack's outputs. `outputs`, when given, receives the Platform's resolved stack outputs."""
    settings_stack = stack.split(".", 1)[0]
    with mocked(stack, references=references) as monitor:

        @pulumi.runtime.test
        def program() -> pulumi.Output[Any]:
            ctx = StackContext(settings_stack, settings, root, part=part)
            platform = Platform("llmops", PlatformArgs(ctx, registry))
            if outputs is not None:
                return pulumi.Output.all(**platform.outputs).apply(outputs.update)
            return pulumi.Output.all(platform.outputs["endpoints"], platform.outputs["artifacts"])

        program()
    return monitor.graph


def run_program(stack: str, check: Callable[[Graph], None] | None = None) -> Graph:
    """The real `__main__.py` for a shipped stack file, with that file's config, under mocks."""
    graph = mock_runtime.run_program(REPO, stack)
    if check is not None:
        check(graph)
    return graph
