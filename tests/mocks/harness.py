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


def run_platform(stack: str, settings: StackSettings, registry: Registry, root: Path = REPO) -> Graph:
    """The Platform component for one stack and registry, run to completion under mocks."""
    with mocked(stack) as monitor:

        @pulumi.runtime.test
        def program() -> pulumi.Output[Any]:
            platform = Platform("llmops", PlatformArgs(StackContext(stack, settings, root), registry))
            return pulumi.Output.all(platform.outputs["endpoints"], platform.outputs["artifacts"])

        program()
    return monitor.graph


def run_program(stack: str, check: Callable[[Graph], None] | None = None) -> Graph:
    """The real `__main__.py` for a shipped stack file, with that file's config, under mocks."""
    graph = mock_runtime.run_program(REPO, stack)
    if check is not None:
        check(graph)
    return graph
