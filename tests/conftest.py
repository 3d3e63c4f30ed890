"""Suite-wide settings: tests never reach a model hub, whatever the caller's environment; and
how `make test` spreads the suite over pytest-xdist's workers (`--dist loadgroup`)."""

import os

import pytest

# Sizing reads the shipped configs and never the hub; nothing else in a test may reach one either.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every engine test in one xdist group, so they run on one worker in collection order, as a
    serial run has them: each starts stacks, binds ports and times replicas, and two at once
    would fight over the cores. Every other module is a group of its own (its module fixtures
    are built once), run by whichever worker is free. Without xdist the marks do nothing."""
    for item in items:
        group = "engine" if item.get_closest_marker("engine") else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
