"""The `llmops` CrossGuard policy pack: validators, their pack, and per-environment enforcement.

Import the validators from here (tests, `policies.evaluate`); never import
`policies.__main__`, which builds the pack and serves the engine forever.
"""

from __future__ import annotations

from pathlib import Path


def config_for_stack(stack: str, stacks: Path | None = None) -> Path:
    """The `--policy-pack-config` file for `stack` (see `policies.enforcement`)."""
    # Imported on use so `python -m policies.enforcement` does not load its own module twice.
    from policies.enforcement import config_for_stack as choose

    return choose(stack, stacks)


__all__ = ["config_for_stack"]
