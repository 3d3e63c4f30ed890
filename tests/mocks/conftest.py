"""Fixtures for the Pulumi mocks tests: a fresh event loop per test, stack settings, registries."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.registry import Registry
from llmops.settings import StackSettings, load_all_stacks

from .fixtures import models, write_registry
from .harness import REPO, Graph, run_platform

AWS_STACKS = ("dev", "staging", "prod")
# Sizing reads the registry's config files; the Hub is never asked (as in `make`).
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def ensure_event_loop() -> Iterator[None]:
    """As the Pulumi SDK's own tests do: each test gets its own event loop."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture(scope="session")
def stacks() -> dict[str, StackSettings]:
    return load_all_stacks(REPO / "stacks")


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    write_registry(root, models())
    return root


@pytest.fixture(scope="session")
def fixture_registry(fixture_root: Path) -> Registry:
    from llmops.registry import load_registry

    return load_registry(fixture_root / "models", load_all_stacks(REPO / "stacks"))


@pytest.fixture(scope="session")
def graphs(stacks: dict[str, StackSettings], fixture_registry: Registry, fixture_root: Path) -> dict[str, Graph]:
    """The fixture registry's platform on every AWS stack, run once per session (it is read-only)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return {s: run_platform(s, stacks[s], fixture_registry, fixture_root) for s in AWS_STACKS}
    finally:
        loop.close()
        asyncio.set_event_loop(None)
