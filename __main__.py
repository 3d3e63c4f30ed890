"""The Pulumi program: one Platform per stack, from the registry and the stack's settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.config import get_config_env
from pydantic import ValidationError

from components.context import StackContext
from components.platform import Platform, PlatformArgs
from llmops.registry import RegistryError, load_registry
from llmops.settings import StackSettings, load_all_stacks
from llmops.sizing import SizingError

ROOT = Path(__file__).resolve().parent


def _decode(value: str) -> Any:
    # The engine hands structured config values to the program as JSON text.
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def main() -> None:
    stack = pulumi.get_stack()
    try:
        settings = StackSettings.from_config({k: _decode(v) for k, v in get_config_env().items()})
    except ValidationError as exc:
        raise pulumi.RunError(f"stacks/Pulumi.{stack}.yaml: invalid llmops settings:\n{exc}") from None
    try:
        registry = load_registry(ROOT / "models", load_all_stacks(ROOT / "stacks"))
    except RegistryError as exc:
        raise pulumi.RunError(f"the model registry has problems:\n{exc}") from None
    try:
        platform = Platform("llmops", PlatformArgs(StackContext(stack, settings, ROOT), registry))
    except SizingError as exc:
        raise pulumi.RunError(f"sizing failed: {exc}") from None
    for key, value in platform.outputs.items():
        pulumi.export(key, value)


main()
